"""Reconstructor builders, MC dropout, committed weights vs card, evaluation and plot commands."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from ecgmon.errors import ConfigError, DataError
from models import registry
from models.interfaces import OUTPUT_LEADS, PatientMeta, Reconstructor
from tests.conftest import DATA

WEIGHTS = Path(__file__).resolve().parents[1] / "models" / "weights"
NAMES = ("dual_branch", "unet", "linear")
REQUIRED = {
    "records",
    "pearson_r",
    "pearson_r_mean",
    "rmse",
    "rmse_mean",
    "uncertainty_error_spearman",
    "mc_samples",
    "baselines",
    "metadata_ablation",
}


def _lead_i(n: int, samples: int) -> np.ndarray:
    """Real lead I windows (ptbxl_z val rows, 250 Hz decimated by 2), cut/padded, plus seeded noise."""
    z = np.load(DATA / "ptbxl_z" / "val_250hz.npy", mmap_mode="r")[:n, 0, ::2].astype(np.float32)
    out = np.zeros((n, samples), dtype=np.float32)
    out[:, : min(samples, z.shape[1])] = z[:, :samples]
    return out + np.random.default_rng(0).normal(0, 0.01, out.shape).astype(np.float32)


@pytest.mark.parametrize("name", NAMES)
def test_builder_shapes_and_std(name: str) -> None:
    torch.manual_seed(0)
    model = registry.load(name, weights=False)
    assert isinstance(model, Reconstructor)
    x = _lead_i(3, model.window_samples)
    meta = PatientMeta(np.array([70.0, np.nan, 40.0]), np.array([0.0, 1.0, np.nan]))
    mean, std = model.reconstruct(x, meta, samples=4)
    assert mean.shape == std.shape == (3, len(OUTPUT_LEADS), model.window_samples)
    assert np.isfinite(mean).all() and (std >= 0).all() and (std > 0).any()
    mean1, std1 = model.reconstruct(x, meta, samples=1)
    assert mean1.shape == mean.shape and not std1.any()


@pytest.mark.parametrize("name", ("dual_branch", "unet"))
def test_mc_is_one_batched_pass_and_leaves_dropout_off(name: str) -> None:
    model = registry.load(name, weights=False)
    x = _lead_i(2, model.window_samples)
    meta = PatientMeta.unknown(2)
    m_det, _ = model.reconstruct(x, meta, samples=1)
    m_det2, _ = model.reconstruct(x, meta, samples=1)
    np.testing.assert_array_equal(m_det, m_det2)  # deterministic pass: dropout off
    calls = []
    hook = model.net.register_forward_pre_hook(lambda _m, args: calls.append(args[0].shape[0]))
    for mode in ("full", "head"):
        model.mc_mode = mode
        _, std = model.reconstruct(x, meta, samples=5)
        assert (std > 0).all()
    hook.remove()
    assert calls == [
        10
    ]  # the full pass replicates the batch 5 times in one call; the head pass calls trunk only
    assert not any(m.training for m in model.net.modules())


def test_metadata_changes_the_output() -> None:
    model = registry.load("dual_branch", weights=False)
    x = _lead_i(2, model.window_samples)
    a, _ = model.reconstruct(x, PatientMeta(np.array([30.0, 30.0]), np.array([0.0, 0.0])), samples=1)
    b, _ = model.reconstruct(x, PatientMeta.unknown(2), samples=1)
    assert not np.allclose(a, b)


def test_wrong_window_is_a_config_error() -> None:
    model = registry.load("dual_branch", weights=False)
    with pytest.raises(ConfigError):
        model.reconstruct(np.zeros((1, model.window_samples - 1)), PatientMeta.unknown(1))


def _card_rows() -> dict[str, dict[str, str]]:
    text = (WEIGHTS / "reconstructor_CARD.md").read_text()
    block = text.split("<!-- weights-table -->")[1].split("<!-- /weights-table -->")[0]
    rows = [ln for ln in block.splitlines() if ln.startswith("|")]
    head = [c.strip() for c in rows[0].strip("|").split("|")]
    out = {}
    for ln in rows[2:]:
        cells = dict(zip(head, (c.strip() for c in ln.strip("|").split("|")), strict=True))
        out[cells["name"]] = cells
    return out


@pytest.mark.parametrize("name", NAMES)
def test_committed_weights_match_card(name: str) -> None:
    model = registry.load(name)
    card = _card_rows()[name]
    assert (WEIGHTS / card["file"].strip("`")).is_file()
    assert float(card["fs_hz"]) == model.fs_hz
    assert int(card["window_samples"]) == model.window_samples
    assert [s.strip() for s in card["leads"].split(",")] == list(OUTPUT_LEADS)
    assert model.units.startswith(card["units"].split(" ")[0])
    assert model.config["leads"] == list(OUTPUT_LEADS)


def _tiny_ptbxl_z(dst: Path, rows: int = 8, *, scale: bool = False) -> Path:
    src = DATA / "ptbxl_z"
    np.save(dst / "tiny_250hz.npy", np.load(src / "val_250hz.npy")[:rows])
    if scale:
        np.save(dst / "tiny_scale.npy", np.load(src / "val_scale.npy")[:rows])
    with (src / "val.csv").open(newline="") as f:
        lines = list(csv.reader(f))[: rows + 1]
    with (dst / "tiny.csv").open("w", newline="") as f:
        csv.writer(f).writerows(lines)
    return dst


def test_eval_command_writes_required_keys(tmp_path: Path) -> None:
    from tools.cli.reconstructor import evaluate

    folder = _tiny_ptbxl_z(tmp_path, rows=8)
    out = tmp_path / "eval.json"
    evaluate(dataset="ptbxl_z", path=folder, split="tiny", json_out=out, mc_samples=2, cost=False)
    res = json.loads(out.read_text())
    assert set(res) >= REQUIRED
    assert res["records"] == 8 and res["mc_samples"] == 2
    assert set(res["pearson_r"]) == set(OUTPUT_LEADS) == set(res["rmse"])
    assert {"pearson_r_mean", "rmse_mean"} <= set(res["baselines"]["unet"]) & set(res["baselines"]["linear"])
    assert "pearson_r_mean_without_metadata" in res["metadata_ablation"]
    assert -1.0 <= res["uncertainty_error_spearman"] <= 1.0


def test_eval_missing_folder_is_a_data_error(tmp_path: Path) -> None:
    from tools.cli.reconstructor import evaluate

    with pytest.raises(DataError, match="Missing file"):
        evaluate(dataset="ptbxl_z", path=tmp_path, split="nope", json_out=None, mc_samples=2, cost=False)


def test_plot_command_writes_png(tmp_path: Path) -> None:
    from tools.cli.reconstructor import plot

    folder = _tiny_ptbxl_z(tmp_path, rows=2, scale=True)
    out = tmp_path / "rec.png"
    ids = re.findall(r"^(\d+),", (folder / "tiny.csv").read_text(), flags=re.M)
    plot(record=ids[1], dataset="ptbxl_z", path=folder, split="tiny", out=out, mc_samples=3)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")
def test_cuda_matches_cpu() -> None:
    cpu, gpu = registry.load("dual_branch"), registry.load("dual_branch", device="cuda")
    x = _lead_i(2, cpu.window_samples)
    a, _ = cpu.reconstruct(x, PatientMeta.unknown(2), samples=1)
    b, _ = gpu.reconstruct(x, PatientMeta.unknown(2), samples=1)
    np.testing.assert_allclose(a, b, atol=5e-2)
