"""Training of the teacher (12-lead), the student (feature reconstruction) and the baseline.

Run by ``ecgmon train classifier --kind KIND`` or ``python -m models.classifier.train KIND``. Each run
writes its resolved config, a per-epoch history and a resumable checkpoint under ``OUT/KIND/``; the
final epoch's weights go to ``models/weights/classifier_KIND.pt``. The final epoch (not the best
validation epoch) is shipped, so the validation figures on the card are not selected on.

Data: teacher = PTB-XL 12-lead train split (ptbxl_z + ptbxl100); student and baseline = cinc2017 minus a
seeded stratified record-wise hold-out (class loss, random 10 s crops) + lead I of the same PTB-XL
records (class loss; the student also a feature loss against the frozen teacher's tokens).
Class imbalance: class-weighted cross-entropy, weights (n / (k * n_c)) ** 0.5.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ecgmon.errors import ConfigError
from models.classifier.data import (
    RecordBank,
    TwelveLeadSet,
    cinc_bank,
    code_targets,
    code_vocabulary,
    stratified_holdout,
    twelve_lead_set,
)
from models.classifier.metrics import score
from models.classifier.nets import NetConfig, StudentNet, TeacherNet, build_net
from models.classifier.preprocess import preprocess_windows, record_windows

WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"
VAL_RECORDS_FILE = "classifier_cinc2017_val_records.txt"


KINDS = ("teacher", "student", "baseline")
"""The classifiers ``run`` trains: the 12-lead teacher first, then the student and its baseline."""


@dataclass
class TrainConfig:
    """Everything a training run depends on; saved as ``config.json`` beside its outputs."""

    kind: str
    cinc2017: str = "../shared/data/cinc2017"
    ptbxl_z: str = "../shared/data/ptbxl_z"
    ptbxl100: str = "../shared/data/ptbxl100"
    out_dir: str = "runs/classifier"
    cache_dir: str = ".cache/classifier"
    weights_dir: str = str(WEIGHTS_DIR)
    fs_hz: float = 100.0
    window_s: float = 10.0
    epochs: int = 20
    batch: int = 64
    twelve_batch: int = 32
    lr: float = 2e-3
    weight_decay: float = 0.05
    warmup_frac: float = 0.05
    feat_weight: float = 1.0
    pretrain_epochs: int = 0
    """Student only: epochs of feature loss alone (backbone + reconstruction module) before joint training."""
    pool: str = ""
    """Student only: a PTB-XL pool cache (``ecgmon data ptbxl-full``); when set, the ``pretrain_epochs`` run on
    its records' lead I against the teacher's tokens of their 12 leads instead of the 2,988 training records."""
    twelve_cls_weight: float = 0.5
    diag_weight: float = 0.0
    """Teacher only: weight of the multi-label loss over PTB-XL SCP statements (0 = rhythm head alone)."""
    diag_min_count: int = 40
    """Teacher only: SCP codes on fewer training records than this are left out of that head."""
    flip_p: float = 0.5
    val_fraction: float = 0.15
    split_seed: int = 2017
    seed: int = 0
    threads: int = 1
    eval_hop_s: float = 5.0

    @property
    def window_samples(self) -> int:
        """Window length in samples at ``fs_hz``."""
        return round(self.window_s * self.fs_hz)


def class_weights(y: np.ndarray, n_classes: int) -> torch.Tensor:
    """Square-root inverse-frequency weights (absent classes get 0): a middle way between none and full."""
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    w = np.where(counts > 0, np.sqrt(counts.sum() / (np.count_nonzero(counts) * np.maximum(counts, 1))), 0.0)
    return torch.tensor(w, dtype=torch.float32)


def random_crops(bank: RecordBank, idx: np.ndarray, samples: int, rng: np.random.Generator) -> np.ndarray:
    """A random ``samples``-long crop (padded if shorter) per record in ``idx`` -> ``[k, samples]``."""
    out = np.empty((len(idx), samples), dtype=np.float32)
    for j, i in enumerate(idx):
        sig = bank.signal(int(i))
        if len(sig) <= samples:
            out[j] = record_windows(sig, samples, samples)[0]
        else:
            s = int(rng.integers(0, len(sig) - samples + 1))
            out[j] = sig[s : s + samples]
    return out


def val_windows(bank: RecordBank, samples: int, hop: int, fs_hz: float) -> tuple[np.ndarray, np.ndarray]:
    """Every record cut into overlapping windows, preprocessed -> ``(x [w, samples], record index [w])``."""
    wins, owner = [], []
    for i in range(len(bank.names)):
        w = record_windows(bank.signal(i), samples, hop)
        wins.append(w)
        owner.append(np.full(len(w), i))
    return preprocess_windows(np.concatenate(wins), fs_hz), np.concatenate(owner)


@torch.inference_mode()
def _logits(net: nn.Module, x: np.ndarray, batch: int = 256) -> np.ndarray:
    net.eval()
    outs = [net(torch.from_numpy(x[i : i + batch])).float() for i in range(0, len(x), batch)]
    return torch.cat(outs).numpy()


def aggregate(probs: np.ndarray, owner: np.ndarray, n_records: int) -> np.ndarray:
    """Mean of window probabilities per record -> ``[n_records, classes]``."""
    out = np.zeros((n_records, probs.shape[1]))
    np.add.at(out, owner, probs)
    return out / np.bincount(owner, minlength=n_records)[:, None]


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _schedule(opt: torch.optim.Optimizer, total: int, warmup: int) -> torch.optim.lr_scheduler.LambdaLR:
    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total - warmup))))

    return torch.optim.lr_scheduler.LambdaLR(opt, f)


def _teacher_tokens(teacher_path: Path, x: np.ndarray) -> np.ndarray:
    """Frozen teacher's tokens for 12-lead windows ``x [n, 12, samples]`` -> ``[n, tokens, d]`` float32."""
    ckpt = torch.load(teacher_path, map_location="cpu", weights_only=True)
    teacher = TeacherNet(NetConfig.from_dict(ckpt["net_config"]))
    teacher.load_state_dict(ckpt["state_dict"])
    teacher.eval()
    with torch.inference_mode():
        feats = [teacher.features(torch.from_numpy(x[i : i + 128])) for i in range(0, len(x), 128)]
    return torch.cat(feats).numpy().astype(np.float32)


Log = Callable[[str], None]


def run(cfg: TrainConfig, log: Log = print) -> Path:
    """Train ``cfg.kind`` (resuming from its checkpoint) and write its weights; returns their path."""
    if cfg.kind not in KINDS:
        raise ConfigError(f"kind must be one of {', '.join(KINDS)}, not {cfg.kind!r}.")
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    out = Path(cfg.out_dir) / cfg.kind
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(asdict(cfg), indent=2) + "\n")
    cache = Path(cfg.cache_dir)
    samples = cfg.window_samples
    twelve = twelve_lead_set(Path(cfg.ptbxl_z), Path(cfg.ptbxl100), "train", cfg.fs_hz, samples, cache)
    twelve_val = twelve_lead_set(Path(cfg.ptbxl_z), Path(cfg.ptbxl100), "val", cfg.fs_hz, samples, cache)
    if cfg.kind == "teacher":
        return _fit_teacher(cfg, out, twelve, twelve_val, log)
    return _fit_single(cfg, out, twelve, twelve_val, log)


def _save_weights(cfg: TrainConfig, net: nn.Module, net_cfg: NetConfig, extra: dict[str, object]) -> Path:
    path = Path(cfg.weights_dir) / f"classifier_{cfg.kind}.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"kind": cfg.kind, "fs_hz": cfg.fs_hz, "window_samples": samples_of(cfg), **extra}
    torch.save(
        {"state_dict": net.state_dict(), "net_config": net_cfg.to_dict(), "meta": json.dumps(meta)}, path
    )
    path.with_name(f"classifier_{cfg.kind}_config.json").write_text(json.dumps(asdict(cfg), indent=2) + "\n")
    return path


def samples_of(cfg: TrainConfig) -> int:
    """Window length in samples (for callers that hold only the config)."""
    return cfg.window_samples


def _resume(
    path: Path, net: nn.Module, opt: torch.optim.Optimizer, sched: torch.optim.lr_scheduler.LRScheduler
) -> int:
    if not path.is_file():
        return 0
    ck = torch.load(path, map_location="cpu", weights_only=False)
    net.load_state_dict(ck["net"])
    opt.load_state_dict(ck["opt"])
    sched.load_state_dict(ck["sched"])
    torch.set_rng_state(ck["torch_rng"])
    return int(ck["epoch"])


def _checkpoint(
    path: Path,
    net: nn.Module,
    opt: torch.optim.Optimizer,
    sched: torch.optim.lr_scheduler.LRScheduler,
    epoch: int,
) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(
        {
            "net": net.state_dict(),
            "opt": opt.state_dict(),
            "sched": sched.state_dict(),
            "epoch": epoch,
            "torch_rng": torch.get_rng_state(),
        },
        tmp,
    )
    tmp.replace(path)


def code_auroc(targets: np.ndarray, logits: np.ndarray) -> float | None:
    """Macro AUROC over the statements with positives and negatives in ``targets`` (None if none)."""
    from sklearn.metrics import roc_auc_score

    aucs = [
        float(roc_auc_score(targets[:, j], logits[:, j]))
        for j in range(targets.shape[1])
        if 0 < targets[:, j].sum() < len(targets)
    ]
    return float(np.mean(aucs)) if aucs else None


@torch.inference_mode()
def _teacher_outputs(net: TeacherNet, x: np.ndarray, batch: int = 256) -> tuple[np.ndarray, np.ndarray | None]:
    net.eval()
    rhythm, codes = [], []
    for i in range(0, len(x), batch):
        r, c = net.forward_all(torch.from_numpy(x[i : i + batch]))
        rhythm.append(r.float())
        if c is not None:
            codes.append(c.float())
    return torch.cat(rhythm).numpy(), (torch.cat(codes).numpy() if codes else None)


def _teacher_metrics(net: TeacherNet, va: TwelveLeadSet, vocab: list[str]) -> dict[str, Any]:
    rhythm, codes = _teacher_outputs(net, va.x)
    m: dict[str, Any] = dict(score(va.y, _softmax(rhythm)))
    if codes is not None:
        m["scp_auroc_macro"] = code_auroc(code_targets(va.codes, vocab), codes)
    return m


def _fit_teacher(cfg: TrainConfig, out: Path, tr: TwelveLeadSet, va: TwelveLeadSet, log: Log) -> Path:
    vocab = code_vocabulary(tr.codes, cfg.diag_min_count) if cfg.diag_weight > 0 else []
    targets = torch.from_numpy(code_targets(tr.codes, vocab))
    net_cfg = NetConfig(in_leads=12, samples=cfg.window_samples, n_codes=len(vocab))
    net = build_net("teacher", net_cfg)
    assert isinstance(net, TeacherNet)
    if vocab:
        log(f"teacher: diagnostic head over {len(vocab)} SCP codes on >= {cfg.diag_min_count} records")
    steps = math.ceil(len(tr.y) / cfg.batch)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = _schedule(opt, steps * cfg.epochs, int(cfg.warmup_frac * steps * cfg.epochs))
    start = _resume(out / "ckpt.pt", net, opt, sched)
    weights = class_weights(tr.y, net_cfg.n_classes)
    for epoch in range(start, cfg.epochs):
        rng = np.random.default_rng([cfg.seed, epoch])
        order = rng.permutation(len(tr.y))
        net.train()
        t0, total = time.time(), 0.0
        for s in range(steps):
            idx = order[s * cfg.batch : (s + 1) * cfg.batch]
            x = torch.from_numpy(tr.x[idx])
            rhythm, codes = net.forward_all(x)
            loss = F.cross_entropy(rhythm, torch.from_numpy(tr.y[idx]), weight=weights)
            if codes is not None:
                loss = loss + cfg.diag_weight * F.binary_cross_entropy_with_logits(codes, targets[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            opt.step()
            sched.step()
            total += float(loss.detach())
        _log_epoch(out, log, epoch, total / steps, time.time() - t0, {"ptbxl_val": _teacher_metrics(net, va, vocab)})
        _checkpoint(out / "ckpt.pt", net, opt, sched, epoch + 1)
    m = _teacher_metrics(net, va, vocab)
    return _save_weights(cfg, net, net_cfg, {"ptbxl_val": m, "epochs": cfg.epochs, "scp_codes": vocab})


def _log_epoch(
    out: Path, log: Log, epoch: int, loss: float, secs: float, metrics: dict[str, dict[str, object]]
) -> None:
    row = {"epoch": epoch + 1, "loss": loss, "seconds": secs, **metrics}
    with (out / "history.jsonl").open("a") as f:
        f.write(json.dumps(row) + "\n")
    parts = [
        f"{k} F1nao {v['f1_mean_nao']:.3f} F1A {v['f1']['A']:.3f} AUROC {v['auroc_macro']:.3f}"  # type: ignore[index]
        + (f" SCP AUROC {v['scp_auroc_macro']:.3f}" if v.get("scp_auroc_macro") is not None else "")
        for k, v in metrics.items()
    ]
    log(f"epoch {epoch + 1} loss {loss:.4f} {secs:.0f}s | " + " | ".join(parts))


def _pretrain_reconstruction(
    cfg: TrainConfig, net: StudentNet, twelve_x: np.ndarray, feats: np.ndarray, log: Log, ckpt: Path | None = None
) -> None:
    """Teach the backbone and reconstruction module the teacher's features before any class loss.

    Joint training starts with an untrained reconstruction module, so the fusion may learn to
    ignore the reconstructed tokens early on; a first stage on the feature loss alone lets the
    fusion see useful 12-lead features from its first step (a two-stage schedule; tried, not adopted: see the card).
    """
    params = [*net.backbone.parameters(), *net.reconstruct.parameters(), *net.to_teacher.parameters()]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps = math.ceil(len(twelve_x) / cfg.batch)
    sched = _schedule(opt, steps * cfg.pretrain_epochs, int(cfg.warmup_frac * steps * cfg.pretrain_epochs))
    first = _resume(ckpt, net, opt, sched) if ckpt is not None else 0
    for epoch in range(first, cfg.pretrain_epochs):
        rng = np.random.default_rng([cfg.seed, 10_000 + epoch])
        order = rng.permutation(len(twelve_x))
        net.train()
        t0, total = time.time(), 0.0
        for s in range(steps):
            idx = order[s * cfg.batch : (s + 1) * cfg.batch]
            _, recon = net.forward_all(torch.from_numpy(twelve_x[idx]))
            loss = F.mse_loss(recon, torch.from_numpy(feats[idx]))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            sched.step()
            total += float(loss.detach())
        log(f"pretrain {epoch + 1}/{cfg.pretrain_epochs}: feature loss {total / steps:.4f} ({time.time() - t0:.0f} s)")
        if ckpt is not None:
            _checkpoint(ckpt, net, opt, sched, epoch + 1)


def _fit_single(
    cfg: TrainConfig, out: Path, twelve: TwelveLeadSet, twelve_val: TwelveLeadSet, log: Log
) -> Path:
    samples = cfg.window_samples
    bank = cinc_bank(Path(cfg.cinc2017), cfg.fs_hz, Path(cfg.cache_dir))
    held = stratified_holdout(bank.names, bank.y, cfg.val_fraction, cfg.split_seed)
    held_set = set(held)
    list_path = Path(cfg.weights_dir) / VAL_RECORDS_FILE
    list_path.write_text(
        f"# cinc2017 validation records: stratified {cfg.val_fraction:.0%} hold-out, seed {cfg.split_seed}; "
        "never trained on\n" + "\n".join(held) + "\n"
    )
    train_bank = bank.subset([n for n in bank.names if n not in held_set])
    val_bank = bank.subset(held)
    vx, vowner = val_windows(val_bank, samples, round(cfg.eval_hop_s * cfg.fs_hz), cfg.fs_hz)
    vx = vx[:, None, :]
    tx_val = twelve_val.x[:, :1]
    twelve_x = twelve.x[:, :1]
    net_cfg = NetConfig(in_leads=1, samples=samples)
    net = build_net(cfg.kind, net_cfg)
    feats = None
    if cfg.kind == "student":
        teacher_path = Path(cfg.weights_dir) / "classifier_teacher.pt"
        if not teacher_path.is_file():
            raise FileNotFoundError(f"{teacher_path} is missing; train the teacher first (--kind teacher).")
        raw = _teacher_tokens(teacher_path, twelve.x)
        mu, sd = raw.mean(axis=(0, 1)), raw.std(axis=(0, 1)) + 1e-6
        feats = (raw - mu) / sd
    steps = math.ceil(len(train_bank.names) / cfg.batch)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = _schedule(opt, steps * cfg.epochs, int(cfg.warmup_frac * steps * cfg.epochs))
    start = _resume(out / "ckpt.pt", net, opt, sched)
    if isinstance(net, StudentNet) and start == 0 and cfg.pretrain_epochs > 0:
        assert feats is not None
        if cfg.pool:
            from models.classifier.pool import pool_student_arrays

            pool_x, pool_raw = pool_student_arrays(
                Path(cfg.pool), teacher_path, cfg.fs_hz, samples, Path(cfg.cache_dir), log
            )
            pool_feats = ((pool_raw.astype(np.float32) - mu) / sd).astype(np.float32)
            log(f"student: pre-training the reconstruction on {len(pool_x)} pool records")
            _pretrain_reconstruction(cfg, net, pool_x, pool_feats, log, out / "pretrain_ckpt.pt")
        else:
            _pretrain_reconstruction(cfg, net, twelve_x, feats, log, out / "pretrain_ckpt.pt")
    w_cinc = class_weights(train_bank.y, net_cfg.n_classes)
    w_twelve = class_weights(twelve.y, net_cfg.n_classes)
    log(
        f"{cfg.kind}: {len(train_bank.names)} cinc2017 train records, {len(held)} held out, "
        f"{len(twelve.y)} 12-lead records, {sum(p.numel() for p in net.parameters())} parameters"
    )
    for epoch in range(start, cfg.epochs):
        rng = np.random.default_rng([cfg.seed, epoch])
        order = rng.permutation(len(train_bank.names))
        net.train()
        t0, total = time.time(), 0.0
        for s in range(steps):
            idx = order[s * cfg.batch : (s + 1) * cfg.batch]
            crops = random_crops(train_bank, idx, samples, rng)
            flip = np.where(rng.random(len(idx)) < cfg.flip_p, -1.0, 1.0).astype(np.float32)[:, None]
            xc = torch.from_numpy(preprocess_windows(crops, cfg.fs_hz) * flip)[:, None]
            yc = torch.from_numpy(train_bank.y[idx])
            tidx = rng.integers(0, len(twelve.y), cfg.twelve_batch)
            xt = torch.from_numpy(twelve_x[tidx])
            yt = torch.from_numpy(twelve.y[tidx])
            x = torch.cat([xc, xt])
            if isinstance(net, StudentNet):
                logits, recon = net.forward_all(x)
                assert feats is not None
                feat_loss = F.mse_loss(recon[len(idx) :], torch.from_numpy(feats[tidx]))
            else:
                logits, feat_loss = net(x), torch.zeros(())
            loss = (
                F.cross_entropy(logits[: len(idx)], yc, weight=w_cinc)
                + cfg.twelve_cls_weight * F.cross_entropy(logits[len(idx) :], yt, weight=w_twelve)
                + cfg.feat_weight * feat_loss
            )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            opt.step()
            sched.step()
            total += float(loss.detach())
        rec = aggregate(_softmax(_logits(net, vx)), vowner, len(held))
        metrics = {
            "cinc_val": score(val_bank.y, rec),
            "ptbxl_val_lead_i": score(twelve_val.y, _softmax(_logits(net, tx_val))),
        }
        _log_epoch(out, log, epoch, total / steps, time.time() - t0, metrics)
        _checkpoint(out / "ckpt.pt", net, opt, sched, epoch + 1)
    rec = aggregate(_softmax(_logits(net, vx)), vowner, len(held))
    return _save_weights(cfg, net, net_cfg, {"cinc_val": score(val_bank.y, rec), "epochs": cfg.epochs})


def parse_config(argv: list[str] | None = None) -> TrainConfig:
    """``KIND [--field value ...]``: any ``TrainConfig`` field as an option, typed and checked by argparse."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m models.classifier.train", description=__doc__)
    parser.add_argument("kind", choices=KINDS)
    for f in fields(TrainConfig):
        if f.name != "kind":
            kind = {"int": int, "float": float, "str": str}[str(f.type)]
            names = sorted({f"--{f.name}", f"--{f.name.replace('_', '-')}"})
            parser.add_argument(*names, dest=f.name, type=kind, default=f.default)
    return TrainConfig(**vars(parser.parse_args(argv)))


def main(argv: list[str] | None = None) -> None:
    """Train one classifier from the command line (``ecgmon train classifier`` is the friendlier way)."""
    path = run(parse_config(argv), log=lambda s: print(time.strftime("%H:%M:%S"), s, flush=True))
    print("weights:", path, flush=True)


if __name__ == "__main__":
    main()
