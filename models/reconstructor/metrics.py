"""Per record-lead scores: Pearson r, RMSE and the rank agreement of predicted std with error."""

from __future__ import annotations

import numpy as np
from scipy.stats import spearmanr


def pearson(y: np.ndarray, yhat: np.ndarray) -> np.ndarray:
    """``y, yhat [n, leads, samples]`` -> Pearson r ``[n, leads]`` along time (0 where a side is flat)."""
    yc = y - y.mean(axis=-1, keepdims=True)
    pc = yhat - yhat.mean(axis=-1, keepdims=True)
    den = np.sqrt((yc**2).sum(-1) * (pc**2).sum(-1))
    return np.where(den > 0, (yc * pc).sum(-1) / np.where(den > 0, den, 1.0), 0.0)


def rmse(y: np.ndarray, yhat: np.ndarray) -> np.ndarray:
    """``[n, leads, samples]`` -> RMSE ``[n, leads]`` in the units of ``y``."""
    return np.sqrt(((y - yhat) ** 2).mean(axis=-1))


def uncertainty_error_spearman(std: np.ndarray, err_rmse: np.ndarray) -> float:
    """Spearman rho between each record-lead's mean predicted std ``[n, leads, samples]`` and its RMSE."""
    u = std.mean(axis=-1).ravel()
    if np.ptp(u) == 0:
        return 0.0
    return float(spearmanr(u, err_rmse.ravel()).statistic)
