"""Preprocessing of a batch of windows: resample to the model's rate, crop/pad, and the physics.

The physics (R peaks, heart rate, RR intervals, signal quality, lead-off) is measured on each
window at its own source rate, so it does not depend on the model's input rate. The model's own
filtering and normalisation happen inside its ``predict``; here the model input is lead I in mV at
``model_fs_hz``, ``model_window_samples`` long.

Signal quality (``sqi`` in [0, 1]) combines three physical indices after Zhao & Zhao (2018),
"SQI quality evaluation mechanism of single-lead ECG signal based on simple heuristic fusion and
fuzzy comprehensive evaluation", Front. Physiol. 9:727 (the ``zhao2018`` method of NeuroKit2's
``ecg_quality``, which returns only a category), each mapped linearly onto [0, 1]:

* kSQI, the kurtosis of the band-passed window: QRS complexes make ECG peaky (kurtosis > 5 is
  good), Gaussian noise has kurtosis 3.
* pSQI, the power in 5-15 Hz over 5-40 Hz: the QRS band carries half to ~85 % of clean ECG.
* basSQI, the power in 1-40 Hz over 0-40 Hz: baseline wander below 1 Hz lowers it. The ramp is
  set for wearables (clean cinc2017 records score 0.8-0.95, noisy ones 0.45-0.75).

``sqi = kSQI x (pSQI + basSQI) / 2``: without peaky QRS complexes (kSQI = 0) nothing else counts.

Lead-off is a flat line (peak-to-peak below ``flat_mv``) or saturation (more than
``clip_fraction`` of the samples sitting at the window's extreme values).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache, partial

import numpy as np
from scipy.signal import butter, sosfiltfilt, welch

from ecgmon import dsp
from ecgmon.atrial import p_wave_coherence
from ecgmon.dsp import r_peaks

PEAK_METHOD = "neurokit"
"""NeuroKit2's R-peak method (``ecgmon.dsp``): ~0.15 CPU ms per 10 s window, robust on ambulatory ECG."""
_BAND_HZ = (0.5, 40.0)

resample = partial(dsp.resample, dtype=np.float32)
"""``ecgmon.dsp.resample`` to float32, what the models and the waveform encoder take."""
_KSQI_RANGE = (3.0, 5.0)
_PSQI_GOOD = (0.5, 0.85)
_PSQI_ZERO = (0.25, 1.0)
_BASSQI_RANGE = (0.5, 0.8)


@dataclass(frozen=True)
class Prepared:
    """A preprocessed batch of ``n`` windows.

    ``x [n, model_window_samples]`` lead I in mV at the model rate; ``hr_bpm [n]`` (NaN with fewer
    than 2 beats); ``sqi [n]`` in [0, 1]; ``rr_s`` RR intervals in s per window; ``max_rr_s [n]`` the
    longest RR including the gaps to the window edges (NaN without beats); ``lead_off [n]``;
    ``p_wave_coherence [n]`` (``ecgmon.atrial``; NaN with too few beats).
    """

    x: np.ndarray
    hr_bpm: np.ndarray
    sqi: np.ndarray
    rr_s: list[np.ndarray]
    max_rr_s: np.ndarray
    lead_off: np.ndarray
    p_wave_coherence: np.ndarray


def fit_length(x: np.ndarray, samples: int) -> np.ndarray:
    """Crop ``x [n, k]`` to its first ``samples``, or pad it at the end with each row's median."""
    if x.shape[1] >= samples:
        return x[:, :samples]
    pad = np.repeat(np.median(x, axis=1, keepdims=True), samples - x.shape[1], axis=1)
    return np.concatenate([x, pad], axis=1)


@lru_cache(maxsize=32)
def _bandpass_sos(fs_hz: float) -> np.ndarray:
    """The band-pass's second-order sections at ``fs_hz``, designed once per rate (``butter`` took ~0.5 ms a call)."""
    high = min(_BAND_HZ[1], 0.45 * fs_hz)
    return np.asarray(butter(4, [_BAND_HZ[0], high], btype="bandpass", fs=fs_hz, output="sos"))


def _bandpass(x: np.ndarray, fs_hz: float) -> np.ndarray:
    sos = _bandpass_sos(float(fs_hz))
    padlen = min(x.shape[-1] - 1, 3 * (2 * len(sos) + 1))
    return np.asarray(sosfiltfilt(sos, x, axis=-1, padlen=padlen))


def _ramp(v: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return np.clip((v - lo) / (hi - lo), 0.0, 1.0)


def _kurtosis(x: np.ndarray) -> np.ndarray:
    """Pearson kurtosis of each row of ``x [n, k]``: ``scipy.stats.kurtosis(x, axis=-1, fisher=False)``, same bits.

    SciPy's arithmetic step for step (mean, m2 = mean(d**2), m4 = mean((d**2)**2), NaN where m2 is
    zero to rounding) without its NaN-policy wrapper, which cost ~0.9 ms per call whatever the batch
    (issue 24); ``tests/test_preprocess.py`` checks the bits against SciPy.
    """
    mean = np.mean(x, axis=-1, keepdims=True)
    d2 = (x - mean) ** 2
    m2 = np.mean(d2, axis=-1)
    m4 = np.mean(d2**2, axis=-1)
    with np.errstate(all="ignore"):
        zero = m2 <= (np.finfo(m2.dtype).eps * mean[..., 0]) ** 2
        return np.asarray(np.where(zero, np.nan, m4 / m2**2.0))


def signal_quality(raw: np.ndarray, filtered: np.ndarray, fs_hz: float) -> np.ndarray:
    """SQI in [0, 1] of windows ``raw [n, k]`` (mV) and their band-passed copy, at ``fs_hz`` (see module doc)."""
    k_sqi = _ramp(_kurtosis(filtered), *_KSQI_RANGE)
    nperseg = min(raw.shape[-1], int(4 * fs_hz))
    f, pxx = welch(raw - raw.mean(axis=-1, keepdims=True), fs=fs_hz, nperseg=nperseg, axis=-1)
    top = min(40.0, fs_hz / 2)

    def band(lo: float, hi: float) -> np.ndarray:
        # Contiguous rows: NumPy sums a strided selection in another order, so a window's SQI would
        # change in the last bit with the size of its batch (replays must give the same bits).
        return np.asarray(np.ascontiguousarray(pxx[..., (f >= lo) & (f <= hi)]).sum(axis=-1))

    eps = 1e-12
    p_ratio = band(5.0, 15.0) / (band(5.0, top) + eps)
    p_sqi = np.minimum(_ramp(p_ratio, _PSQI_ZERO[0], _PSQI_GOOD[0]), 1.0 - _ramp(p_ratio, _PSQI_GOOD[1], _PSQI_ZERO[1]))
    bas_sqi = _ramp(band(1.0, top) / (band(0.0, top) + eps), *_BASSQI_RANGE)
    return np.asarray(k_sqi * (p_sqi + bas_sqi) / 2.0)


def lead_off(raw: np.ndarray, *, flat_mv: float, clip_fraction: float) -> np.ndarray:
    """``[n]`` bool: flat line (peak-to-peak < ``flat_mv``) or saturated (``clip_fraction`` at the extremes)."""
    hi = raw.max(axis=-1, keepdims=True)
    lo = raw.min(axis=-1, keepdims=True)
    flat = (hi - lo)[:, 0] < flat_mv
    pinned = ((raw == hi) | (raw == lo)).mean(axis=-1)
    return np.asarray(flat | (pinned > clip_fraction))


def rhythm(peaks: np.ndarray, n_samples: int, fs_hz: float) -> tuple[np.ndarray, float, float]:
    """``(rr_s, hr_bpm, max_rr_s)`` from R-peak indices in a window of ``n_samples`` at ``fs_hz``."""
    rr = np.diff(peaks) / fs_hz
    hr = float(60.0 / rr.mean()) if rr.size else math.nan
    if peaks.size == 0:
        return rr, hr, math.nan
    edges = [peaks[0] / fs_hz, (n_samples - 1 - peaks[-1]) / fs_hz]
    return rr, hr, float(max([*rr.tolist(), *edges]))


def prepare_batch(
    samples: Sequence[np.ndarray],
    fs_hz: Sequence[float],
    *,
    model_fs_hz: float,
    model_window_samples: int,
    flat_mv: float,
    clip_fraction: float,
    min_peak_ratio: float,
) -> Prepared:
    """Prepare windows ``samples[i] [k_i]`` (mV at ``fs_hz[i]``) for the models and the alert engine.

    Windows that share a rate and length are filtered and resampled together in one call. The
    lead-off thresholds come from ``Settings.lead_off_flat_mv`` and ``lead_off_clip_fraction``, the
    R-peak floor from ``Settings.r_peak_min_ratio``.
    """
    n = len(samples)
    if len(fs_hz) != n:
        raise ValueError(f"got {n} windows but {len(fs_hz)} rates")
    x = np.zeros((n, model_window_samples), dtype=np.float32)
    hr = np.full(n, np.nan)
    sqi = np.zeros(n)
    max_rr = np.full(n, np.nan)
    coherence = np.full(n, np.nan)
    off = np.zeros(n, dtype=bool)
    rr_list: list[np.ndarray] = [np.zeros(0)] * n
    groups: dict[tuple[float, int], list[int]] = {}
    for i, (s, fs) in enumerate(zip(samples, fs_hz, strict=True)):
        groups.setdefault((float(fs), int(np.shape(s)[0])), []).append(i)
    for (fs, length), idx in groups.items():
        raw = np.stack([np.asarray(samples[i], dtype=np.float64) for i in idx])
        x[idx] = fit_length(resample(raw, fs, model_fs_hz), model_window_samples)
        filtered = _bandpass(raw, fs)
        sqi[idx] = signal_quality(raw, filtered, fs)
        off[idx] = lead_off(raw, flat_mv=flat_mv, clip_fraction=clip_fraction)
        for row, i in enumerate(idx):
            found = r_peaks(filtered[row], fs, method=PEAK_METHOD, min_ratio=min_peak_ratio) if not off[i] else None
            peaks = np.zeros(0, dtype=np.int64) if found is None else found
            rr_list[i], hr[i], max_rr[i] = rhythm(peaks, length, fs)
            coherence[i] = p_wave_coherence(filtered[row], peaks, fs)
    sqi[off] = 0.0
    return Prepared(
        x=x, hr_bpm=hr, sqi=sqi, rr_s=rr_list, max_rr_s=max_rr, lead_off=off, p_wave_coherence=coherence
    )
