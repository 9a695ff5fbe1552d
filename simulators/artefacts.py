"""Things that are not the heart: baseline wander, motion bursts, electrode off, f- and F-waves.

Every function returns a signal in mV on the sample grid it is given. Waves that must join
seamlessly across windows (wander, fibrillatory and flutter baselines) are functions of the
absolute time ``t_s`` with per-patient frequencies and phases, so two windows rendered
separately meet without a step. Random bursts take an ``np.random.Generator``.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy import signal


def _phase(t0_s: float, n: int, fs_hz: float, freq_hz: float, phase: float) -> np.ndarray:
    """``2*pi*freq_hz*t + phase`` at ``t = t0_s + k / fs_hz`` as float32 [n], exact for large ``t0_s``.

    The whole-window offset is reduced modulo 2*pi in float64, so float32 (several times faster
    for ``np.sin``) only carries the small within-window part.
    """
    base = (2 * np.pi * freq_hz * t0_s + phase) % (2 * np.pi)
    step = np.float32(2 * np.pi * freq_hz / fs_hz)
    return np.float32(base) + step * _arange32(n)


@lru_cache(maxsize=8)
def _arange32(n: int) -> np.ndarray:
    out = np.arange(n, dtype=np.float32)
    out.flags.writeable = False
    return out


def baseline_wander(
    t0_s: float, n: int, *, fs_hz: float, amp_mv: float, resp_hz: float, drift_hz: float, phase: float
) -> np.ndarray:
    """Respiratory wander plus a slower electrode drift for ``n`` samples from ``t0_s`` -> mV [n]."""
    resp = np.sin(_phase(t0_s, n, fs_hz, resp_hz, phase))
    drift = np.sin(_phase(t0_s, n, fs_hz, drift_hz, 1.7 * phase))
    return np.float32(amp_mv) * (resp + np.float32(0.6) * drift)


def fibrillatory_wave(
    t0_s: float, n: int, *, fs_hz: float, amp_mv: float, freqs_hz: tuple[float, ...], phases: tuple[float, ...]
) -> np.ndarray:
    """AF f-waves for ``n`` samples from ``t0_s``: a few 4-9 Hz components -> mV [n].

    Each component is frequency-modulated (about +-0.8 Hz) and amplitude-modulated (+-60 %),
    so the baseline is irregular in rhythm and in size, as f-waves are.
    """
    out = np.zeros(n, dtype=np.float32)
    for k, (f_hz, ph) in enumerate(zip(freqs_hz, phases, strict=True)):
        fm_hz = 0.13 + 0.07 * k
        fm = np.float32(0.8 / fm_hz) * np.sin(_phase(t0_s, n, fs_hz, fm_hz, 2.1 * ph))
        am = np.float32(1.0) + np.float32(0.6) * np.sin(_phase(t0_s, n, fs_hz, 0.21 + 0.05 * k, ph))
        out += am * np.sin(_phase(t0_s, n, fs_hz, f_hz, ph) + fm)
    return np.float32(amp_mv / len(freqs_hz)) * out


def flutter_wave(t0_s: float, n: int, *, fs_hz: float, amp_mv: float, rate_hz: float, phase: float) -> np.ndarray:
    """Atrial-flutter F-waves for ``n`` samples from ``t0_s``: a regular negative sawtooth -> mV [n]."""
    return -amp_mv * signal.sawtooth(_phase(t0_s, n, fs_hz, rate_hz, phase), width=0.8)


def motion_burst(n: int, *, fs_hz: float, amp_mv: float, rng: np.random.Generator) -> np.ndarray:
    """Motion artefact: band-limited (0.5-15 Hz) noise with a few steps, ``n`` samples in mV."""
    if n == 0:
        return np.zeros(0)
    sos = _motion_sos(float(fs_hz))
    noise = signal.sosfilt(sos, rng.normal(0.0, 1.0, n + int(fs_hz)))[int(fs_hz) :]
    noise *= amp_mv / (np.std(noise) + 1e-12)
    steps = np.zeros(n)
    for _ in range(int(rng.integers(0, 3))):
        steps[int(rng.integers(0, n)) :] += rng.normal(0.0, amp_mv)
    return noise + steps


@lru_cache(maxsize=16)
def _motion_sos(fs_hz: float) -> np.ndarray:
    return signal.butter(2, [0.5, min(15.0, 0.45 * fs_hz)], btype="bandpass", fs=fs_hz, output="sos")


def electrode_off(n: int, *, noise_mv: float, rng: np.random.Generator) -> np.ndarray:
    """Electrode off: the amplifier sees a flat line with a little input noise, ``n`` samples in mV."""
    return rng.normal(0.0, noise_mv, n)

