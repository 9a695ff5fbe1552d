"""Issue 24's cheaper model paths give the outputs they replace, and the worker builds them by default.

- ``variance``: the reconstructor's one deterministic pass with the predicted std, on real ptbxl_z
  records: its mean is the deterministic pass, its std tracks the head-MC std it replaces, and a window
  gets the same bits in any batch.
- Replay chunks of 4 for the reconstructor: a few windows of a batch are not padded to 16.
- Seeded masks drawn once per window for all its passes: the same numbers as one draw per row.
- The classifier's head passes in one batch: the same probabilities as pass by pass.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from ecgmon.errors import ConfigError
from ecgmon.settings import Settings
from models import registry
from models.interfaces import PatientMeta
from models.mc_dropout import seeded_dropout
from models.reconstructor.common import REPLAY_CHUNK
from streams.inference import window_seed
from tests.conftest import DATA


def _ptbxl_lead_i(n: int) -> tuple[np.ndarray, PatientMeta]:
    """Lead I of the first ``n`` ptbxl_z val records at 100 Hz (z units; ``reconstruct`` standardises anyway)."""
    path = DATA / "ptbxl_z" / "val_250hz.npy"  # ../shared/data, read in place (CI has it beside the clone)
    from scipy.signal import resample_poly

    x = resample_poly(np.load(path, mmap_mode="r")[:n, 0].astype(np.float64), 2, 5, axis=-1)
    ages = np.linspace(35.0, 80.0, n)
    return np.ascontiguousarray(x[:, :1000], dtype=np.float32), PatientMeta(ages, (np.arange(n) % 2).astype(float))


@pytest.fixture(scope="module")
def reconstructor() -> Iterator[Any]:
    model = registry.load("dual_branch", device="cpu", mc_mode="variance")
    yield model


def test_variance_mode_is_the_deterministic_pass_with_its_predicted_std(reconstructor: Any) -> None:
    x, meta = _ptbxl_lead_i(6)
    seeds = [window_seed("p", i) for i in range(6)]
    mean, std = reconstructor.reconstruct(x, meta, samples=8, seeds=seeds)
    mean1, std1 = reconstructor.reconstruct(x, meta, samples=1, seeds=seeds)
    np.testing.assert_array_equal(mean, mean1)  # one pass, no dropout
    assert not std1.any()  # samples <= 1 asks for no uncertainty, as the interface says
    _, epi, alea = reconstructor.reconstruct_parts(x, meta, samples=8, seeds=seeds)
    assert not epi.any()
    np.testing.assert_allclose(std, np.sqrt(alea), rtol=1e-6)
    assert (std > 0).all()


def test_variance_std_tracks_the_head_mc_std_it_replaces(reconstructor: Any) -> None:
    x, meta = _ptbxl_lead_i(12)
    seeds = [window_seed("p", i) for i in range(12)]
    mean_v, std_v = reconstructor.reconstruct(x, meta, samples=8, seeds=seeds)
    reconstructor.mc_mode = "head"
    try:
        mean_h, std_h = reconstructor.reconstruct(x, meta, samples=8, seeds=seeds)
    finally:
        reconstructor.mc_mode = "variance"
    # ptbxl_z val, all 130 records: correlation 0.989, mean std 0.551 vs 0.576 (BENCHMARKS.md "Model cost").
    assert np.corrcoef(std_v.ravel(), std_h.ravel())[0, 1] > 0.95
    assert 0.85 < std_v.mean() / std_h.mean() < 1.05
    r = [np.corrcoef(a, b)[0, 1] for a, b in zip(mean_v.reshape(-1, 1000), mean_h.reshape(-1, 1000), strict=True)]
    assert np.median(r) > 0.98  # the MC mean and the deterministic pass draw the same waveform


def test_variance_mode_replays_in_any_batch(reconstructor: Any) -> None:
    x, meta = _ptbxl_lead_i(11)
    seeds = [window_seed("q", i) for i in range(11)]
    alone = reconstructor.reconstruct(x[7:8], PatientMeta(meta.age_years[7:8], meta.sex[7:8]), 8, seeds[7:8])
    among = reconstructor.reconstruct(x, meta, 8, seeds)
    assert np.array_equal(alone[0][0], among[0][7]) and np.array_equal(alone[1][0], among[1][7])


def test_the_worker_builds_the_cheap_reconstructor_by_default() -> None:
    from streams.inference import Inference

    s = Settings(torch_threads=1, device="cpu", reconstruction_policy="every")
    assert s.reconstructor_mc_mode == "variance"
    engine = Inference.load(s)
    assert engine.reconstructor is not None
    assert engine.reconstructor.mc_mode == "variance"  # type: ignore[attr-defined]
    assert engine.reconstructor.replay_chunk == REPLAY_CHUNK == 4  # type: ignore[attr-defined]
    assert s.reconstructor_replay_chunk == REPLAY_CHUNK
    engine16 = Inference.load(s.model_copy(update={"reconstructor_replay_chunk": 16}))
    assert engine16.reconstructor.replay_chunk == 16  # type: ignore[union-attr]
    linear = Inference.load(s.model_copy(update={"reconstructor": "linear"}))  # builds from the same settings
    assert linear.reconstructor is not None


def test_a_few_windows_are_padded_to_the_reconstructor_chunk_only() -> None:
    model = registry.load("dual_branch", weights=False, mc_mode="variance")
    rows: list[int] = []
    model.net.register_forward_pre_hook(lambda _m, args: rows.append(args[0].shape[0]))
    x = np.random.default_rng(0).normal(0, 1, (5, model.window_samples)).astype(np.float32)
    model.reconstruct(x, PatientMeta.unknown(5), samples=8, seeds=list(range(5)))
    assert rows == [4, 4]  # 5 windows: a chunk of 4 and a padded chunk of 4, not 16


def test_bad_mode_or_chunk_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="mc_mode"):
        registry.load("dual_branch", weights=False, mc_mode="tail")
    with pytest.raises(ConfigError, match="replay_chunk"):
        registry.load("dual_branch", weights=False, replay_chunk=0)


def _masks_row_by_row(p: float, seeds: list[int], rows: int, shape: tuple[int, ...]) -> torch.Tensor:
    """The masks as drawn before issue 24: one ``torch.rand`` per row, row ``r`` from window ``r % n``."""
    gens = [torch.Generator().manual_seed(s) for s in seeds]
    keep = torch.stack([torch.rand(shape, generator=gens[r % len(seeds)]) >= p for r in range(rows)])
    return keep.float() / (1.0 - p)


@pytest.mark.parametrize("passes", [1, 3, 8])
def test_masks_drawn_per_window_are_the_row_by_row_masks(passes: int) -> None:
    seeds = [window_seed("m", i) for i in range(5)]
    drop = nn.Dropout(0.3).eval()
    ones = torch.ones(passes * 5, 7, 11)
    with seeded_dropout([drop], seeds):
        got = drop(ones)
    assert torch.equal(got, _masks_row_by_row(0.3, seeds, passes * 5, (7, 11)))


def test_classifier_head_passes_in_one_batch_match_pass_by_pass() -> None:
    clf = registry.load("student", device="cpu", mc_mode="head")
    x, _ = _ptbxl_lead_i(16)
    seeds = [window_seed("c", i) for i in range(16)]
    got = clf.predict(x * 0.5, mc_samples=8, seeds=seeds).probs  # mV-like amplitude
    from models.classifier.preprocess import preprocess_windows

    t = torch.from_numpy(preprocess_windows(x * 0.5, clf.fs_hz)[:, None, :].astype(np.float32))
    with torch.inference_mode():
        tokens = clf.net.tokens(t)
        with seeded_dropout([clf.net.head.drop], seeds):
            passes = [torch.softmax(clf.net.head(tokens).float(), dim=1) for _ in range(8)]
    want = torch.stack(passes).mean(0).double().numpy()
    np.testing.assert_allclose(got, want / want.sum(1, keepdims=True), atol=1e-5)
