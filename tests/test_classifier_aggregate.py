"""Record-level aggregator: RR features on real and simulated records, the shipped coefficients, eval JSON."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ecgmon.errors import ModelError
from models.classifier.aggregate import (
    AGGREGATOR_PATH,
    FEATURES,
    load_aggregator,
    max_rule,
    mean_rule,
    record_features,
)
from models.classifier.rr_features import RR_FEATURES, rr_features, rr_features_from_peaks
from models.interfaces import CLASSES
from models.registry import load
from tests.conftest import (
    DATA,
    eval_mini_cinc2017,
)

CINC = DATA / "cinc2017"
VAL_LIST = AGGREGATOR_PATH.parent / "classifier_cinc2017_val_records.txt"
needs_cinc = pytest.mark.skipif(not (CINC / "REFERENCE.csv").is_file(), reason="shared cinc2017 folder absent")


def _held_out(per_class: int) -> list[str]:
    from models.classifier.data import read_record_list
    from models.datasets.cinc2017 import read_reference

    ref = read_reference(CINC)
    held = read_record_list(VAL_LIST)
    return [n for c in CLASSES for n in [h for h in held if ref[h] == c][:per_class]]


def test_rr_features_follow_the_heart_rate_of_a_simulated_ecg() -> None:
    import neurokit2 as nk

    fs_hz = 300.0
    x = nk.ecg_simulate(duration=30, sampling_rate=int(fs_hz), heart_rate=70, heart_rate_std=1, random_state=4)
    f = dict(zip(RR_FEATURES, rr_features(np.asarray(x), fs_hz), strict=True))
    assert f["rr_ok"] == 1.0
    assert abs(f["hr_mean_bpm"] - 70.0) < 2.0
    assert f["ectopic_frac"] < 0.05 and f["rr_cv"] < 0.05
    assert abs(f["beats_per_s"] - 70.0 / 60.0) < 0.1


def test_rr_features_of_ectopy_and_of_no_beats() -> None:
    rr = np.full(40, 0.8)
    rr[10::8] = 0.5  # premature beats ...
    rr[11::8] = 1.1  # ... with compensatory pauses
    f = dict(zip(RR_FEATURES, rr_features_from_peaks(np.concatenate([[0.0], np.cumsum(rr)]), 33.0), strict=True))
    assert 0.05 < f["ectopic_frac"] < 0.3 and f["drr_lag1"] < -0.2
    flat = rr_features(np.zeros(3000), 300.0)
    assert np.all(np.isfinite(flat)) and flat[RR_FEATURES.index("rr_ok")] == 0.0
    assert np.all(np.isfinite(rr_features(np.zeros(100), 300.0)))  # shorter than the detector's minimum


def test_rr_features_of_a_long_irregular_record_stay_cheap_and_say_af() -> None:
    rng = np.random.default_rng(0)
    t = np.cumsum(rng.uniform(0.4, 1.2, 5000))  # ~67 min of AF-like intervals: COSEn in segments
    f = dict(zip(RR_FEATURES, rr_features_from_peaks(t, float(t[-1])), strict=True))
    assert f["rr_ok"] == 1.0 and f["cosen"] > -1.4 and f["rr_cv"] > 0.2


def test_mean_and_max_rules() -> None:
    a = np.array([[0.9, 0.0, 0.1, 0.0], [0.3, 0.0, 0.7, 0.0]])
    np.testing.assert_allclose(mean_rule([a])[0], [0.6, 0.0, 0.4, 0.0])
    np.testing.assert_allclose(max_rule([a])[0], [0.9 / 1.6, 0.0, 0.7 / 1.6, 0.0])


def test_shipped_aggregator_loads_and_is_tied_to_the_weights(tmp_path: Path) -> None:
    for name in ("student", "baseline"):
        agg = load_aggregator(name, load(name).version)
        assert agg.features == FEATURES and agg.coef.shape == (len(CLASSES), len(FEATURES))
        p = agg.predict_proba(np.tile(agg.mean, (3, 1)))
        np.testing.assert_allclose(p.sum(axis=1), 1.0)
    doc = json.loads(AGGREGATOR_PATH.read_text())
    doc["models"]["student"]["model_version"] = "student-000000000000"
    other = tmp_path / "agg.json"
    other.write_text(json.dumps(doc))
    with pytest.raises(ModelError, match="refit"):
        load_aggregator("student", load("student").version, other)


@needs_cinc
def test_features_are_finite_on_real_records() -> None:
    from models.classifier.evaluate import load_records, rr_matrix, window_probs

    model = load("student")
    rs = load_records("cinc2017", CINC, model.fs_hz, _held_out(2), native=True)
    assert rs.native is not None and rs.native[0][1] == 300.0
    rr = rr_matrix(rs.native)
    feats = np.stack([record_features(p, r) for p, r in zip(window_probs(model, rs.signals, 5.0), rr, strict=True)])
    assert feats.shape == (8, len(FEATURES)) and np.all(np.isfinite(feats))
    hr = rr[:, RR_FEATURES.index("hr_mean_bpm")]
    assert np.all((hr > 30) & (hr < 220))


@needs_cinc
def test_eval_with_the_aggregator_keeps_the_schema(tmp_path: Path) -> None:
    names = _held_out(3)
    ref = dict(r.split(",") for r in (CINC / "REFERENCE.csv").read_text().split())
    result = eval_mini_cinc2017(CINC, [f"{n},{ref[n]}" for n in names], tmp_path / "mini")
    keys = {"records", "f1", "f1_mean_nao", "auroc_macro", "confusion"}
    assert keys | {"dataset", "baseline", "model"} <= set(result)
    assert keys <= set(result["baseline"]) and keys <= set(result["mean_aggregation"])
    assert result["aggregation_method"] == "aggregator" and result["records"] == len(names)
    assert set(result["model"]) == {"name", "version"} and np.asarray(result["confusion"]).sum() == len(names)
