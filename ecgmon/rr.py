"""RR-interval evidence of atrial fibrillation: the coefficient of sample entropy (COSEn).

Method: Lake DE, Moorman JR. "Accurate estimation of entropy in very short physiological time
series: the problem of atrial fibrillation detection in implanted ventricular devices."
Am J Physiol Heart Circ Physiol 2011;300:H319-H325, doi:10.1152/ajpheart.00561.2010.

COSEn was built for exactly our case: AF from as few as 12 heart beats, which is what a 10 s window
holds. It is sample entropy (Richman & Moorman 2000) of the RR series with template length m = 1,
made comparable across tolerances by turning the match probability into a density (adding
ln(2r), the "quadratic sample entropy"), minus the log of the mean RR interval (AF is fast as well
as irregular)::

    COSEn = SampEn(m=1, r) + ln(2 r) - ln(mean RR)

The tolerance r starts at 30 ms and grows in 10 ms steps until at least 5 pairs of length-2
templates match (the paper's "minimum numerator count"), so the estimate is defined on short,
very irregular series. Lake & Moorman's cut-off between AF and non-AF is near COSEn = -1.4; we map
COSEn to a score in [0, 1] with a logistic centred there, so 0.5 is the published decision point
and the alert engine's threshold (``alert_af_rr_min_score``) is a setting.
"""

from __future__ import annotations

import math

import numpy as np

COSEN_CENTER = -1.4
"""Lake & Moorman's AF/non-AF cut-off on COSEn; maps to score 0.5."""
COSEN_SCALE = 0.25
"""Logistic width: COSEn one unit above the cut-off scores ~0.98, one unit below ~0.02."""
R_START_S = 0.030
R_STEP_S = 0.010
MIN_MATCHES = 5
"""Minimum numerator count: r grows until this many length-2 template pairs match."""
MIN_RR = 7
"""Fewer RR intervals than this (8 beats) give no verdict: the estimate would be noise."""
RR_MIN_S = 0.2
RR_MAX_S = 3.0
"""RR intervals outside [0.2, 3.0] s are detector misses or pauses (the pause alert handles those)."""


def cosen(rr_s: np.ndarray) -> float | None:
    """COSEn of RR intervals ``rr_s [k]`` in seconds; ``None`` when fewer than ``MIN_RR`` usable intervals.

    Higher is more irregular: sinus rhythm lies around -2.5 to -1.5, AF around -1.2 to 0.
    """
    rr = np.asarray(rr_s, dtype=np.float64).ravel()
    rr = rr[np.isfinite(rr) & (rr >= RR_MIN_S) & (rr <= RR_MAX_S)]
    n = rr.shape[0]
    if n < MIN_RR:
        return None
    # m = 1: templates of length 1 (first n-1 points, as in SampEn) and of length 2.
    a1 = rr[:-1]
    d1 = np.abs(a1[:, None] - a1[None, :])
    d2 = np.maximum(d1[:-1, :-1], np.abs(rr[1:-1][:, None] - rr[1:-1][None, :]))
    iu1 = np.triu_indices(n - 1, k=1)
    iu2 = np.triu_indices(n - 2, k=1)
    pair1 = d1[iu1]
    pair2 = np.sort(d2[iu2])
    if pair2.shape[0] < MIN_MATCHES:
        return None
    # Smallest r on the 30 ms + 10 ms grid with at least MIN_MATCHES length-2 matches.
    need = pair2[MIN_MATCHES - 1]
    steps = max(0.0, math.ceil((need - R_START_S) / R_STEP_S - 1e-9))
    r = R_START_S + steps * R_STEP_S
    matches2 = int(np.count_nonzero(pair2 <= r + 1e-12))
    matches1 = int(np.count_nonzero(pair1 <= r + 1e-12))
    sampen = -math.log(matches2 / matches1)
    return sampen + math.log(2.0 * r) - math.log(float(rr.mean()))


def rr_irregularity(rr_s: np.ndarray) -> float | None:
    """AF evidence in [0, 1] from one window's RR intervals ``rr_s [k]`` in seconds (COSEn, see module).

    0.5 is Lake & Moorman's cut-off (COSEn = -1.4); ``None`` when the window has too few beats.
    """
    value = cosen(rr_s)
    if value is None:
        return None
    return float(1.0 / (1.0 + math.exp(-(value - COSEN_CENTER) / COSEN_SCALE)))
