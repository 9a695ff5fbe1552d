"""The beat-timed renderer, checked on physics (issue 14, item 1).

NeuroKit2 is the reference: its R-peak detector must find our beats where the Long-Term AF
Database says they are, and heart rates must match the annotations.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import neurokit2 as nk
import numpy as np
import pytest
from scipy import signal

from simulators import artefacts
from simulators.ltafdb import load_timeline, render_span
from simulators.render import Morphology, render_beats


def _peaks_s(x: np.ndarray, fs_hz: float) -> np.ndarray:
    _, info = nk.ecg_peaks(nk.ecg_clean(x, sampling_rate=fs_hz), sampling_rate=fs_hz)
    return np.asarray(info["ECG_R_Peaks"], dtype=np.float64) / fs_hz


def _spans(tl, rhythm: str, span_s: float, k: int) -> list[float]:
    """Up to ``k`` starts of ``span_s``-long spans inside ``rhythm`` whose RR lie in 0.32-1.2 s.

    NeuroKit2's detector never reports two peaks within 0.3 s (its refractory delay), and in
    RR gaps much longer than its 0.75 s averaging window its adaptive threshold sinks to the
    T wave and the noise (measured: false peaks only where RR > 1.25 s, at 35 bpm), so those
    stretches test the detector, not the renderer.
    """
    out: list[float] = []
    times = tl.beat_times_s
    for t0 in np.arange(tl.labelled_from_s + 60, tl.labelled_to_s - 2 * span_s, 97.0):
        beats = times[(times >= t0 - 1) & (times < t0 + span_s + 1)]
        if beats.size < 5 or np.diff(beats).min() < 0.32 or np.diff(beats).max() > 1.2:
            continue
        notes = set(tl.rhythm_at(np.array([t0, t0 + span_s / 2, t0 + span_s])))
        if notes == {rhythm}:
            out.append(float(t0))
        if len(out) == k:
            break
    return out


@pytest.mark.parametrize(
    ("record", "rhythm"), [("00", "(N"), ("01", "(AFIB"), ("12", "(AFIB"), ("23", "(AFIB"), ("16", "(N")]
)
def test_ltafdb_r_peaks_within_20_ms_and_heart_rate_within_1_bpm(data_dir: Path, record: str, rhythm: str) -> None:
    tl = load_timeline(data_dir / "ltafdb", record)
    rng = np.random.default_rng(int(record) + 7)
    morphology = Morphology.draw(rng)
    starts = _spans(tl, rhythm, 60.0, 3)
    assert starts, f"no clean {rhythm} span in record {record}"
    fs_hz = 250.0
    for t0 in starts:
        x = render_span(tl, t0_s=t0, duration_s=60.0, fs_hz=fs_hz, morphology=morphology, rng=rng)
        found = _peaks_s(x, fs_hz) + t0
        found = found[(found > t0 + 0.5) & (found < t0 + 59.5)]
        beats = tl.beat_times_s[(tl.beat_times_s > t0 + 0.5) & (tl.beat_times_s < t0 + 59.5)]
        error_s = np.abs(found[:, None] - beats[None, :]).min(axis=1)
        assert error_s.max() <= 0.020, f"{record} {rhythm} at {t0:.0f} s: a detected peak is {error_s.max():.3f} s off"
        missed = np.abs(beats[:, None] - found[None, :]).min(axis=1) > 0.020
        assert missed.mean() <= 0.02, f"{record} {rhythm} at {t0:.0f} s: {missed.sum()} of {beats.size} beats missed"
        hr_true = 60.0 * (beats.size - 1) / (beats[-1] - beats[0])
        hr_found = 60.0 * (found.size - 1) / (found[-1] - found[0])
        assert abs(hr_found - hr_true) <= 1.0


@pytest.mark.parametrize("fs_hz", [128.0, 360.0, 500.0])
def test_peaks_found_at_any_rate(fs_hz: float) -> None:
    rng = np.random.default_rng(3)
    beats = np.cumsum(np.full(30, 0.8) + rng.normal(0, 0.02, 30))
    x = render_beats(beats, ["N"] * 30, np.zeros(30, bool), fs_hz=fs_hz, t0_s=1.0, duration_s=20.0,
                     morphology=Morphology.draw(rng), rng=rng)
    assert x.shape == (round(20.0 * fs_hz),)
    found = _peaks_s(x, fs_hz) + 1.0
    inside = beats[(beats > 1.5) & (beats < 20.5)]
    assert np.abs(inside[:, None] - found[None, :]).min(axis=1).max() <= 0.02


def _beat_locked_mean(x: np.ndarray, beats_s: np.ndarray, fs_hz: float, t0_s: float, pre_s: float, post_s: float):
    idx = np.rint((beats_s - t0_s) * fs_hz).astype(int)
    a, b = round(pre_s * fs_hz), round(post_s * fs_hz)
    idx = idx[(idx - a >= 0) & (idx + b < x.size)]
    return np.mean([x[i - a : i + b] for i in idx], axis=0)


def test_af_beats_lose_their_p_wave_and_gain_a_4_to_9_hz_baseline() -> None:
    fs_hz = 250.0
    m = Morphology(p_amp_mv=0.15, pr_s=0.16, f_amp_mv=0.08)
    rng = np.random.default_rng(0)
    rr = rng.uniform(0.6, 1.1, 200)  # same irregular timing for both, so only atrial activity differs
    beats = np.cumsum(rr)
    kw: dict[str, Any] = dict(
        fs_hz=fs_hz, t0_s=0.0, duration_s=float(beats[-1]), morphology=m, noise_mv=0.0, wander=False
    )
    sinus = render_beats(beats, ["N"] * beats.size, np.zeros(beats.size, bool), rng=rng, **kw)
    af = render_beats(beats, ["N"] * beats.size, np.ones(beats.size, bool), rng=rng, **kw)
    p_sinus = _beat_locked_mean(sinus, beats, fs_hz, 0.0, 0.25, 0.0)
    p_af = _beat_locked_mean(af, beats, fs_hz, 0.0, 0.25, 0.0)
    p_window = slice(round((0.25 - 0.16 - 0.03) * fs_hz), round((0.25 - 0.16 + 0.03) * fs_hz))
    assert p_sinus[p_window].max() > 0.12  # a P wave about 0.16 s before R
    assert np.abs(p_af[p_window]).max() < 0.03  # f-waves are not locked to the beats: no P in the average
    f, pxx = signal.welch(af - sinus, fs=fs_hz, nperseg=1024)
    assert 4.0 <= f[np.argmax(pxx)] <= 9.0


def test_f_wave_amplitude_varies_and_joins_across_windows() -> None:
    kw: dict[str, Any] = dict(fs_hz=250.0, amp_mv=0.1, freqs_hz=(4.8, 6.1, 7.9), phases=(0.3, 1.2, 2.0))
    whole = artefacts.fibrillatory_wave(1000.0, 5000, **kw)
    halves = np.concatenate([artefacts.fibrillatory_wave(1000.0, 2500, **kw),
                             artefacts.fibrillatory_wave(1010.0, 2500, **kw)])
    assert np.allclose(whole, halves, atol=1e-4)
    envelope = np.abs(signal.hilbert(whole))
    assert envelope.std() / envelope.mean() > 0.2


def test_ventricular_beats_are_wide_and_atrial_beats_have_an_early_p() -> None:
    fs_hz = 500.0
    m = Morphology(pr_s=0.18, pac_pr_s=0.11, pac_p_frac=0.7)
    beats = np.arange(1.0, 61.0, 1.0)
    rng = np.random.default_rng(1)
    kw: dict[str, Any] = dict(fs_hz=fs_hz, t0_s=0.0, duration_s=62.0, morphology=m, noise_mv=0.0, wander=False, rng=rng)
    mean = {}
    for kind in "NAV":
        x = render_beats(beats, [kind] * beats.size, np.zeros(beats.size, bool), **kw)
        mean[kind] = _beat_locked_mean(x, beats, fs_hz, 0.0, 0.3, 0.15)

    def width_s(w: np.ndarray) -> float:
        qrs = w[round(0.25 * fs_hz) :]
        return float((qrs > 0.5 * qrs.max()).sum() / fs_hz)

    assert width_s(mean["V"]) > 2.0 * width_s(mean["N"])
    assert np.abs(mean["V"][: round(0.2 * fs_hz)]).max() < 0.02  # no P before a ventricular beat
    p_n = np.argmax(mean["N"][: round(0.25 * fs_hz)])
    p_a = np.argmax(np.abs(mean["A"][: round(0.25 * fs_hz)]))
    assert (p_a - p_n) / fs_hz == pytest.approx(0.07, abs=0.01)  # the atrial beat's P is 70 ms closer to R


def test_windows_rendered_apart_equal_one_rendered_whole() -> None:
    rng = np.random.default_rng(5)
    m = Morphology.draw(rng)
    beats = np.cumsum(rng.uniform(0.5, 1.2, 40))
    types = rng.choice(["N", "A", "V"], 40, p=[0.8, 0.1, 0.1])
    af = np.arange(40) > 20
    whole = render_beats(beats, types, af, fs_hz=250.0, t0_s=2.0, duration_s=20.0, morphology=m, noise_mv=0.0, rng=rng)
    parts = [
        render_beats(beats, types, af, fs_hz=250.0, t0_s=t0, duration_s=10.0, morphology=m, noise_mv=0.0, rng=rng)
        for t0 in (2.0, 12.0)
    ]
    assert np.allclose(whole, np.concatenate(parts), atol=1e-4)


def test_same_generator_seed_same_signal_and_lead_off_is_flat() -> None:
    beats = np.arange(0.5, 12.0, 0.8)
    args = (beats, ["N"] * beats.size, np.zeros(beats.size, bool))
    kw: dict[str, Any] = dict(
        fs_hz=250.0, t0_s=0.0, duration_s=10.0, morphology=Morphology(), lead_off_spans_s=[(5.0, 20.0)]
    )
    a = render_beats(*args, rng=np.random.default_rng(9), **kw)
    b = render_beats(*args, rng=np.random.default_rng(9), **kw)
    assert np.array_equal(a, b)
    assert a[: 1250].std() > 0.1 and a[1250:].std() < 0.01
