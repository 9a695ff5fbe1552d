"""The signal steps every package shares: one resampler and one R-peak detector.

Training, the worker, the simulators and the evaluation must resample and find beats the same way,
or a model meets other data in the stream than it learnt from; so they live here, in the core, on
SciPy's polyphase resampler and NeuroKit2's detectors rather than our own (the resampler's filter is
designed once per rate ratio and handed to SciPy). Rates are arguments in
Hz (``fs_hz``), never module defaults; arrays are ``[..., samples]``.
"""

from __future__ import annotations

import warnings
from fractions import Fraction
from functools import lru_cache

import numpy as np

PEAK_METHODS = ("neurokit", "pantompkins1985", "hamilton2002", "elgendi2010", "engzeemod2012", "kalidas2017")
"""NeuroKit2 R-peak detectors ``r_peaks`` accepts (``ecg_findpeaks``'s ``method``)."""


def resample(x: np.ndarray, fs_hz: float, fs_out_hz: float, *, dtype: type = np.float64) -> np.ndarray:
    """``x [..., samples]`` at ``fs_hz`` resampled to ``fs_out_hz`` along the last axis (polyphase, anti-aliased).

    The rate ratio is taken as a fraction with a denominator up to 1000 (300 -> 100 Hz is 1/3,
    257 -> 100 Hz is 100/257); the filtering runs in float64 and the result comes as ``dtype``.
    """
    if fs_hz <= 0 or fs_out_hz <= 0:
        raise ValueError(f"sampling rates must be positive, got fs_hz={fs_hz} and fs_out_hz={fs_out_hz}")
    if np.isclose(fs_hz, fs_out_hz):
        return np.asarray(x, dtype=dtype)
    from scipy.signal import resample_poly

    ratio = Fraction(fs_out_hz / fs_hz).limit_denominator(1000)
    up, down = ratio.numerator, ratio.denominator
    taps = _poly_taps(up, down)  # SciPy would design this same filter on every call
    y = resample_poly(np.asarray(x, dtype=np.float64), up, down, axis=-1, window=taps)
    return np.asarray(y, dtype=dtype)


@lru_cache(maxsize=64)
def _poly_taps(up: int, down: int) -> np.ndarray:
    """The low-pass FIR ``resample_poly`` designs for coprime ``up``/``down`` (its default Kaiser window, beta 5).

    Designed once per ratio instead of per call (~2 ms a design on this machine, issue 24); SciPy
    copies the array it is given and scales the copy by ``up``, so the output has the same bits.
    """
    from scipy.signal import firwin

    max_rate = max(up, down)
    return np.asarray(firwin(2 * 10 * max_rate + 1, 1.0 / max_rate, window=("kaiser", 5.0)), dtype=np.float64)


def r_peaks(
    x: np.ndarray, fs_hz: float, *, method: str = "neurokit", clean: bool = False, min_ratio: float = 0.0
) -> np.ndarray:
    """R-peak sample indices of one window ``x [samples]`` at ``fs_hz``; empty when none are found.

    ``clean`` band-passes first with ``nk.ecg_clean`` (for a raw window; the worker passes its own
    band-passed signal). A window without beat structure (flat, noise) gives no peaks, not an error.
    ``min_ratio`` drops peaks whose absolute amplitude is below that share of the 75th percentile of
    the peaks found: the detectors take T waves at slow rates and noise inside a long pause for
    beats, which read as a normal rate where there is bradycardia or a pause.
    """
    if method not in PEAK_METHODS:
        raise ValueError(f"method={method!r} is unknown; use one of {', '.join(PEAK_METHODS)}")
    import neurokit2 as nk

    rate = int(round(fs_hz))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            signal = nk.ecg_clean(x, sampling_rate=rate) if clean else x
            found = nk.ecg_findpeaks(signal, sampling_rate=rate, method=method)["ECG_R_Peaks"]
        except (ValueError, IndexError, ZeroDivisionError):  # NeuroKit2 fails on windows without structure
            return np.zeros(0, dtype=np.int64)
    peaks = np.asarray(found, dtype=np.int64)
    if min_ratio > 0 and peaks.size > 1:
        amp = np.abs(np.asarray(signal)[peaks])
        peaks = peaks[amp >= min_ratio * np.percentile(amp, 75)]
    return peaks

