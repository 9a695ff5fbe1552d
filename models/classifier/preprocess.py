"""The classifier's one preprocessing step, shared by training and ``predict``.

Band-pass 0.5-40 Hz (4th-order Butterworth, zero phase) removes baseline wander and mains/EMG noise
and, at 100 Hz, keeps every source below 50 Hz alike (ptbxl_z's 500 Hz- and 100 Hz-sourced rows carry
the same band, so the source rate cannot leak into the rhythm). Per-window, per-lead normalisation
(median removed, divided by a robust scale) makes the model blind to gain and units, which differ
between devices.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import butter, sosfiltfilt

LOW_HZ = 0.5
HIGH_HZ = 40.0
_ORDER = 4
_EPS_MV = 1e-3


def _sos(fs_hz: float) -> np.ndarray:
    high = min(HIGH_HZ, 0.45 * fs_hz)
    return np.asarray(butter(_ORDER, [LOW_HZ, high], btype="bandpass", fs=fs_hz, output="sos"))


def preprocess_windows(x: np.ndarray, fs_hz: float) -> np.ndarray:
    """Band-pass and normalise windows along the last axis.

    ``x [..., samples]`` in mV at ``fs_hz`` (any leading shape, e.g. ``[n, samples]`` or
    ``[n, 12, samples]``) -> float32 of the same shape, unit-free: each window and lead has median 0
    and a robust scale (1.4826 x median absolute deviation, floored by the standard deviation / 10) of 1.
    """
    if fs_hz <= 2 * LOW_HZ:
        raise ValueError(f"fs_hz must exceed {2 * LOW_HZ} Hz, got {fs_hz}.")
    x = np.nan_to_num(np.asarray(x, dtype=np.float64))
    y = sosfiltfilt(_sos(fs_hz), x, axis=-1)
    y = y - np.median(y, axis=-1, keepdims=True)
    mad = 1.4826 * np.median(np.abs(y), axis=-1, keepdims=True)
    scale = np.maximum(np.maximum(mad, y.std(axis=-1, keepdims=True) / 10.0), _EPS_MV)
    return np.clip(y / scale, -50.0, 50.0).astype(np.float32)


def record_windows(signal: np.ndarray, window_samples: int, hop_samples: int) -> np.ndarray:
    """Cut one record ``[..., samples]`` into windows ``[k, ..., window_samples]``.

    Windows start every ``hop_samples``; the last one is aligned to the record's end so no tail is lost.
    A record shorter than a window is padded at the end with its own median (a flat line, which the
    band-pass turns into zeros), as the stream pads a short window.
    """
    if window_samples < 1 or hop_samples < 1:
        raise ValueError(f"window_samples and hop_samples must be >= 1, got {window_samples}, {hop_samples}.")
    n = signal.shape[-1]
    if n < window_samples:
        pad = np.broadcast_to(
            np.median(signal, axis=-1, keepdims=True), (*signal.shape[:-1], window_samples - n)
        )
        return np.concatenate([signal, pad], axis=-1)[None]
    starts = list(range(0, n - window_samples + 1, hop_samples))
    if starts[-1] != n - window_samples:
        starts.append(n - window_samples)
    return np.stack([signal[..., s : s + window_samples] for s in starts])
