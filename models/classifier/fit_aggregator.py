"""Fit the record-level aggregator and estimate it honestly: ``python -m models.classifier.fit_aggregator``.

The networks were trained on all 6,569 cinc2017 training records, so their window probabilities there are
overconfident and useless for fitting a second stage. The aggregator is therefore fitted on the 1,159
hold-out records (``classifier_cinc2017_val_records.txt``), and its performance is estimated by **repeated
stratified k-fold cross-validation on that hold-out**: each record is predicted by an aggregator that never
saw it, with the regularisation strength and class weighting chosen by an inner cross-validation inside the
training folds only (nested). The student and the baseline go through the same folds with the same
features, so their out-of-fold predictions can be compared pairwise. The shipped aggregator (one per
network) is then fitted on all 1,159 records with the same inner selection; the hold-out's in-sample
figures of that shipped aggregator are NOT an estimate of anything, the cross-validated ones are.

Writes ``--out`` (the aggregator JSON, read by ``ecgmon eval classifier``) and ``--report`` (the estimate).
scikit-learn is used here only; evaluation applies the saved coefficients with numpy.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path

import numpy as np

from ecgmon.errors import ModelError
from models.classifier.aggregate import (
    AGGREGATOR_PATH,
    FEATURES,
    FORMAT,
    RecordAggregator,
    max_rule,
    mean_rule,
    record_features,
)
from models.classifier.metrics import score
from models.interfaces import CLASSES

VAL_LIST = AGGREGATOR_PATH.parent / "classifier_cinc2017_val_records.txt"
C_GRID = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0)
CLASS_WEIGHTS = (None, "balanced")
INNER_FOLDS = 5


def collect(
    path: Path,
    records: list[str],
    model_names: tuple[str, ...],
    hop_s: float,
    cache_dir: Path,
    weight_files: dict[str, Path] | None = None,
) -> dict[str, object]:
    """Window probabilities of each model and RR features of each record (cached by versions and records).

    ``weight_files`` maps a model name to another weights file (e.g. a second training seed).
    """
    from models.classifier.builders import from_file
    from models.classifier.evaluate import load_records, rr_matrix, window_probs
    from models.registry import load

    files = weight_files or {}
    models = [from_file(n, files[n]) if n in files else load(n) for n in model_names]
    key = hashlib.sha256(
        json.dumps([str(path.resolve()), records, [m.version for m in models], hop_s]).encode()
    ).hexdigest()[:16]
    cache = cache_dir / f"aggregator_inputs_{key}.npz"
    if cache.is_file():
        z = np.load(cache, allow_pickle=False)
        wp = {n: list(np.split(z[f"wp_{n}"], z["cuts"])) for n in model_names}
        return {"y": z["y"], "rr": z["rr"], "wp": wp, "versions": {m.name: m.version for m in models}}
    rs = load_records("cinc2017", path, models[0].fs_hz, records, native=True)
    assert rs.native is not None
    rr = rr_matrix(rs.native)
    wp = {m.name: window_probs(m, rs.signals, hop_s) for m in models}
    cuts = np.cumsum([len(p) for p in wp[models[0].name]])[:-1]
    cache_dir.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, np.ndarray] = {"y": rs.y, "rr": rr, "cuts": cuts}
    arrays.update({f"wp_{n}": np.concatenate(p) for n, p in wp.items()})
    np.savez(cache, **arrays)  # type: ignore[arg-type]
    return {"y": rs.y, "rr": rr, "wp": wp, "versions": {m.name: m.version for m in models}}


def _mean_f1_nao(y: np.ndarray, pred: np.ndarray) -> float:
    from models.classifier.metrics import f1_nao

    return float(np.mean(f1_nao(y, pred)))


def _search(seed: int):  # type: ignore[no-untyped-def]
    """Standardise + multinomial logistic regression, C and class weight chosen by inner stratified CV."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import make_scorer
    from sklearn.model_selection import GridSearchCV, StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    pipe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000))
    grid = {"logisticregression__C": list(C_GRID), "logisticregression__class_weight": list(CLASS_WEIGHTS)}
    inner = StratifiedKFold(INNER_FOLDS, shuffle=True, random_state=seed)
    return GridSearchCV(pipe, grid, scoring=make_scorer(_mean_f1_nao), cv=inner, n_jobs=1)


def cross_validate(
    x: dict[str, np.ndarray], y: np.ndarray, folds: int, repeats: int, seed: int
) -> dict[str, np.ndarray]:
    """Out-of-fold aggregator probabilities ``[repeats, n, 4]`` per model (same folds for every model)."""
    from rich.progress import track
    from sklearn.model_selection import RepeatedStratifiedKFold
    from threadpoolctl import threadpool_limits

    rskf = RepeatedStratifiedKFold(n_splits=folds, n_repeats=repeats, random_state=seed)
    out = {name: np.zeros((repeats, len(y), len(CLASSES))) for name in x}
    splits = rskf.split(np.zeros(len(y)), y)
    # Thousands of small logistic fits gain nothing from BLAS threads, and beside other jobs those threads
    # spin-wait: one run took 30 min instead of 5. scikit-learn's own threadpoolctl pins them to one.
    with threadpool_limits(limits=1):
        for k, (tr, te) in enumerate(track(splits, total=folds * repeats, description="cross-validating folds")):
            r = k // folds
            for name, feats in x.items():
                search = _search(seed + k).fit(feats[tr], y[tr])
                out[name][r, te] = search.predict_proba(feats[te])
    return out


def fit_final(feats: np.ndarray, y: np.ndarray, version: str, seed: int) -> RecordAggregator:
    """Aggregator fitted on all records (inner CV picks C and class weight), as a numpy-applicable object."""
    search = _search(seed).fit(feats, y)
    scaler, lr = search.best_estimator_.steps[0][1], search.best_estimator_.steps[1][1]
    return RecordAggregator(
        model_version=version,
        features=FEATURES,
        mean=np.asarray(scaler.mean_, dtype=np.float64),
        scale=np.asarray(scaler.scale_, dtype=np.float64),
        coef=np.asarray(lr.coef_, dtype=np.float64),
        intercept=np.asarray(lr.intercept_, dtype=np.float64),
        info={
            "C": float(search.best_params_["logisticregression__C"]),
            "class_weight": search.best_params_["logisticregression__class_weight"],
            "inner_cv_f1_mean_nao": float(search.best_score_),
        },
    )


def _bootstrap(y: np.ndarray, pa: np.ndarray, pb: np.ndarray, n_boot: int, seed: int) -> dict[str, object]:
    from models.classifier.metrics import paired_bootstrap

    return paired_bootstrap(y, pa, pb, n_boot, np.random.default_rng(seed))


def summarise(y: np.ndarray, oof: np.ndarray) -> dict[str, object]:
    """Scores of out-of-fold probabilities ``[repeats, n, 4]``: per repeat, their mean/sd, and the repeat mean."""
    per = [score(y, p) for p in oof]
    f1m = np.array([s["f1_mean_nao"] for s in per], dtype=np.float64)
    f1 = {c: float(np.mean([s["f1"][c] for s in per])) for c in CLASSES}  # type: ignore[index]
    return {
        "f1_mean_nao": float(f1m.mean()),
        "f1_mean_nao_sd_over_repeats": float(f1m.std(ddof=1)) if len(f1m) > 1 else 0.0,
        "f1_mean_nao_range": [float(f1m.min()), float(f1m.max())],
        "f1": f1,
        "auroc_macro": float(np.mean([s["auroc_macro"] for s in per])),  # type: ignore[arg-type]
        "confusion_first_repeat": per[0]["confusion"],
        "per_repeat_f1_mean_nao": f1m.tolist(),
    }


def main(argv: list[str] | None = None) -> None:
    """Collect inputs, cross-validate (report), fit on everything (aggregator JSON)."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--path", type=Path, default=Path("../shared/data/cinc2017"))
    ap.add_argument("--records", type=Path, default=VAL_LIST)
    ap.add_argument("--models", nargs="+", default=["student", "baseline"])
    ap.add_argument("--hop-s", type=float, default=5.0)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--bootstrap", type=int, default=1000)
    ap.add_argument("--cache-dir", type=Path, default=Path(".cache/classifier"))
    ap.add_argument("--out", type=Path, default=AGGREGATOR_PATH, help="Aggregator JSON (what eval reads).")
    ap.add_argument("--report", type=Path, required=True, help="Cross-validation report JSON.")
    ap.add_argument("--no-fit", action="store_true", help="Only cross-validate; leave --out alone.")
    ap.add_argument(
        "--weights",
        nargs="*",
        default=[],
        metavar="NAME=PATH",
        help="Score another weights file under a model's name (another seed); implies --no-fit.",
    )
    args = ap.parse_args(argv)
    weight_files = {k: Path(v) for k, v in (w.split("=", 1) for w in args.weights)}
    if weight_files:
        args.no_fit = True

    from models.classifier.data import read_record_list

    t0 = time.time()
    names = read_record_list(args.records)
    data = collect(args.path, names, tuple(args.models), args.hop_s, args.cache_dir, weight_files)
    y: np.ndarray = data["y"]  # type: ignore[assignment]
    rr: np.ndarray = data["rr"]  # type: ignore[assignment]
    wp: dict[str, list[np.ndarray]] = data["wp"]  # type: ignore[assignment]
    versions: dict[str, str] = data["versions"]  # type: ignore[assignment]
    print(f"inputs for {len(y)} records in {time.time() - t0:.0f} s")
    x = {n: np.stack([record_features(p, r) for p, r in zip(wp[n], rr, strict=True)]) for n in args.models}
    if not all(np.isfinite(v).all() for v in x.values()):
        raise ModelError("The aggregator features hold NaN or inf; fix rr_features or aggregate before fitting.")
    oof = cross_validate(x, y, args.folds, args.repeats, args.seed)
    print(f"cross-validated in {time.time() - t0:.0f} s")
    report: dict[str, object] = {
        "dataset": "cinc2017 hold-out",
        "records": int(len(y)),
        "record_list": str(args.records),
        "protocol": (
            f"repeated stratified {args.folds}-fold CV x {args.repeats} repeats (seed {args.seed}) on the hold-out; "
            f"inside each training fold, {INNER_FOLDS}-fold CV picks C in {list(C_GRID)} and class_weight in "
            "[None, balanced] by mean F1 N/A/O; figures are out-of-fold, averaged over repeats"
        ),
        "features": list(FEATURES),
        "weights": {n: str(weight_files.get(n, "committed")) for n in args.models},
        "models": {},
    }
    models_rep: dict[str, object] = {}
    for n in args.models:
        mean_p, max_p = mean_rule(wp[n]), max_rule(wp[n])
        avg_oof = oof[n].mean(0)
        models_rep[n] = {
            "version": versions[n],
            "aggregator_cv": summarise(y, oof[n]),
            "aggregator_cv_repeat_averaged": score(y, avg_oof),
            "mean": score(y, mean_p),
            "max": score(y, max_p),
            "aggregator_minus_mean": _bootstrap(y, avg_oof, mean_p, args.bootstrap, args.seed),
        }
    report["models"] = models_rep
    if len(args.models) >= 2:
        a, b = args.models[0], args.models[1]
        per_rep = [
            _mean_f1_nao(y, oof[a][r].argmax(1)) - _mean_f1_nao(y, oof[b][r].argmax(1)) for r in range(args.repeats)
        ]
        report[f"{a}_minus_{b}"] = {
            "aggregator_cv_per_repeat": per_rep,
            "aggregator_cv_mean": float(np.mean(per_rep)),
            "aggregator_cv_bootstrap": _bootstrap(y, oof[a].mean(0), oof[b].mean(0), args.bootstrap, args.seed),
            "aggregator_cv_bootstrap_note": (
                "paired bootstrap of records on the repeat-averaged out-of-fold probabilities"
            ),
            "mean_bootstrap": _bootstrap(y, mean_rule(wp[a]), mean_rule(wp[b]), args.bootstrap, args.seed),
            "max_bootstrap": _bootstrap(y, max_rule(wp[a]), max_rule(wp[b]), args.bootstrap, args.seed),
        }
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.report}")
    for n in args.models:
        r = models_rep[n]
        cv = r["aggregator_cv"]  # type: ignore[index]
        print(
            f"{n}: aggregator CV mean F1 N/A/O {cv['f1_mean_nao']:.3f} (sd {cv['f1_mean_nao_sd_over_repeats']:.3f}), "
            f"F1 {', '.join(f'{c} {v:.3f}' for c, v in cv['f1'].items())}; "
            f"mean {r['mean']['f1_mean_nao']:.3f}, max {r['max']['f1_mean_nao']:.3f}"  # type: ignore[index]
        )
    if args.no_fit:
        return
    doc = {
        "format": FORMAT,
        "classes": list(CLASSES),
        "hop_s": args.hop_s,
        "fitted_on": (
            f"all {len(y)} cinc2017 hold-out records ({args.records.name}); the networks never trained on them, "
            "but these records are then no longer an unbiased test of network + aggregator: "
            f"use the cross-validated estimate ({args.report.name})"
        ),
        "command": "python -m models.classifier.fit_aggregator --report " + str(args.report),
        "models": {n: fit_final(x[n], y, versions[n], args.seed).to_dict() for n in args.models},
    }
    args.out.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
