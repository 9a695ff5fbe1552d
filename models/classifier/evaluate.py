"""Per-record evaluation of the committed classifier (and its baseline in the same run).

Records of any length and any header rate are resampled to the model's rate, cut into 10 s windows
(hop ``hop_s``; the last window aligned to the record's end; shorter records padded), and the window
probabilities are averaged per record, as the CinC 2017 entries scored whole recordings.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from ecgmon.errors import DataError
from models.classifier.metrics import paired_bootstrap, score
from models.classifier.preprocess import record_windows
from models.datasets.labels import class_index, ludb_label
from models.interfaces import Classifier

DATASETS = ("cinc2017", "ludb")


def record_probs(
    model: Classifier, signals: list[np.ndarray], hop_s: float, mc_samples: int = 0
) -> np.ndarray:
    """Mean window probabilities per record: ``signals[i] [samples_i]`` mV at ``model.fs_hz`` -> ``[n, 4]``"""
    hop = max(1, round(hop_s * model.fs_hz))
    wins = [record_windows(s, model.window_samples, hop) for s in signals]
    owner = np.concatenate([np.full(len(w), i) for i, w in enumerate(wins)])
    probs = model.predict(np.concatenate(wins), mc_samples=mc_samples).probs
    out = np.zeros((len(signals), probs.shape[1]))
    np.add.at(out, owner, probs)
    return out / np.bincount(owner, minlength=len(signals))[:, None]


def load_lead_i(
    dataset: str, path: Path, fs_hz: float, records: list[str] | None
) -> tuple[list[np.ndarray], np.ndarray, list[str]]:
    """Lead I of every (or each listed) record in ``path`` at ``fs_hz`` -> (signals, classes, names)."""
    if dataset == "cinc2017":
        from models.datasets.cinc2017 import load_cinc2017

        data = load_cinc2017(path, fs_hz, records)
        return data.signals, np.array([class_index(c) for c in data.labels]), data.record_ids
    if dataset == "ludb":
        from models.datasets.wfdb12 import load_ludb

        tl = load_ludb(path, fs_hz=fs_hz)
        keep = [i for i, n in enumerate(tl.record_ids) if records is None or n in set(records)]
        if not keep:
            raise DataError(f"None of the listed records is in {path}.")
        sigs = [tl.signals[i, 0].astype(np.float32) for i in keep]
        y = np.array([class_index(ludb_label(tl.rhythm[i])) for i in keep])
        return sigs, y, [tl.record_ids[i] for i in keep]
    raise DataError(f"Unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}.")


def evaluate(
    dataset: str,
    path: Path,
    *,
    model_name: str = "student",
    baseline_name: str = "baseline",
    records: list[str] | None = None,
    device: str = "cpu",
    hop_s: float = 5.0,
    bootstrap: int = 0,
    progress: Callable[[str], None] = lambda _: None,
) -> dict[str, object]:
    """Score ``model_name`` and ``baseline_name`` per record on ``path``; returns the evaluation JSON dict."""
    from models.registry import load

    model = load(model_name, device=device)
    base = load(baseline_name, device=device)
    if base.fs_hz != model.fs_hz:
        raise DataError("The model and its baseline expect different rates; evaluate them separately.")
    progress(f"reading {dataset} records from {path}")
    signals, y, names = load_lead_i(dataset, Path(path), model.fs_hz, records)
    progress(f"scoring {len(names)} records with {model.name}")
    probs = record_probs(model, signals, hop_s)
    result: dict[str, object] = {"dataset": dataset, **score(y, probs)}
    progress(f"scoring {len(names)} records with {base.name}")
    base_probs = record_probs(base, signals, hop_s)
    result["baseline"] = {**score(y, base_probs), "name": base.name, "version": base.version}
    if bootstrap > 0:
        rng = np.random.default_rng(0)
        result["model_minus_baseline"] = paired_bootstrap(y, probs, base_probs, bootstrap, rng)
    result["model"] = {"name": model.name, "version": model.version}
    result["classes"] = list(model.classes) if hasattr(model, "classes") else ["N", "A", "O", "~"]
    result["aggregation"] = (
        f"mean of {model.window_samples}-sample window probabilities per record, hop {hop_s:g} s"
    )
    return result
