"""P-wave coherence (ecgmon.atrial): repeated P waves score high, fibrillatory waves low."""

from __future__ import annotations

import math

import numpy as np

from ecgmon.atrial import p_wave_coherence

FS = 300.0


def _beats(rng: np.random.Generator, *, p_wave: bool) -> tuple[np.ndarray, np.ndarray]:
    """10 s of beats: regular with a Gaussian P wave 160 ms before each R, or irregular (RR 0.45-1.1 s) over
    6.3 Hz fibrillatory waves and noise, as in AF."""
    x = np.zeros(int(10 * FS))
    t = np.arange(x.size) / FS
    if p_wave:
        peaks = (np.linspace(0.6, 9.4, 12) * FS).astype(int)
    else:
        times = 0.6 + np.cumsum(rng.uniform(0.45, 1.1, 20))
        peaks = (times[times < 9.6] * FS).astype(int)
    for p in peaks:
        x += np.exp(-(((t - p / FS) / 0.012) ** 2))
    if p_wave:
        for p in peaks:
            x += 0.15 * np.exp(-(((t - p / FS + 0.16) / 0.025) ** 2))
    else:
        x += 0.1 * np.sin(2 * math.pi * 6.3 * t + rng.uniform(0, 2 * math.pi))
        x += 0.05 * rng.standard_normal(x.size)
    return x, peaks


def test_sinus_p_waves_are_coherent_and_fibrillation_is_not() -> None:
    rng = np.random.default_rng(0)
    sinus, peaks = _beats(rng, p_wave=True)
    fib, fib_peaks = _beats(rng, p_wave=False)
    assert p_wave_coherence(sinus, peaks, FS) > 0.95
    assert p_wave_coherence(fib, fib_peaks, FS) < 0.3


def test_too_few_beats_give_no_verdict() -> None:
    x = np.zeros(int(10 * FS))
    assert math.isnan(p_wave_coherence(x, np.array([600, 1500]), FS))
