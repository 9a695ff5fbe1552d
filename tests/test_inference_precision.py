"""The classifier's CPU precision: bf16 autocast must keep the committed student's labels on real recordings."""

from __future__ import annotations

import numpy as np
import pytest

from ecgmon.settings import Settings
from models.datasets.cinc2017 import load_cinc2017
from streams.inference import Inference, cpu_bf16_wanted
from streams.preprocess import prepare_batch
from tests.conftest import DATA

CINC2017 = DATA / "cinc2017"

PHYSICS = {
    "flat_mv": Settings().lead_off_flat_mv,
    "clip_fraction": Settings().lead_off_clip_fraction,
    "min_peak_ratio": Settings().r_peak_min_ratio,
}


def test_explicit_precisions_are_obeyed_and_auto_is_a_choice() -> None:
    assert cpu_bf16_wanted("bf16") is True
    assert cpu_bf16_wanted("fp32") is False
    assert cpu_bf16_wanted("auto") in (True, False)


def _engine(precision: str) -> Inference:
    s = Settings(classifier_precision=precision, reconstruction_policy="never", device="cpu")  # type: ignore[arg-type]
    return Inference.load(s)


@pytest.mark.skipif(not CINC2017.is_dir(), reason="../shared/data/cinc2017 is not beside the repository")
def test_bf16_keeps_the_labels_of_real_windows() -> None:
    fp32, bf16 = _engine("fp32"), _engine("bf16")
    assert not fp32.classifier_bf16 and bf16.classifier_bf16
    with open(CINC2017 / "REFERENCE.csv") as f:
        names = [line.split(",")[0] for line in f][:40]
    data = load_cinc2017(CINC2017, 300.0, names)
    windows = [s[: 300 * 10] for s in data.signals if len(s) >= 300 * 10]
    x = prepare_batch(windows, [300.0] * len(windows), model_fs_hz=100.0, model_window_samples=1000, **PHYSICS).x
    a = fp32.classify(x).probs
    b = bf16.classify(x).probs
    agree = float((a.argmax(1) == b.argmax(1)).mean())
    assert agree >= 0.9, f"only {agree:.0%} of {len(x)} windows kept their label in bf16"
    assert float(np.abs(a - b).mean()) < 0.03
