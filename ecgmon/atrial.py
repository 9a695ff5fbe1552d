"""Atrial activity of one window: is the same P wave there before every QRS?

AF has no P waves: the stretch before each QRS holds fibrillatory waves that differ from beat to beat,
while sinus rhythm (with or without ectopy) repeats the same P wave. The coherence is the energy of
the mean pre-QRS segment over the mean energy of the single segments: 1 when every beat has the same
P wave, about 1/beats for activity unrelated to the QRS. Each segment loses its mean and its linear trend
first: what is left of the previous beat's T wave is mostly a slope, and it would repeat from beat to
beat as a P wave does. On the real-wearable development streams
(CinC 2017 records the classifier never saw) AF windows have a median of 0.14, normal ones 0.57
(``python -m tools.evaluation.alerts.atrial``). The alert engine uses it as a veto: a window with
coherent P waves does not count as AF (``Settings.alert_af_max_p_coherence``).
"""

from __future__ import annotations

import math

import numpy as np

SEGMENT_S = (0.30, 0.06)
"""The pre-QRS segment: from 300 ms to 60 ms before each R peak (the P wave at PR intervals up to 300 ms)."""
MIN_RR_S = 0.60
"""Beats closer than this to the previous one are skipped: their pre-QRS segment would start within the
previous beat's T wave, whose place varies with the RR in AF. Fast AF thus often gives too few beats:
no verdict, never a veto."""
MIN_BEATS = 4
"""Fewer usable beats give no verdict (NaN)."""


def p_wave_coherence(filtered: np.ndarray, peaks: np.ndarray, fs_hz: float) -> float:
    """Coherence in [0, 1] of the pre-QRS segments of one band-passed window ``[samples]``; NaN without enough beats."""
    start, stop = round(SEGMENT_S[0] * fs_hz), round(SEGMENT_S[1] * fs_hz)
    keep = peaks >= start
    keep[1:] &= np.diff(peaks) >= MIN_RR_S * fs_hz
    starts = peaks[keep] - start
    if starts.size < MIN_BEATS:
        return math.nan
    segments = np.asarray(filtered, dtype=np.float64)[starts[:, None] + np.arange(start - stop)]
    segments -= segments.mean(axis=1, keepdims=True)
    ramp = np.linspace(-1.0, 1.0, segments.shape[1])
    segments -= np.outer(segments @ ramp / (ramp @ ramp), ramp)  # the tail of the previous T wave is a slope
    mean = segments.mean(axis=0)
    energy = float(np.mean((segments * segments).sum(axis=1)))
    return float(mean @ mean / energy) if energy > 0 else math.nan
