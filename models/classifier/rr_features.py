"""Whole-record RR-interval features for the record-level aggregator.

A 10 s window sees a dozen beats; "Other rhythm" in CinC 2017 is often a few ectopic beats or a short
run somewhere in a 9-61 s recording, and the mean of window probabilities dilutes it. Beat-to-beat
statistics over the whole record (R peaks by NeuroKit2 on the record at its own rate, so QRS timing is
not blurred by resampling to the network's 100 Hz) see every beat once.

Features (all finite; a record with too few beats gets neutral values and ``rr_ok = 0``):

- ``hr_mean_bpm``, ``hr_min_bpm``, ``hr_max_bpm``: 60 / mean RR, and from the 90th / 10th RR percentile
  (robust to one missed or extra detection, which a raw min/max is not)
- ``rr_cv``: RR standard deviation / mean (irregularity; AF is high)
- ``rmssd_rel``: root mean square of successive RR differences / mean RR
- ``ectopic_frac``: fraction of RR intervals more than 20 % away from the median of their 5 neighbours
  (premature beats and their compensatory pauses; AF makes many, sinus rhythm none)
- ``drr_lag1``: lag-1 autocorrelation of successive differences (about -0.5 for isolated ectopy and for
  white-noise RR, near 0 for smooth sinus variability)
- ``cosen``: Lake & Moorman's coefficient of sample entropy (``ecgmon.rr.cosen``, the alert engine's AF
  evidence) over the whole record; -2.0 (sinus-like) when undefined
- ``beats_per_s``: detected beats per second of record (detector sanity: noise gives too many or too few)
- ``rr_ok``: 1 if at least ``MIN_RR`` usable intervals were found, else 0
"""

from __future__ import annotations

import warnings

import numpy as np

from ecgmon.rr import MIN_RR, RR_MAX_S, RR_MIN_S, cosen

RR_FEATURES: tuple[str, ...] = (
    "hr_mean_bpm",
    "hr_min_bpm",
    "hr_max_bpm",
    "rr_cv",
    "rmssd_rel",
    "ectopic_frac",
    "drr_lag1",
    "cosen",
    "beats_per_s",
    "rr_ok",
)
ECTOPIC_REL = 0.20
"""An interval more than this fraction away from its local median counts as ectopic-like."""
LOCAL_MEDIAN_BEATS = 5
COSEN_MAX_RR = 500
"""COSEn compares every pair of intervals (memory grows with the square): longer records are cut into
consecutive segments of at most this many intervals and their COSEn averaged (CinC 2017 records have < 200)."""
COSEN_UNDEFINED = -2.0
"""COSEn when it cannot be estimated: a sinus-like value, so a missing estimate is not AF evidence."""
_NEUTRAL = {
    "hr_mean_bpm": 75.0,
    "hr_min_bpm": 75.0,
    "hr_max_bpm": 75.0,
    "rr_cv": 0.0,
    "rmssd_rel": 0.0,
    "ectopic_frac": 0.0,
    "drr_lag1": 0.0,
    "cosen": COSEN_UNDEFINED,
}


def r_peak_times_s(signal_mv: np.ndarray, fs_hz: float) -> np.ndarray:
    """R-peak times in s of one record ``signal_mv [samples]`` at ``fs_hz`` (NeuroKit2 ``neurokit`` detector).

    Returns an empty array when the detector fails (flat or very short records) rather than raising:
    a record without beats is the aggregator's business, not an error.
    """
    import neurokit2 as nk

    x = np.nan_to_num(np.asarray(signal_mv, dtype=np.float64).ravel())
    if x.size < 2 * fs_hz or not np.any(x != x[0]):
        return np.zeros(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            clean = nk.ecg_clean(x, sampling_rate=int(round(fs_hz)))
            _, info = nk.ecg_peaks(clean, sampling_rate=int(round(fs_hz)))
        except (ValueError, IndexError, ZeroDivisionError, KeyError):
            return np.zeros(0)
    peaks = np.asarray(info["ECG_R_Peaks"], dtype=np.float64)
    return np.sort(peaks) / fs_hz


def rr_features(signal_mv: np.ndarray, fs_hz: float) -> np.ndarray:
    """Whole-record RR features of ``signal_mv [samples]`` (mV at ``fs_hz``) -> ``[len(RR_FEATURES)]`` float64."""
    if fs_hz <= 0:
        raise ValueError(f"fs_hz must be positive, got {fs_hz}.")
    duration_s = max(len(signal_mv) / fs_hz, 1e-9)
    t = r_peak_times_s(signal_mv, fs_hz)
    return rr_features_from_peaks(t, duration_s)


def rr_features_from_peaks(peak_times_s: np.ndarray, duration_s: float) -> np.ndarray:
    """RR features from R-peak times ``[k]`` in s over a record of ``duration_s`` (see module docstring)."""
    t = np.asarray(peak_times_s, dtype=np.float64)
    rr_all = np.diff(t)
    rr = rr_all[(rr_all >= RR_MIN_S) & (rr_all <= RR_MAX_S)]
    out = dict(_NEUTRAL)
    out["beats_per_s"] = float(len(t) / duration_s)
    out["rr_ok"] = 0.0
    if len(rr) >= MIN_RR:
        mean_rr = float(rr.mean())
        drr = np.diff(rr)
        half = LOCAL_MEDIAN_BEATS // 2
        padded = np.pad(rr, half, mode="edge")
        local = np.median(np.lib.stride_tricks.sliding_window_view(padded, LOCAL_MEDIAN_BEATS), axis=1)
        lag1 = 0.0
        if len(drr) >= 3 and drr[:-1].std() > 0 and drr[1:].std() > 0:
            lag1 = float(np.corrcoef(drr[:-1], drr[1:])[0, 1])
        segments = [rr[i : i + COSEN_MAX_RR] for i in range(0, len(rr), COSEN_MAX_RR)]
        values = [v for seg in segments if (v := cosen(seg)) is not None and np.isfinite(v)]
        c = float(np.mean(values)) if values else None
        out.update(
            hr_mean_bpm=60.0 / mean_rr,
            hr_min_bpm=60.0 / float(np.percentile(rr, 90)),
            hr_max_bpm=60.0 / float(np.percentile(rr, 10)),
            rr_cv=float(rr.std() / mean_rr),
            rmssd_rel=float(np.sqrt(np.mean(drr**2)) / mean_rr),
            ectopic_frac=float(np.mean(np.abs(rr - local) > ECTOPIC_REL * local)),
            drr_lag1=lag1 if np.isfinite(lag1) else 0.0,
            cosen=COSEN_UNDEFINED if c is None else c,
            rr_ok=1.0,
        )
    return np.array([out[k] for k in RR_FEATURES], dtype=np.float64)
