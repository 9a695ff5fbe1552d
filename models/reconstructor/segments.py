"""Where in the beat the error sits: QRS and T-wave masks from lead I R peaks.

Used to test the published claim that metadata helps most in the QRS complex and the T wave.
Windows are fixed offsets from each R peak (QRS: R -60..+60 ms; T: R +150..+400 ms), a plain
approximation that needs no delineation of the reconstructed leads.
"""

from __future__ import annotations

import numpy as np

from ecgmon.dsp import r_peaks

QRS_MS = (-60.0, 60.0)
T_MS = (150.0, 400.0)


def beat_masks(lead_i: np.ndarray, fs_hz: float) -> dict[str, np.ndarray]:
    """``lead_i [n, samples]`` -> boolean masks ``{"qrs": [n, samples], "t": [n, samples]}``."""
    n, length = lead_i.shape
    masks = {"qrs": np.zeros((n, length), bool), "t": np.zeros((n, length), bool)}
    for i in range(n):
        for peak in r_peaks(lead_i[i], fs_hz, clean=True):
            for name, (lo_ms, hi_ms) in (("qrs", QRS_MS), ("t", T_MS)):
                lo = max(0, peak + round(lo_ms * fs_hz / 1000))
                hi = min(length, peak + round(hi_ms * fs_hz / 1000))
                masks[name][i, lo:hi] = True
    return masks


def masked_rmse(y: np.ndarray, yhat: np.ndarray, mask: np.ndarray) -> float:
    """RMSE over ``[n, leads, samples]`` where ``mask [n, samples]`` is true (NaN if the mask is empty)."""
    m = np.broadcast_to(mask[:, None, :], y.shape)
    return float(np.sqrt(((y - yhat)[m] ** 2).mean())) if m.any() else float("nan")
