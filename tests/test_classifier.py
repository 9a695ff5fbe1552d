"""Rhythm classifiers: builders, weights vs card, real records, labels, evaluation JSON."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from ecgmon.errors import ConfigError, DataError, ModelError
from models.classifier.evaluate import record_probs
from models.classifier.preprocess import preprocess_windows, record_windows
from models.datasets.labels import ludb_label, ptbxl_label, to_class
from models.interfaces import CLASSES, Classifier
from models.registry import list_models, load
from tests.conftest import (
    DATA,
    eval_mini_cinc2017,
)

CINC = DATA / "cinc2017"
CARD = Path(__file__).resolve().parents[1] / "models" / "weights" / "classifier_CARD.md"
KINDS = ("teacher", "student", "baseline")
VAL_LIST = CARD.parent / "classifier_cinc2017_val_records.txt"
needs_cinc = pytest.mark.skipif(
    not (CINC / "REFERENCE.csv").is_file(), reason="shared cinc2017 folder absent"
)


def _input(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    shape = (n, 12, 1000) if kind == "teacher" else (n, 1000)
    return rng.normal(0.0, 0.3, shape).astype(np.float32)


@pytest.mark.parametrize("kind", KINDS)
def test_every_builder_gives_probabilities(kind: str) -> None:
    model = load(kind, weights=False)
    assert isinstance(model, Classifier)
    assert kind in list_models()
    out = model.predict(_input(kind, 5, np.random.default_rng(0)))
    assert out.probs.shape == (5, len(CLASSES)) and out.uncertainty.shape == (5,)
    np.testing.assert_allclose(out.probs.sum(axis=1), 1.0, atol=1e-5)
    assert np.all((out.uncertainty >= 0) & (out.uncertainty <= 1))
    mc = model.predict(_input(kind, 3, np.random.default_rng(1)), mc_samples=3)
    assert mc.probs.shape == (3, 4) and np.all(np.isfinite(mc.uncertainty))


def test_predict_rejects_wrong_shape() -> None:
    model = load("student", weights=False)
    with pytest.raises(ValueError, match="shape"):
        model.predict(np.zeros((2, 999), dtype=np.float32))


def test_unknown_model_is_named() -> None:
    with pytest.raises(ModelError, match="nonexistent"):
        load("nonexistent")


@pytest.mark.parametrize("kind", KINDS)
def test_committed_weights_match_card(kind: str) -> None:
    model = load(kind)
    assert (model.fs_hz, model.window_samples, tuple(model.classes)) == (100.0, 1000, CLASSES)
    card = CARD.read_text()
    row = re.search(
        rf"^\| `{kind}` \| `classifier_{kind}\.pt` \| (\S+) \| (\d+) \| (\d+) \| ([^|]+) \| `([0-9a-f]+)` \|",
        card,
        re.M,
    )
    assert row, f"card has no metadata row for {kind}"
    fs, window, leads, classes, sha = row.groups()
    assert float(fs) == model.fs_hz and int(window) == model.window_samples
    assert int(leads) == (12 if kind == "teacher" else 1)
    assert tuple(c.strip() for c in classes.replace("`", "").split(",")) == CLASSES
    assert model.version == f"{kind}-{sha}"


@needs_cinc
def test_student_is_sane_on_real_held_out_records() -> None:
    from models.classifier.data import read_record_list
    from models.datasets.cinc2017 import load_cinc2017, read_reference

    held = read_record_list(VAL_LIST)
    ref = read_reference(CINC)
    names = [n for n in held if ref[n] == "N"][:4] + [n for n in held if ref[n] == "A"][:4]
    data = load_cinc2017(CINC, 100.0, names)
    probs = record_probs(load("student"), data.signals, hop_s=5.0)
    assert probs.shape == (8, 4)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    pred = [CLASSES[i] for i in probs.argmax(axis=1)]
    pairs = list(zip(pred, data.labels, strict=True))
    assert sum(p == t for p, t in pairs) >= 6, pairs


def test_label_mapping() -> None:
    assert [ptbxl_label(r) for r in ("AF", "SR", "OTHER")] == ["A", "N", "O"]
    assert ludb_label("Atrial fibrillation\nAberrant conduction") == "A"
    assert ludb_label("Atrial flutter, typical") == "A"
    assert ludb_label("Sinus rhythm") == "N"
    assert ludb_label("Sinus bradycardia") == "O"
    assert to_class("cinc2017", "~") == "~"
    assert to_class("cpsc2018", "N") == "N"
    with pytest.raises(DataError):
        ptbxl_label("SVT")
    with pytest.raises(DataError):
        to_class("mitdb", "N")


def test_preprocess_is_unit_free_and_pads_short_records() -> None:
    rng = np.random.default_rng(3)
    t = np.arange(1000) / 100.0
    x = (np.sin(2 * np.pi * 1.2 * t) + 0.01 * rng.normal(size=1000))[None]
    a, b = preprocess_windows(x, 100.0), preprocess_windows(1000.0 * x, 100.0)
    np.testing.assert_allclose(a, b, atol=1e-4)
    assert abs(float(np.median(a))) < 0.05
    short = np.ones(900, dtype=np.float32)
    w = record_windows(short, 1000, 500)
    assert w.shape == (1, 1000) and np.all(w == 1.0)
    assert record_windows(np.zeros(3050), 1000, 500).shape == (6, 1000)


@needs_cinc
def test_eval_json_has_required_keys(tmp_path: Path) -> None:

    rows = (CINC / "REFERENCE.csv").read_text().splitlines()
    picked = (
        [r for r in rows if r.endswith(",A")][:3]
        + [r for r in rows if r.endswith(",N")][:4]
        + [r for r in rows if r.endswith(",O")][:2]
        + [r for r in rows if r.endswith(",~")][:1]
    )
    result = eval_mini_cinc2017(CINC, picked, tmp_path / "mini")
    keys = {"records", "f1", "f1_mean_nao", "auroc_macro", "confusion"}
    assert keys | {"dataset", "baseline", "model"} <= set(result)
    assert keys <= set(result["baseline"])
    assert set(result["f1"]) == set(CLASSES) and result["records"] == 10
    assert set(result["model"]) == {"name", "version"} and result["model"]["name"] == "student"
    assert np.asarray(result["confusion"]).sum() == 10


def test_eval_rejects_unknown_dataset(tmp_path: Path) -> None:
    from tools.cli.classifier import evaluate

    with pytest.raises(ConfigError):
        evaluate(
            dataset="mitdb",
            path=tmp_path,
            json_out=tmp_path / "x.json",
            records=None,
            model="student",
            baseline="baseline",
            device="cpu",
            hop_s=5.0,
            bootstrap=0,
            aggregate="auto",
        )


@needs_cinc
def test_cinc_reader_follows_the_header_rate(tmp_path: Path) -> None:
    import wfdb

    from models.datasets.cinc2017 import load_cinc2017, read_record

    original = read_record(CINC, "A00001", 300.0)
    from scipy.signal import resample_poly

    at_250 = resample_poly(original.astype(np.float64), 5, 6)
    wfdb.wrsamp(
        "X0001",
        fs=250,
        units=["mV"],
        sig_name=["ECG"],
        p_signal=at_250[:, None],
        fmt=["16"],
        adc_gain=[1000.0],
        baseline=[0],
        write_dir=str(tmp_path),
    )
    (tmp_path / "REFERENCE.csv").write_text("X0001,N\n")
    data = load_cinc2017(tmp_path, 100.0)
    direct = read_record(CINC, "A00001", 100.0)
    assert data.fs_hz == 100.0 and data.labels == ["N"]
    assert abs(len(data.signals[0]) - len(direct)) <= 1
    k = min(len(direct), len(data.signals[0])) - 200
    assert np.corrcoef(data.signals[0][100:k], direct[100:k])[0, 1] > 0.99
