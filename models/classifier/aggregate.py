"""Record-level aggregation: from a record's window probabilities (and its RR intervals) to one rhythm.

The network sees 10 s windows; CinC 2017 labels whole recordings (9-61 s). Three ways to combine:

- ``mean``: mean of the window probabilities (the original evaluation; dilutes a rhythm seen in one window)
- ``max``: per-class maximum over the windows, renormalised (no fitting; favours any class seen once)
- ``aggregator``: a multinomial logistic regression over per-class window statistics and whole-record RR
  features (``rr_features``), one per network, fitted by ``python -m models.classifier.fit_aggregator``
  and applied here with numpy from ``classifier_aggregator.json`` (no scikit-learn at run time).

The aggregator's coefficients belong to one set of network weights: it is keyed by the network's
``version`` (name + sha256 prefix) and refuses another version rather than silently mis-calibrating.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ecgmon.errors import ModelError
from models.classifier.rr_features import RR_FEATURES
from models.interfaces import CLASSES

AGGREGATIONS: tuple[str, ...] = ("aggregator", "mean", "max")
AGGREGATOR_PATH = Path(__file__).resolve().parents[1] / "weights" / "classifier_aggregator.json"
PROB_STATS: tuple[str, ...] = ("mean", "max", "min", "std")
WINDOW_FEATURES: tuple[str, ...] = (
    *(f"p_{stat}_{c}" for stat in PROB_STATS for c in CLASSES),
    "frac_windows_A",
    "frac_windows_O",
    "log_windows",
)
FEATURES: tuple[str, ...] = (*WINDOW_FEATURES, *RR_FEATURES)
FORMAT = 1
LOG_FLOOR = 1e-4
"""Probabilities are floored here before the log, so a 0 from float rounding stays finite."""


def window_features(window_probs: np.ndarray) -> np.ndarray:
    """Per-class statistics of one record's window probabilities ``[k, 4]`` -> ``[len(WINDOW_FEATURES)]``.

    Mean, max, min and standard deviation over the windows per class, the fraction of windows whose argmax
    is A and O (an intermittent rhythm shows in a few windows), and log of the window count (record length).
    """
    p = np.asarray(window_probs, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != len(CLASSES) or len(p) == 0:
        raise ValueError(f"window_probs must have shape [k >= 1, {len(CLASSES)}], not {list(p.shape)}.")
    arg = p.argmax(axis=1)
    lg = np.log(np.clip(np.stack([p.mean(0), p.max(0), p.min(0)]), LOG_FLOOR, 1.0)).ravel()
    stats = np.concatenate([lg, p.std(0)])
    extra = [float(np.mean(arg == CLASSES.index("A"))), float(np.mean(arg == CLASSES.index("O"))), np.log(len(p))]
    return np.concatenate([stats, extra])


def record_features(window_probs: np.ndarray, rr: np.ndarray) -> np.ndarray:
    """``window_features`` followed by the record's ``rr_features`` -> ``[len(FEATURES)]``."""
    rr = np.asarray(rr, dtype=np.float64)
    if rr.shape != (len(RR_FEATURES),):
        raise ValueError(f"rr must have shape [{len(RR_FEATURES)}] (rr_features order), not {list(rr.shape)}.")
    return np.concatenate([window_features(window_probs), rr])


def mean_rule(window_probs: list[np.ndarray]) -> np.ndarray:
    """Mean of each record's window probabilities -> ``[n, 4]``."""
    return np.stack([np.asarray(p, dtype=np.float64).mean(0) for p in window_probs])


def max_rule(window_probs: list[np.ndarray]) -> np.ndarray:
    """Per-class maximum over each record's windows, renormalised to sum 1 -> ``[n, 4]``."""
    m = np.stack([np.asarray(p, dtype=np.float64).max(0) for p in window_probs])
    return m / m.sum(axis=1, keepdims=True)


@dataclass(frozen=True)
class RecordAggregator:
    """Standardise ``FEATURES`` then softmax(coef x + intercept): record probabilities over ``CLASSES``."""

    model_version: str
    features: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: np.ndarray
    info: dict[str, object]

    def predict_proba(self, feats: np.ndarray) -> np.ndarray:
        """``feats [n, len(features)]`` -> probabilities ``[n, 4]``."""
        x = np.atleast_2d(np.asarray(feats, dtype=np.float64))
        if x.shape[1] != len(self.features):
            raise ValueError(f"feats must have {len(self.features)} columns ({self.features}), not {x.shape[1]}.")
        z = (x - self.mean) / self.scale @ self.coef.T + self.intercept
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form (what ``classifier_aggregator.json`` stores per model)."""
        return {
            "model_version": self.model_version,
            "features": list(self.features),
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "coef": self.coef.tolist(),
            "intercept": self.intercept.tolist(),
            "info": self.info,
        }

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> RecordAggregator:
        """Inverse of ``to_dict``; checks shapes so a hand-edited file fails here, not mid-evaluation."""
        feats = tuple(str(f) for f in d["features"])  # type: ignore[attr-defined]
        agg = cls(
            model_version=str(d["model_version"]),
            features=feats,
            mean=np.asarray(d["mean"], dtype=np.float64),
            scale=np.asarray(d["scale"], dtype=np.float64),
            coef=np.asarray(d["coef"], dtype=np.float64),
            intercept=np.asarray(d["intercept"], dtype=np.float64),
            info=dict(d.get("info", {})),  # type: ignore[call-overload]
        )
        f, k = len(feats), len(CLASSES)
        if agg.mean.shape != (f,) or agg.scale.shape != (f,) or agg.coef.shape != (k, f) or agg.intercept.shape != (k,):
            raise ModelError("The aggregator's coefficient shapes do not match its feature list; refit it.")
        if np.any(agg.scale <= 0):
            raise ModelError("The aggregator has a non-positive feature scale; refit it.")
        return agg


def load_aggregator(model_name: str, model_version: str, path: Path = AGGREGATOR_PATH) -> RecordAggregator:
    """The aggregator fitted for ``model_name`` at ``model_version`` from ``path``.

    Raises ``ModelError`` when the file is missing, holds no entry for the model, the entry was fitted on
    other network weights, or its features differ from this code's ``FEATURES``.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"No record aggregator at {path}; fit one or evaluate with --aggregate mean.")
    doc = json.loads(path.read_text())
    if doc.get("format") != FORMAT:
        raise ModelError(f"{path} has format {doc.get('format')!r}, this code reads {FORMAT}; refit it.")
    entry = doc.get("models", {}).get(model_name)
    if entry is None:
        raise ModelError(f"{path} has no aggregator for {model_name!r}; evaluate with --aggregate mean.")
    agg = RecordAggregator.from_dict(entry)
    if agg.model_version != model_version:
        raise ModelError(
            f"The aggregator for {model_name!r} was fitted on {agg.model_version}, not {model_version}; "
            "refit it (python -m models.classifier.fit_aggregator) or evaluate with --aggregate mean."
        )
    if agg.features != FEATURES:
        raise ModelError(f"The aggregator in {path} uses other features than this code; refit it.")
    return agg
