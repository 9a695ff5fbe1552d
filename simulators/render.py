"""The beat-timed waveform renderer: lead I in mV from beat times, beat types and the rhythm.

Each beat is a sum of Gaussian waves placed relative to its R peak, as in ECGSYN (McSharry et
al., IEEE TBME 2003, the model behind NeuroKit2's ``ecg_simulate``), but driven by given beat
times, so any rhythm can be drawn: the caller decides when each beat happens and what it is.

- ``N`` (and ``Q``, unclassifiable) sinus beats: P, Q, R, S, T.
- ``A`` premature atrial beats: an earlier, smaller and sometimes inverted P, normal QRS-T.
- ``V`` ventricular beats: no P, a wide QRS and a discordant T.
- beats flagged in ``af_mask``: no P wave, and the baseline between them carries f-waves
  (4-9 Hz, irregular amplitude); with ``flutter_mask`` a regular sawtooth instead.

Rendering is vectorised: per morphology and rate the wave shapes are sampled once into
templates (``BeatTemplates``), and a window is the ``np.bincount`` sum of those templates at
every beat's sample index, so a 10 s window costs well under a millisecond. The T wave moves
with the preceding RR interval (Bazett), so short cycles shorten QT as hearts do.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from simulators import artefacts

_PRE_S = 0.32  # template start before the R peak (P waves live here)
_POST_S = 0.22  # QRS template end after the R peak (wide ventricular S waves)
_T_HALF_S = 0.3  # T template half-width around its centre
BEAT_KINDS = ("N", "A", "V", "F")  # template rows; F = a supraventricular beat in AF/flutter: no P wave


@dataclass(frozen=True)
class Morphology:
    """One patient's lead-I beat shape; amplitudes in mV, times in s relative to the R peak.

    ``qrs_axis_deg`` projects the QRS vector onto lead I (``cos``), so two patients with the
    same ``qrs_amp_mv`` differ in lead-I R height as real axes do.
    """

    qrs_amp_mv: float = 1.1
    qrs_axis_deg: float = 40.0
    r_sigma_s: float = 0.010
    q_frac: float = 0.08
    s_frac: float = 0.2
    p_amp_mv: float = 0.12
    p_sigma_s: float = 0.022
    pr_s: float = 0.16
    t_frac: float = 0.28
    t_sigma_s: float = 0.05
    rt_s: float = 0.29
    pvc_frac: float = 1.6
    pvc_sigma_s: float = 0.032
    pvc_t_frac: float = 0.4
    pac_p_frac: float = 0.6
    pac_pr_s: float = 0.12
    f_amp_mv: float = 0.06
    f_freqs_hz: tuple[float, ...] = (5.1, 6.3, 7.4)
    f_phases: tuple[float, ...] = (0.0, 1.0, 2.0)
    flutter_amp_mv: float = 0.15
    flutter_rate_hz: float = 5.0
    wander_amp_mv: float = 0.06
    resp_hz: float = 0.25
    drift_hz: float = 0.04
    phase: float = 0.0

    @property
    def r_amp_mv(self) -> float:
        """Height of the R wave in lead I."""
        return float(self.qrs_amp_mv * np.cos(np.deg2rad(self.qrs_axis_deg)))

    @classmethod
    def draw(cls, rng: np.random.Generator) -> Morphology:
        """A plausible adult lead-I morphology (ranges after ECGSYN's defaults and normal ECG values)."""
        u = rng.uniform
        return cls(
            qrs_amp_mv=u(0.8, 1.6),
            qrs_axis_deg=u(-15.0, 60.0),
            r_sigma_s=u(0.008, 0.012),
            q_frac=u(0.0, 0.15),
            s_frac=u(0.05, 0.35),
            p_amp_mv=u(0.07, 0.18),
            p_sigma_s=u(0.018, 0.028),
            pr_s=u(0.13, 0.2),
            t_frac=u(0.18, 0.38),
            t_sigma_s=u(0.04, 0.06),
            rt_s=u(0.26, 0.32),
            pvc_frac=u(1.2, 2.0),
            pvc_sigma_s=u(0.026, 0.038),
            pvc_t_frac=u(0.3, 0.55),
            pac_p_frac=float(rng.choice([-1.0, 1.0], p=[0.3, 0.7]) * u(0.4, 0.8)),
            pac_pr_s=u(0.1, 0.14),
            f_amp_mv=u(0.03, 0.1),
            f_freqs_hz=tuple(float(f) for f in np.sort(u(4.2, 8.8, 3))),
            f_phases=tuple(float(p) for p in u(0, 2 * np.pi, 3)),
            flutter_amp_mv=u(0.1, 0.2),
            flutter_rate_hz=u(4.2, 5.5),
            wander_amp_mv=u(0.03, 0.12),
            resp_hz=u(0.15, 0.35),
            drift_hz=u(0.02, 0.06),
            phase=u(0, 2 * np.pi),
        )


@dataclass(frozen=True)
class BeatTemplates:
    """Sampled wave shapes for one morphology at one rate, one row per kind in ``BEAT_KINDS``.

    ``qrs`` [4, len(offsets)] covers ``offsets`` samples around the R peak (P wave included
    for N and A); ``t`` [4, len(t_offsets)] covers ``t_offsets`` around the T-wave centre,
    which moves beat by beat with the preceding RR interval.
    """

    fs_hz: float
    offsets: np.ndarray
    qrs: np.ndarray
    t_offsets: np.ndarray
    t: np.ndarray
    rt_s: float


def _gauss(x_s: np.ndarray, centre_s: float, sigma_s: float) -> np.ndarray:
    return np.exp(-0.5 * ((x_s - centre_s) / sigma_s) ** 2)


@lru_cache(maxsize=256)
def beat_templates(morphology: Morphology, fs_hz: float) -> BeatTemplates:
    """Sample ``morphology``'s waves at ``fs_hz`` once; cached per (morphology, rate)."""
    m = morphology
    offsets = np.arange(-round(_PRE_S * fs_hz), round(_POST_S * fs_hz) + 1)
    x = offsets / fs_hz
    r = m.r_amp_mv
    qrs_core = (
        r * _gauss(x, 0.0, m.r_sigma_s)
        - m.q_frac * r * _gauss(x, -2.5 * m.r_sigma_s, 0.8 * m.r_sigma_s)
        - m.s_frac * r * _gauss(x, 2.6 * m.r_sigma_s, 0.9 * m.r_sigma_s)
    )
    p_sinus = m.p_amp_mv * _gauss(x, -m.pr_s, m.p_sigma_s)
    p_pac = m.pac_p_frac * m.p_amp_mv * _gauss(x, -m.pac_pr_s, 0.85 * m.p_sigma_s)
    pvc = m.pvc_frac * r * _gauss(x, 0.0, m.pvc_sigma_s) - 0.35 * m.pvc_frac * r * _gauss(
        x, 2.2 * m.pvc_sigma_s, 1.1 * m.pvc_sigma_s
    )
    qrs = np.stack([qrs_core + p_sinus, qrs_core + p_pac, pvc, qrs_core])
    t_offsets = np.arange(-round(_T_HALF_S * fs_hz), round(_T_HALF_S * fs_hz) + 1)
    tx = t_offsets / fs_hz
    t_normal = m.t_frac * r * _gauss(tx, 0.0, m.t_sigma_s)
    t_pvc = -m.pvc_t_frac * m.pvc_frac * r * _gauss(tx, 0.02, 1.4 * m.t_sigma_s)
    t = np.stack([t_normal, t_normal, t_pvc, t_normal])
    return BeatTemplates(fs_hz=fs_hz, offsets=offsets, qrs=qrs, t_offsets=t_offsets, t=t, rt_s=m.rt_s)


def _beat_kinds(beat_types: np.ndarray, af_mask: np.ndarray) -> np.ndarray:
    """Row in ``BEAT_KINDS`` per beat from annotated types (N, A, V, Q, ...) and the AF flag.

    Q (unclassifiable) and any other type draw as N; in AF or flutter N and A lose their P (F).
    """
    code = beat_types.view(np.uint32)  # 'U1' as code points: compares without string machinery
    kinds = np.where(code == ord("V"), 2, np.where(code == ord("A"), 1, 0))
    return np.where(af_mask & (kinds != 2), 3, kinds)


def render_beats(
    beat_times_s: np.ndarray,
    beat_types: Sequence[str] | np.ndarray,
    af_mask: np.ndarray,
    *,
    fs_hz: float,
    t0_s: float,
    duration_s: float,
    morphology: Morphology,
    rng: np.random.Generator,
    noise_mv: float = 0.02,
    wander: bool = True,
    flutter_mask: np.ndarray | None = None,
    motion_spans_s: Sequence[tuple[float, float]] = (),
    motion_mv: float = 0.5,
    lead_off_spans_s: Sequence[tuple[float, float]] = (),
    templates: BeatTemplates | None = None,
    first_rr_s: float | None = None,
) -> np.ndarray:
    """Render lead I in mV over ``[t0_s, t0_s + duration_s)`` at ``fs_hz``: [round(duration_s * fs_hz)].

    ``beat_times_s`` [k] are R-peak times (s, same clock as ``t0_s``), ascending, with
    ``beat_types`` [k] in N, A, V, Q; pass beats from about 0.8 s before ``t0_s`` to 0.4 s after
    the end so waves that straddle an edge (T waves, P waves) are drawn. ``af_mask`` [k] is
    True for beats in AF or flutter: they lose their P wave and the baseline after them carries
    f-waves (F-waves where ``flutter_mask``).
    ``motion_spans_s`` add motion bursts of about ``motion_mv``; ``lead_off_spans_s`` replace
    the signal by an electrode-off flat line. White noise of ``noise_mv`` comes from ``rng``.
    ``first_rr_s`` is the RR interval before the first beat given (it places that beat's T
    wave); without it the next interval stands in. With those margins and ``first_rr_s``,
    windows rendered apart join exactly as one rendered whole (noise aside).
    """
    if fs_hz <= 0 or duration_s <= 0:
        raise ValueError(f"fs_hz ({fs_hz}) and duration_s ({duration_s}) must be positive.")
    times = np.asarray(beat_times_s, dtype=np.float64)
    types = np.asarray(beat_types).astype("U1")
    af = np.asarray(af_mask, dtype=bool)
    if not (times.shape == types.shape == af.shape):
        raise ValueError("beat_times_s, beat_types and af_mask must have the same length.")
    flutter = np.zeros_like(af) if flutter_mask is None else np.asarray(flutter_mask, dtype=bool)
    tpl = templates if templates is not None else beat_templates(morphology, float(fs_hz))
    n = round(duration_s * fs_hz)
    out = np.zeros(n, dtype=np.float64)

    if times.size:
        r_idx = np.rint((times - t0_s) * fs_hz).astype(np.int64)
        rr_prev = np.empty_like(times)
        rr_prev[1:] = times[1:] - times[:-1]
        if first_rr_s is not None:
            rr_prev[0] = first_rr_s
        else:
            rr_prev[0] = rr_prev[1] if times.size > 1 else 1.0
        np.minimum(np.maximum(rr_prev, 0.3, out=rr_prev), 2.0, out=rr_prev)
        t_shift = np.rint(np.sqrt(rr_prev) * (tpl.rt_s * fs_hz)).astype(np.int64)
        kinds = _beat_kinds(types, af)
        idx = np.concatenate(
            ((r_idx[:, None] + tpl.offsets).ravel(), ((r_idx + t_shift)[:, None] + tpl.t_offsets).ravel())
        )
        weights = np.concatenate((tpl.qrs[kinds].ravel(), tpl.t[kinds].ravel()))
        ok = (idx >= 0) & (idx < n)
        out += np.bincount(idx[ok], weights=weights[ok], minlength=n)
        if af.any():
            in_fib, in_flutter = _atrial_masks(r_idx, af, flutter, n)
            if in_fib.any():
                out += in_fib * artefacts.fibrillatory_wave(
                    t0_s, n, fs_hz=fs_hz, amp_mv=morphology.f_amp_mv, freqs_hz=morphology.f_freqs_hz,
                    phases=morphology.f_phases,
                )
            if in_flutter.any():
                out += in_flutter * artefacts.flutter_wave(
                    t0_s, n, fs_hz=fs_hz, amp_mv=morphology.flutter_amp_mv, rate_hz=morphology.flutter_rate_hz,
                    phase=morphology.phase,
                )
    if wander:
        out += artefacts.baseline_wander(
            t0_s, n, fs_hz=fs_hz, amp_mv=morphology.wander_amp_mv, resp_hz=morphology.resp_hz,
            drift_hz=morphology.drift_hz, phase=morphology.phase,
        )
    if noise_mv > 0:
        out += noise_mv * gaussian_noise(n, rng)
    for start_s, end_s in motion_spans_s:
        a, b = _span_indices(start_s, end_s, t0_s, fs_hz, n)
        if b > a:
            out[a:b] += artefacts.motion_burst(b - a, fs_hz=fs_hz, amp_mv=motion_mv, rng=rng)
    for start_s, end_s in lead_off_spans_s:
        a, b = _span_indices(start_s, end_s, t0_s, fs_hz, n)
        if b > a:
            out[a:b] = artefacts.electrode_off(b - a, noise_mv=0.005, rng=rng)
    return out


_NOISE_BANK_SIZE = 1 << 20


@lru_cache(maxsize=1)
def _noise_bank() -> np.ndarray:
    bank = np.random.default_rng(0x5EED).standard_normal(_NOISE_BANK_SIZE, dtype=np.float32)
    bank.flags.writeable = False
    return bank


def gaussian_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` unit Gaussian samples: a slice of a fixed bank of 2**20 at an offset drawn from ``rng``.

    Ten times cheaper than fresh draws (it was the largest cost of a window); within a window
    the noise is white and Gaussian, and ``rng`` still decides it, so runs replay exactly.
    Windows longer than the bank get fresh draws.
    """
    if n >= _NOISE_BANK_SIZE // 2:
        return rng.standard_normal(n)
    start = int(rng.integers(0, _NOISE_BANK_SIZE - n))
    return _noise_bank()[start : start + n]


def _span_indices(start_s: float, end_s: float, t0_s: float, fs_hz: float, n: int) -> tuple[int, int]:
    """Sample slice ``[a, b)`` of a window starting at ``t0_s`` covered by ``[start_s, end_s)``."""
    a = min(max(int(np.ceil((start_s - t0_s) * fs_hz - 1e-9)), 0), n)
    b = min(max(int(np.ceil((end_s - t0_s) * fs_hz - 1e-9)), 0), n)
    return a, b


def _atrial_masks(r_idx: np.ndarray, af: np.ndarray, flutter: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Sample masks [n] (fibrillation, flutter): a sample belongs to the beat at or before it.

    Samples before the first beat take the first beat's state. Built from runs of equal state,
    so the cost is per run, not per sample.
    """
    state = np.where(af, np.where(flutter, 2, 1), 0)
    starts = np.clip(r_idx, 0, n)
    starts[0] = 0
    change = np.flatnonzero(np.diff(state)) + 1
    run_starts = np.concatenate(([0], change))
    run_ends = np.concatenate((change, [state.size]))
    fib = np.zeros(n, dtype=np.float32)
    flut = np.zeros(n, dtype=np.float32)
    for i0, i1 in zip(run_starts, run_ends, strict=True):
        a = starts[i0]
        b = n if i1 >= state.size else starts[i1]
        if state[i0] == 1:
            fib[a:b] = 1.0
        elif state[i0] == 2:
            flut[a:b] = 1.0
    return fib, flut
