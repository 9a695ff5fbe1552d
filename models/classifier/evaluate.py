"""Per-record evaluation of the committed classifier (and its baseline in the same run).

Records of any length and any header rate are resampled to the model's rate, cut into 10 s windows
(hop ``hop_s``; the last window aligned to the record's end; shorter records padded), and the window
probabilities are combined per record (``models.classifier.aggregate``): by the fitted record-level
aggregator (window statistics + whole-record RR features, R peaks found at the record's own rate), by their
mean, or by their per-class maximum. The CinC 2017 entries scored whole recordings, so does this.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ecgmon.errors import ConfigError, DataError
from models.classifier.aggregate import (
    AGGREGATIONS,
    AGGREGATOR_PATH,
    load_aggregator,
    max_rule,
    mean_rule,
    record_features,
)
from models.classifier.metrics import paired_bootstrap, score
from models.classifier.preprocess import record_windows
from models.classifier.rr_features import rr_features
from models.datasets.labels import class_index, ludb_label
from models.interfaces import Classifier

DATASETS = ("cinc2017", "ludb")
AUTO_AGGREGATION = {"cinc2017": "aggregator", "ludb": "mean"}
"""``--aggregate auto``: the aggregator where it was fitted (CinC 2017-style single-lead recordings of
9-61 s); the mean on LUDB (10 s 12-lead rest ECGs, one window each, another definition of O)."""


@dataclass
class RecordSet:
    """Lead I of each record at the model's rate, its class, name, and (if asked) the record at its own rate."""

    signals: list[np.ndarray]
    y: np.ndarray
    names: list[str]
    native: list[tuple[np.ndarray, float]] | None = None


def window_probs(
    model: Classifier, signals: list[np.ndarray], hop_s: float, mc_samples: int = 0
) -> list[np.ndarray]:
    """Window probabilities per record: ``signals[i] [samples_i]`` mV at ``model.fs_hz`` -> ``[k_i, 4]`` each."""
    hop = max(1, round(hop_s * model.fs_hz))
    wins = [record_windows(s, model.window_samples, hop) for s in signals]
    probs = model.predict(np.concatenate(wins), mc_samples=mc_samples).probs
    cuts = np.cumsum([len(w) for w in wins])[:-1]
    return list(np.split(probs, cuts))


def record_probs(
    model: Classifier, signals: list[np.ndarray], hop_s: float, mc_samples: int = 0
) -> np.ndarray:
    """Mean window probabilities per record: ``signals[i] [samples_i]`` mV at ``model.fs_hz`` -> ``[n, 4]``"""
    return mean_rule(window_probs(model, signals, hop_s, mc_samples))


def load_records(
    dataset: str, path: Path, fs_hz: float, records: list[str] | None, *, native: bool = False
) -> RecordSet:
    """Lead I of every (or each listed) record in ``path`` at ``fs_hz``; with ``native``, also at its own rate."""
    if dataset == "cinc2017":
        from ecgmon.dsp import resample
        from models.datasets.cinc2017 import load_cinc2017, read_record_native

        if not native:
            data = load_cinc2017(path, fs_hz, records)
            return RecordSet(data.signals, np.array([class_index(c) for c in data.labels]), data.record_ids)
        from models.datasets.cinc2017 import listed_records

        ref, names = listed_records(path, records)
        raw = [read_record_native(path, n) for n in names]
        sigs = [resample(s, f, fs_hz, dtype=np.float32) for s, f in raw]
        return RecordSet(sigs, np.array([class_index(ref[n]) for n in names]), names, raw)
    if dataset == "ludb":
        from models.datasets.wfdb12 import load_ludb

        tl = load_ludb(path, fs_hz=fs_hz)
        keep = [i for i, n in enumerate(tl.record_ids) if records is None or n in set(records)]
        if not keep:
            raise DataError(f"None of the listed records is in {path}.")
        sigs = [tl.signals[i, 0].astype(np.float32) for i in keep]
        y = np.array([class_index(ludb_label(tl.rhythm[i])) for i in keep])
        names = [tl.record_ids[i] for i in keep]
        nat = None
        if native:
            own = load_ludb(path)
            where = {n: i for i, n in enumerate(own.record_ids)}
            nat = [(own.signals[where[n], 0].astype(np.float64), float(own.fs_hz)) for n in names]
        return RecordSet(sigs, y, names, nat)
    raise DataError(f"Unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}.")


def rr_matrix(native: list[tuple[np.ndarray, float]]) -> np.ndarray:
    """``rr_features`` of every record given at its own rate -> ``[n, len(RR_FEATURES)]``."""
    return np.stack([rr_features(sig, fs) for sig, fs in native])


def aggregate(
    method: str,
    model: Classifier,
    wprobs: list[np.ndarray],
    rr: np.ndarray | None,
    aggregator_path: Path = AGGREGATOR_PATH,
) -> np.ndarray:
    """Record probabilities ``[n, 4]`` from window probabilities by ``method`` (one of ``AGGREGATIONS``)."""
    if method == "mean":
        return mean_rule(wprobs)
    if method == "max":
        return max_rule(wprobs)
    if method == "aggregator":
        if rr is None:
            raise ValueError("The aggregator needs the records' RR features.")
        agg = load_aggregator(model.name, model.version, aggregator_path)
        feats = np.stack([record_features(p, r) for p, r in zip(wprobs, rr, strict=True)])
        return agg.predict_proba(feats)
    raise ConfigError(f"Unknown aggregation {method!r}; choose one of {', '.join(AGGREGATIONS)}.")


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
    aggregation: str = "auto",
    aggregator_path: Path = AGGREGATOR_PATH,
    progress: Callable[[str], None] = lambda _: None,
) -> dict[str, object]:
    """Score ``model_name`` and ``baseline_name`` per record on ``path``; returns the evaluation JSON dict.

    The top-level figures use ``aggregation`` (``auto``: see ``AUTO_AGGREGATION``); the plain mean's figures
    are always added under ``mean_aggregation`` so the two can be compared on the same run.
    """
    from models.registry import load

    if aggregation != "auto" and aggregation not in AGGREGATIONS:
        raise ConfigError(f"Unknown aggregation {aggregation!r}; choose auto or one of {', '.join(AGGREGATIONS)}.")
    if dataset not in DATASETS:
        raise DataError(f"Unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}.")
    method = AUTO_AGGREGATION[dataset] if aggregation == "auto" else aggregation
    model = load(model_name, device=device)
    base = load(baseline_name, device=device)
    if base.fs_hz != model.fs_hz:
        raise DataError("The model and its baseline expect different rates; evaluate them separately.")
    if method == "aggregator":  # fail before the slow part if the aggregator does not fit these weights
        load_aggregator(model.name, model.version, aggregator_path)
        load_aggregator(base.name, base.version, aggregator_path)
    progress(f"reading {dataset} records from {path}")
    rs = load_records(dataset, Path(path), model.fs_hz, records, native=method == "aggregator")
    rr = None
    if rs.native is not None:
        progress(f"R peaks and RR features of {len(rs.names)} records")
        rr = rr_matrix(rs.native)
    progress(f"scoring {len(rs.names)} records with {model.name}")
    wp = window_probs(model, rs.signals, hop_s)
    progress(f"scoring {len(rs.names)} records with {base.name}")
    wp_base = window_probs(base, rs.signals, hop_s)
    probs = aggregate(method, model, wp, rr, aggregator_path)
    base_probs = aggregate(method, base, wp_base, rr, aggregator_path)
    result: dict[str, object] = {"dataset": dataset, **score(rs.y, probs)}
    result["baseline"] = {**score(rs.y, base_probs), "name": base.name, "version": base.version}
    if bootstrap > 0:
        rng = np.random.default_rng(0)
        result["model_minus_baseline"] = paired_bootstrap(rs.y, probs, base_probs, bootstrap, rng)
    result["model"] = {"name": model.name, "version": model.version}
    result["classes"] = list(model.classes) if hasattr(model, "classes") else ["N", "A", "O", "~"]
    result["aggregation_method"] = method
    descr = {
        "mean": "mean of window probabilities per record",
        "max": "per-class maximum of window probabilities per record, renormalised",
        "aggregator": f"record-level logistic regression over window-probability statistics and whole-record "
        f"RR features ({Path(aggregator_path).name})",
    }
    result["aggregation"] = f"{descr[method]}; {model.window_samples}-sample windows, hop {hop_s:g} s"
    if method != "mean":
        mean_model, mean_base = mean_rule(wp), mean_rule(wp_base)
        result["mean_aggregation"] = {**score(rs.y, mean_model), "baseline": score(rs.y, mean_base)}
    return result
