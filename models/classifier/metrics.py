"""Per-record scores in the CinC 2017 style: F1 per class, mean F1 over N/A/O, macro AUROC, confusion."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import confusion_matrix, f1_score, roc_auc_score

from models.interfaces import CLASSES


def score(y_true: np.ndarray, probs: np.ndarray) -> dict[str, object]:
    """``y_true [n]`` class indices, ``probs [n, 4]`` record probabilities -> the evaluation metric keys.

    F1 is computed for every class (0.0 when a class is absent from both truth and prediction is
    reported as ``None``); ``f1_mean_nao`` is the challenge's headline, the mean over N, A, O;
    ``auroc_macro`` averages one-vs-rest AUROC over the classes present in ``y_true`` (with at least one
    negative); ``confusion`` is rows = truth, columns = prediction, in ``CLASSES`` order.
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    pred = np.asarray(probs).argmax(axis=1)
    labels = list(range(len(CLASSES)))
    f1_all = f1_score(y_true, pred, labels=labels, average=None, zero_division=0.0)
    present = set(y_true.tolist()) | set(pred.tolist())
    f1 = {c: (float(f1_all[i]) if i in present else None) for i, c in enumerate(CLASSES)}
    nao = [v for c in ("N", "A", "O") if (v := f1[c]) is not None]
    aucs = []
    for i in labels:
        pos = y_true == i
        if pos.any() and (~pos).any():
            aucs.append(float(roc_auc_score(pos, np.asarray(probs)[:, i])))
    return {
        "records": int(len(y_true)),
        "f1": f1,
        "f1_mean_nao": float(np.mean(nao)) if nao else None,
        "auroc_macro": float(np.mean(aucs)) if aucs else None,
        "confusion": confusion_matrix(y_true, pred, labels=labels).tolist(),
    }


def f1_nao(y_true: np.ndarray, pred: np.ndarray) -> list[float]:
    """F1 of N, A and O for class indices ``pred`` against ``y_true`` (0.0 for a class absent from both)."""
    return [float(v) for v in f1_score(y_true, pred, labels=[0, 1, 2], average=None, zero_division=0.0)]


def paired_bootstrap(
    y_true: np.ndarray, probs_a: np.ndarray, probs_b: np.ndarray, n_boot: int, rng: np.random.Generator
) -> dict[str, object]:
    """Gap in ``f1_mean_nao`` (a minus b) on the same records, with a 95 % percentile bootstrap interval.

    Records are resampled with replacement ``n_boot`` times; both models are scored on the same resample, so
    the interval says whether the gap is larger than what record sampling alone produces.
    """
    y_true = np.asarray(y_true)
    pa, pb = np.asarray(probs_a).argmax(axis=1), np.asarray(probs_b).argmax(axis=1)

    def mean_f1(y: np.ndarray, p: np.ndarray) -> float:
        return float(np.mean(f1_nao(y, p)))

    diffs = []
    for _ in range(n_boot):
        i = rng.integers(0, len(y_true), len(y_true))
        diffs.append(mean_f1(y_true[i], pa[i]) - mean_f1(y_true[i], pb[i]))
    lo, hi = np.percentile(diffs, [2.5, 97.5])
    return {
        "f1_mean_nao": mean_f1(y_true, pa) - mean_f1(y_true, pb),
        "ci95": [float(lo), float(hi)],
        "n_boot": n_boot,
    }
