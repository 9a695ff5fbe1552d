"""Judge the committed reconstructors on a folder of 12-lead records, baselines in the same run.

All scores compare like with like: the truth and the reconstruction are both at the model rate
(100 Hz for the shipped weights; the 250 Hz ptbxl_z arrays are resampled with resample_poly) and in
z units per record-lead (each window's lead standardised), so Pearson r is the usual one and RMSE is
in z units. Per-lead figures are means over records.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ecgmon.errors import ConfigError
from models.interfaces import OUTPUT_LEADS, PatientMeta, Reconstructor
from models.reconstructor.data import ZArrays, load_eval_folder, to_z
from models.reconstructor.metrics import pearson, rmse, uncertainty_error_spearman
from models.reconstructor.segments import beat_masks, masked_rmse

DATASETS = ("ptbxl_z", "ptbxl100", "ludb", "cinc2021", "cpsc2018")


def load_dataset(dataset: str, path: Path, split: str, fs_hz: float, window_samples: int) -> ZArrays:
    """Any supported folder -> z-unit arrays at the model rate (``split`` matters for the ptbxl layouts)."""
    from models.datasets import ptbxl, wfdb12

    if dataset == "ptbxl_z":
        return load_eval_folder(path, split, fs_hz, window_samples)
    if dataset == "ptbxl100":
        return to_z(ptbxl.load_ptbxl100(path, split), fs_hz, window_samples)
    loaders = {"ludb": wfdb12.load_ludb, "cinc2021": wfdb12.load_cinc2021, "cpsc2018": wfdb12.load_cpsc2018}
    if dataset not in loaders:
        raise ConfigError(f"Unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}.")
    return to_z(loaders[dataset](path, window_s=window_samples / fs_hz), fs_hz, window_samples)


def run_batched(
    model: Reconstructor,
    data: ZArrays,
    samples: int,
    *,
    unknown_meta: bool = False,
    batch_size: int = 32,
    parts: bool = False,
) -> tuple[np.ndarray, ...]:
    """``(mean, std)`` (or ``(mean, epistemic_var, aleatoric_var)`` with ``parts``) over all records."""
    outs: list[tuple[np.ndarray, ...]] = []
    for i in range(0, len(data), batch_size):
        sl = slice(i, i + batch_size)
        n = len(data.x[sl])
        meta = PatientMeta.unknown(n) if unknown_meta else PatientMeta(data.age[sl], data.sex[sl])
        if parts:
            outs.append(model.reconstruct_parts(data.x[sl, 0], meta, samples))  # type: ignore[attr-defined]
        else:
            outs.append(model.reconstruct(data.x[sl, 0], meta, samples))
    return tuple(np.concatenate(k) for k in zip(*outs, strict=True))


def scores(y: np.ndarray, mean: np.ndarray, std: np.ndarray | None) -> dict[str, Any]:
    """Per-lead mean Pearson r and RMSE, their means over the 11 leads, and Spearman(std, RMSE)."""
    r, e = pearson(y, mean), rmse(y, mean)
    out: dict[str, Any] = {
        "pearson_r": {lead: float(r[:, k].mean()) for k, lead in enumerate(OUTPUT_LEADS)},
        "pearson_r_mean": float(r.mean()),
        "rmse": {lead: float(e[:, k].mean()) for k, lead in enumerate(OUTPUT_LEADS)},
        "rmse_mean": float(e.mean()),
    }
    if std is not None:
        out["uncertainty_error_spearman"] = uncertainty_error_spearman(std, e)
    return out


def _timed(fn: Callable[[], tuple[np.ndarray, ...]]) -> tuple[tuple[np.ndarray, ...], float]:
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def score_weight_files(
    files: dict[str, Path], path: Path, split: str, *, mc_samples: int = 8, seed: int = 0
) -> dict[str, Any]:
    """Mean r, RMSE and Spearman of other weight files (e.g. a second seed) on a ptbxl_z-style folder.

    ``files`` maps a label to ``(registry name, weight path)`` as ``"name:label" -> path``.
    """
    import torch

    from models import registry

    out: dict[str, Any] = {"split": split, "mc_samples": mc_samples}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for key, wpath in files.items():
            name = key.split(":", 1)[0]
            model = registry.load(name, weights=Path(wpath))
            data = load_eval_folder(path, split, model.fs_hz, model.window_samples)
            mean, std = run_batched(model, data, mc_samples)
            sc = scores(data.x[:, 1:], mean, std)
            out[key] = {k: sc[k] for k in ("pearson_r_mean", "rmse_mean", "uncertainty_error_spearman")}
            out[key]["weights"] = str(wpath)
    return out


def highpass(x: np.ndarray, fs_hz: float, cutoff_hz: float = 0.5) -> np.ndarray:
    """Zero-phase 2nd-order Butterworth high-pass along the last axis (a diagnostic, not preprocessing)."""
    from scipy.signal import butter, sosfiltfilt

    return sosfiltfilt(butter(2, cutoff_hz, "highpass", fs=fs_hz, output="sos"), x, axis=-1)


def cost_ms_per_window(
    model: Reconstructor, data: ZArrays, samples: int, *, batch: int = 32, repeats: int = 3
) -> float:
    """Median wall time per window (ms) of one ``reconstruct`` call on ``batch`` windows (after a warm-up)."""
    sl = slice(0, min(batch, len(data)))
    meta = PatientMeta(data.age[sl], data.sex[sl])
    model.reconstruct(data.x[sl, 0], meta, samples)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        model.reconstruct(data.x[sl, 0], meta, samples)
        times.append(time.perf_counter() - t0)
    return 1000.0 * float(np.median(times)) / len(data.x[sl])


def _variant(model: Any, data: ZArrays, samples: int, mode: str, measure_cost: bool) -> dict[str, Any]:
    """Quality and cost of one MC variant: ``full``, ``head`` (cheap), ``variance`` (one pass, predicted std;
    the stream's default) or ``deterministic`` (samples=1)."""
    y = data.x[:, 1:]
    if hasattr(model, "mc_mode"):
        model.mc_mode = mode if mode in ("head", "variance") else "full"
    t = 1 if mode == "deterministic" else samples
    try:
        (mean, epi, alea), sec = _timed(lambda: run_batched(model, data, t, parts=True))
        cost = cost_ms_per_window(model, data, t) if measure_cost else None
    finally:
        if hasattr(model, "mc_mode"):
            model.mc_mode = "full"
    e = rmse(y, mean)
    out = {
        "seconds": sec,
        "ms_per_window_batch32": cost,
        "pearson_r_mean": float(pearson(y, mean).mean()),
        "uncertainty_error_spearman": uncertainty_error_spearman(np.sqrt(epi + alea), e),
        "spearman_aleatoric_only": uncertainty_error_spearman(np.sqrt(alea), e),
        "coverage_2std": float((np.abs(y - mean) <= 2.0 * np.sqrt(epi + alea)).mean()),
    }
    if mode not in ("deterministic", "variance"):
        out["spearman_epistemic_only"] = uncertainty_error_spearman(np.sqrt(epi), e)
    return {"arrays": (mean, np.sqrt(epi + alea)), "scores": out}


def evaluate(
    path: Path,
    split: str,
    *,
    dataset: str = "ptbxl_z",
    mc_samples: int | None = None,
    device: str = "cpu",
    model: str = "dual_branch",
    progress: Callable[[str], None] | None = None,
    measure_cost: bool = True,
    seed: int = 0,
) -> dict[str, Any]:
    """The issue's evaluation JSON for ``model`` on ``path``/``split``, with U-Net and linear baselines.

    Required keys first; extra keys (``mc_variants``, per-lead baselines, segment RMSE, rate, units)
    document the comparison. ``uncertainty_error_spearman`` is for the full MC pass.
    """
    import torch

    with torch.random.fork_rng(devices=[]):  # MC dropout masks repeat run to run; global RNG untouched
        torch.manual_seed(seed)
        return _evaluate(path, split, dataset, mc_samples, device, model, progress, measure_cost)


def _evaluate(
    path: Path,
    split: str,
    dataset: str,
    mc_samples: int | None,
    device: str,
    model: str,
    progress: Callable[[str], None] | None,
    measure_cost: bool,
) -> dict[str, Any]:
    from ecgmon.settings import get_settings
    from models import registry

    say = progress or (lambda _msg: None)
    t = int(mc_samples if mc_samples is not None else get_settings().mc_samples)
    main = registry.load(model, device=device)
    data = load_dataset(dataset, Path(path), split, main.fs_hz, main.window_samples)
    y = data.x[:, 1:]
    variants: dict[str, Any] = {}
    modes = ("full", "head", "variance", "deterministic") if hasattr(main, "mc_mode") else ("full",)
    for mode in modes:
        say(f"{model}: {mode} pass, T={t}, {len(data)} records")
        v = _variant(main, data, t, mode, measure_cost)
        variants[mode] = v["scores"]
        if mode == "full":
            mean, std = v["arrays"]
    result: dict[str, Any] = {"records": len(data), **scores(y, mean, std), "mc_samples": t}
    say(f"{model}: metadata ablation (age and sex unknown)")
    m_nm, _ = run_batched(main, data, t, unknown_meta=True)
    r_nm = pearson(y, m_nm)
    result["baselines"] = {}
    for name in ("unet", "linear"):
        if name == model:
            continue
        say(f"baseline {name}")
        base = registry.load(name, device=device)
        m_b, s_b = run_batched(base, data, t)
        sb = scores(y, m_b, s_b)
        result["baselines"][name] = {
            "pearson_r_mean": sb["pearson_r_mean"],
            "rmse_mean": sb["rmse_mean"],
            "pearson_r": sb["pearson_r"],
            "uncertainty_error_spearman": sb["uncertainty_error_spearman"],
        }
    masks = beat_masks(data.x[:, 0], data.fs_hz)
    masks["all"] = np.ones_like(masks["qrs"])
    result["metadata_ablation"] = {
        "pearson_r_mean_without_metadata": float(r_nm.mean()),
        "pearson_r_without_metadata": {lead: float(r_nm[:, k].mean()) for k, lead in enumerate(OUTPUT_LEADS)},
        "rmse_by_segment": {
            seg: {"with_metadata": masked_rmse(y, mean, mk), "without_metadata": masked_rmse(y, m_nm, mk)}
            for seg, mk in masks.items()
        },
    }
    result["mc_variants"] = variants
    yh, mh = highpass(y, data.fs_hz), highpass(mean, data.fs_hz)
    result["diagnostics"] = {
        "pearson_r_mean_after_0p5hz_highpass": float(pearson(yh, mh).mean()),
        "note": "truth and reconstruction both high-passed at 0.5 Hz: how much of the gap is baseline wander",
    }
    result.update(
        model=model,
        dataset=dataset,
        fs_hz=main.fs_hz,
        window_samples=main.window_samples,
        units=main.units,
        torch_threads=_torch_threads(),
    )
    return result


def _torch_threads() -> int:
    import torch

    return int(torch.get_num_threads())
