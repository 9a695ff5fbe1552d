"""Training for the reconstructors: resumable, time-boxed, checkpoint chosen on a held-apart split.

Run via ``ecgmon train reconstructor`` or ``python -m models.reconstructor.train MODEL``. The
training split is ptbxl_z/train (+ ptbxl100/train); the checkpoint is chosen on ptbxl100/val so
that ptbxl_z/val stays untouched for the figures reported on the model card.

Learning from all of PTB-XL (issue 26) is two runs of the same loop: ``--pool CACHE`` pre-trains on the
PTB-XL pool cache (``ecgmon data ptbxl-full``; held-out and validation ids already dropped, metadata
mostly unknown), ``--epoch-windows N`` drawing N random pool windows per epoch so that an epoch fits
the time box; then ``--init PRETRAINED.pt`` fine-tunes those weights on the usual training split with
metadata. The linear baseline fitted with ``--pool`` uses the same pool windows.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ecgmon.errors import ConfigError
from models.interfaces import OUTPUT_LEADS, PatientMeta
from models.reconstructor.common import (
    DEFAULT_FS_HZ,
    DEFAULT_WINDOW_SAMPLES,
    UNITS,
    VERSION,
    WEIGHTS_DIR,
    TorchReconstructor,
    TwoStageNet,
    load_weights,
    save_weights,
)
from models.reconstructor.data import ZArrays, pool_arrays, training_arrays
from models.reconstructor.dual_branch import DualBranchNet
from models.reconstructor.linear import DEFAULT_TAPS, fit_fir
from models.reconstructor.metrics import pearson
from models.reconstructor.unet import UNet1d

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data"
NETS: dict[str, type[TwoStageNet]] = {"dual_branch": DualBranchNet, "unet": UNet1d}
MODELS = ("dual_branch", "unet", "linear")


@dataclass
class TrainConfig:
    """Every knob of one training run (stored in checkpoints and on the card)."""

    model: str
    ptbxl_z: Path = DATA / "ptbxl_z"
    ptbxl100: Path | None = DATA / "ptbxl100"
    select_path: Path | None = DATA / "ptbxl100"
    select_split: str = "val"
    fs_hz: float = DEFAULT_FS_HZ
    window_samples: int = DEFAULT_WINDOW_SAMPLES
    epochs: int = 30
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 1e-4
    nll_weight: float = 0.1
    meta_drop: float = 0.2
    input_noise: float = 0.02
    max_minutes: float = 40.0
    seed: int = 0
    threads: int = 1
    arch: dict[str, Any] = field(default_factory=dict)
    run_dir: Path = ROOT / "runs" / "reconstructor"
    cache_dir: Path = ROOT / ".cache"
    out: Path | None = None
    pool: Path | None = None
    epoch_windows: int = 0
    init: Path | None = None

    def weights_path(self) -> Path:
        return self.out or WEIGHTS_DIR / f"reconstructor_{self.model}.pt"


def _config_for_card(cfg: TrainConfig) -> dict[str, Any]:
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items()}


def _weights_config(cfg: TrainConfig, extra: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": cfg.model,
        "version": VERSION,
        "fs_hz": cfg.fs_hz,
        "window_samples": cfg.window_samples,
        "leads": list(OUTPUT_LEADS),
        "units": UNITS,
        "arch": dict(cfg.arch),
        "train": _config_for_card(cfg),
        **extra,
    }


def _select_score(net: TwoStageNet, cfg: TrainConfig, sel: ZArrays) -> float:
    """Mean Pearson r over the 11 leads, deterministic pass, on the selection split."""
    rec = TorchReconstructor(net, cfg.model, VERSION, cfg.fs_hz, cfg.window_samples)
    means = []
    for i in range(0, len(sel), 128):
        meta = PatientMeta(sel.age[i : i + 128], sel.sex[i : i + 128])
        means.append(rec.reconstruct(sel.x[i : i + 128, 0], meta, samples=1)[0])
    return float(pearson(sel.x[:, 1:], np.concatenate(means)).mean())


def train_model(cfg: TrainConfig, on_epoch: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Train ``cfg.model``; resume from ``run_dir/MODEL/last.pt``; write the best weights."""
    if cfg.model not in MODELS:
        raise ConfigError(f"Unknown reconstructor {cfg.model!r}; choose one of {', '.join(MODELS)}.")
    torch.set_num_threads(cfg.threads)
    if cfg.epoch_windows < 0:
        raise ConfigError(f"--epoch-windows is {cfg.epoch_windows}; give 0 (all windows) or a positive count.")
    train = (
        pool_arrays(cfg.pool, cfg.fs_hz, cfg.window_samples)
        if cfg.pool is not None
        else training_arrays(cfg.ptbxl_z, cfg.ptbxl100, "train", cfg.fs_hz, cfg.window_samples, cfg.cache_dir)
    )
    sel = (
        training_arrays(cfg.select_path, None, cfg.select_split, cfg.fs_hz, cfg.window_samples, cfg.cache_dir)
        if cfg.select_path and (cfg.select_path / f"{cfg.select_split}_250hz.npy").is_file()
        else _ptbxl100_select(cfg)
    )
    if cfg.model == "linear":
        coef, resid = fit_fir(train.x, cfg.arch.get("taps", DEFAULT_TAPS))
        save_weights(
            cfg.weights_path(),
            {"coef": torch.from_numpy(coef), "resid_std": torch.from_numpy(resid)},
            _weights_config(cfg, {"train_records": len(train)}),
        )
        summary = {"model": "linear", "train_records": len(train), "weights": str(cfg.weights_path())}
        if on_epoch:
            on_epoch(summary)
        return summary
    return _train_net(cfg, train, sel, on_epoch)


def _ptbxl100_select(cfg: TrainConfig) -> ZArrays:
    from models.datasets.ptbxl import load_ptbxl100
    from models.reconstructor.data import to_z

    if cfg.select_path is None:
        raise ConfigError("No selection split: give --select-path (a ptbxl_z- or ptbxl100-style folder).")
    return to_z(load_ptbxl100(cfg.select_path, cfg.select_split), cfg.fs_hz, cfg.window_samples)


def _train_net(
    cfg: TrainConfig, train: ZArrays, sel: ZArrays, on_epoch: Callable[[dict[str, Any]], None] | None
) -> dict[str, Any]:
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    extra: dict[str, Any] = {"train_records": len(train)}
    init_state = None
    if cfg.init is not None:
        init_config, init_state = load_weights(Path(cfg.init))
        if init_config.get("name") != cfg.model:
            raise ConfigError(f"--init {cfg.init} holds {init_config.get('name')!r} weights, not {cfg.model!r}.")
        cfg.arch = dict(cfg.arch or init_config.get("arch", {}))
        extra["pretrained"] = {
            k: init_config.get(k) for k in ("epoch", "select_pearson_r", "train_records", "train")
        }
    net = NETS[cfg.model](**cfg.arch)
    if init_state is not None:
        net.load_state_dict(init_state)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    per_epoch = min(cfg.epoch_windows, len(train)) if cfg.epoch_windows else len(train)
    steps_per_epoch = int(np.ceil(per_epoch / cfg.batch_size))
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, cfg.lr, total_steps=cfg.epochs * steps_per_epoch, pct_start=0.1
    )
    run = cfg.run_dir / cfg.model
    run.mkdir(parents=True, exist_ok=True)
    last = run / "last.pt"
    start_epoch, best, history = 0, -np.inf, []
    if last.is_file():
        ck = torch.load(last, map_location="cpu", weights_only=False)
        net.load_state_dict(ck["net"])
        opt.load_state_dict(ck["opt"])
        sched.load_state_dict(ck["sched"])
        start_epoch, best, history = ck["epoch"], ck["best"], ck["history"]
        rng = ck["rng"]
        torch.set_rng_state(ck["torch_rng"])
    t0 = time.monotonic()
    x_all = torch.from_numpy(train.x)
    age_all, sex_all = torch.from_numpy(train.age), torch.from_numpy(train.sex)
    for epoch in range(start_epoch, cfg.epochs):
        net.train()
        order = rng.permutation(len(train))[:per_epoch]
        tot, count = 0.0, 0
        for b in range(steps_per_epoch):
            idx = torch.from_numpy(order[b * cfg.batch_size : (b + 1) * cfg.batch_size])
            xb = x_all[idx].float()
            x = xb[:, :1] + cfg.input_noise * torch.randn(len(idx), 1, train.x.shape[-1])
            y = xb[:, 1:]
            age, sex = age_all[idx].clone(), sex_all[idx].clone()
            age[torch.rand(len(idx)) < cfg.meta_drop] = float("nan")
            sex[torch.rand(len(idx)) < cfg.meta_drop] = float("nan")
            mu, logvar = net(x, age, sex)
            mse = (mu - y).pow(2).mean()
            nll = 0.5 * (logvar + (y - mu.detach()).pow(2) * torch.exp(-logvar)).mean()
            loss = mse + cfg.nll_weight * nll
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            opt.step()
            sched.step()
            tot += float(mse.detach()) * len(idx)
            count += len(idx)
        score = _select_score(net, cfg, sel)
        row = {
            "epoch": epoch + 1,
            "train_mse": tot / count,
            "select_pearson_r": score,
            "minutes": (time.monotonic() - t0) / 60,
        }
        history.append(row)
        if score > best:
            best = score
            save_weights(
                cfg.weights_path(),
                net,
                _weights_config(
                    cfg, {**extra, "epoch": epoch + 1, "select_pearson_r": score, "history": history}
                ),
            )
        torch.save(
            {
                "net": net.state_dict(),
                "opt": opt.state_dict(),
                "sched": sched.state_dict(),
                "epoch": epoch + 1,
                "best": best,
                "history": history,
                "rng": rng,
                "torch_rng": torch.get_rng_state(),
                "config": _config_for_card(cfg),
            },
            last,
        )
        (run / "history.json").write_text(json.dumps(history, indent=1))
        if on_epoch:
            on_epoch(row)
        if row["minutes"] > cfg.max_minutes:
            break
    return {
        "model": cfg.model,
        "best_select_pearson_r": best,
        "epochs": len(history),
        "weights": str(cfg.weights_path()),
    }


def main(argv: list[str] | None = None) -> None:
    """``python -m models.reconstructor.train MODEL [--epochs N] ...`` for running without the ecgmon CLI."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("model", choices=MODELS)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--max-minutes", type=float, default=40.0)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--arch", type=json.loads, default={})
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--run-dir", type=Path, default=ROOT / "runs" / "reconstructor")
    p.add_argument("--pool", type=Path, default=None, help="PTB-XL pool cache: train on it instead (pre-training).")
    p.add_argument("--epoch-windows", type=int, default=0, help="Random windows per epoch; 0 = all.")
    p.add_argument("--init", type=Path, default=None, help="Start from these weights (fine-tuning).")
    p.add_argument("--weight-decay", type=float, default=1e-4)
    a = p.parse_args(argv)
    cfg = TrainConfig(
        a.model,
        epochs=a.epochs,
        max_minutes=a.max_minutes,
        batch_size=a.batch_size,
        lr=a.lr,
        threads=a.threads,
        seed=a.seed,
        arch=a.arch,
        out=a.out,
        run_dir=a.run_dir,
        pool=a.pool,
        epoch_windows=a.epoch_windows,
        init=a.init,
        weight_decay=a.weight_decay,
    )
    print(json.dumps(train_model(cfg, lambda r: print(json.dumps(r), flush=True))), flush=True)


if __name__ == "__main__":
    main()
