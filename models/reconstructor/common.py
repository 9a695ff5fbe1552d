"""What every reconstructor shares: units, the metadata branch, MC-dropout inference, weight files.

Units. Inputs are lead I windows in mV at ``fs_hz``; ``reconstruct`` standardises each window
(zero mean, unit std) before the network, so any gain works. Outputs are each lead in **z units
per window** (zero mean, unit standard deviation over the window), which is how ``ptbxl_z`` stores
its targets and the only scale that can be judged on folders shipped without a mV scale. Pearson r
is unchanged by that scale; RMSE is in z units.

Uncertainty. ``std`` combines the spread of T Monte-Carlo-dropout passes (epistemic) with the mean
of the per-sample variance the network predicts on each pass (aleatoric, trained by Gaussian NLL on
a detached mean so it never pulls the mean away from the MSE fit). ``mc_mode`` chooses the full
pass (the batch replicated T times through every dropout), the cheap pass (trunk once with dropout
off, only the dropout head sampled T times), or ``variance``: one deterministic pass whose std is the
predicted variance alone (issue 24: the MC spread does not track the error, the variance head does;
on ptbxl_z val it keeps r and Spearman at a quarter of the head pass's cost, see the card's "Model
cost"). With ``seeds`` (one per window) each window's masks come from its own seed and windows run
in fixed chunks of ``replay_chunk`` (``models.mc_dropout``), so a replayed window gets the same bits
whatever batch it is in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from ecgmon.errors import ConfigError, ModelError
from models.interfaces import OUTPUT_LEADS, PatientMeta
from models.mc_dropout import chunks, pad_rows, pad_seeds, seeded_dropout

WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"
UNITS = "z-score per lead per window (zero mean, unit std over the window); not mV"
STD_FLOOR = 1e-3
"""Smallest window std used when standardising, so a flat window does not divide by zero."""
AGE_CENTRE_YEARS = 60.0
AGE_SPREAD_YEARS = 20.0
N_OUT = len(OUTPUT_LEADS)
MCMode = Literal["full", "head", "variance"]
MC_MODES: tuple[str, ...] = ("full", "head", "variance")
REPLAY_CHUNK = 4
"""Windows per forward pass on the replayable path. The worker reconstructs a few windows per batch
(6.6 % of 64 in the bench); chunks of 16 padded those 4 to 16 rows, 4x the work, while a chunk of 4
costs only ~25 % more per window than 16 on full batches (BENCHMARKS.md, "Model cost (issue 24)")."""


def standardise(x: np.ndarray) -> np.ndarray:
    """``x [..., samples]`` -> zero mean, unit std along the last axis (float32)."""
    x = np.asarray(x, dtype=np.float32)
    mu = x.mean(axis=-1, keepdims=True)
    sd = np.maximum(x.std(axis=-1, keepdims=True), STD_FLOOR)
    return ((x - mu) / sd).astype(np.float32)


class MetaEncoder(nn.Module):
    """Age and sex -> ``[n, dim]``; a learned vector stands in for each one that is unknown (NaN)."""

    def __init__(self, dim: int = 16) -> None:
        super().__init__()
        self.age = nn.Sequential(nn.Linear(1, dim), nn.GELU(), nn.Linear(dim, dim))
        self.age_unknown = nn.Parameter(torch.zeros(dim))
        self.sex = nn.Embedding(3, dim)  # 0 male, 1 female, 2 unknown
        self.mix = nn.Sequential(nn.Linear(2 * dim, dim), nn.GELU(), nn.Linear(dim, dim))
        self.dim = dim

    def forward(self, age_years: torch.Tensor, sex: torch.Tensor) -> torch.Tensor:
        age_known = torch.isfinite(age_years)
        age_z = torch.where(age_known, age_years, torch.full_like(age_years, AGE_CENTRE_YEARS))
        age_z = (age_z - AGE_CENTRE_YEARS) / AGE_SPREAD_YEARS
        a = self.age(age_z.unsqueeze(-1))
        a = torch.where(age_known.unsqueeze(-1), a, self.age_unknown.expand_as(a))
        s_idx = torch.where(torch.isfinite(sex), sex, torch.full_like(sex, 2.0)).round().clamp(0, 2).long()
        return self.mix(torch.cat([a, self.sex(s_idx)], dim=-1))


class TwoStageNet(nn.Module):
    """A network split into ``trunk(x, age, sex) -> features`` and ``head(features) -> (mean, logvar)``.

    The split is what lets the cheap MC variant run the trunk once and sample only the head.
    """

    def trunk(self, x: torch.Tensor, age: torch.Tensor, sex: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def head(self, feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def forward(
        self, x: torch.Tensor, age: torch.Tensor, sex: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return self.head(self.trunk(x, age, sex))

    def head_dropouts(self) -> list[nn.Dropout]:
        """Dropout layers inside the head (sampled in both MC modes)."""
        raise NotImplementedError


def _set_dropout(module: nn.Module, active: bool) -> None:
    for m in module.modules():
        if isinstance(m, nn.Dropout):
            m.train(active)


@dataclass
class TorchReconstructor:
    """A trained ``TwoStageNet`` behind the ``models.interfaces.Reconstructor`` protocol."""

    net: TwoStageNet
    name: str
    version: str
    fs_hz: float
    window_samples: int
    config: dict[str, Any] = field(default_factory=dict)
    device: str = "cpu"
    mc_mode: MCMode = "full"
    units: str = UNITS
    replay_chunk: int = REPLAY_CHUNK

    def __post_init__(self) -> None:
        if self.mc_mode not in MC_MODES:
            raise ConfigError(f"mc_mode must be one of {', '.join(MC_MODES)}, not {self.mc_mode!r}.")
        if self.replay_chunk < 1:
            raise ConfigError(f"replay_chunk must be >= 1, got {self.replay_chunk}.")
        self.net.to(self.device).eval()

    def _tensors(self, lead_i: np.ndarray, meta: PatientMeta) -> tuple[torch.Tensor, ...]:
        x = np.asarray(lead_i)
        if x.ndim != 2 or x.shape[1] != self.window_samples:
            raise ConfigError(
                f"lead_i has shape {x.shape}; {self.name} needs [n, {self.window_samples}] "
                f"at {self.fs_hz:g} Hz."
            )
        n = x.shape[0]
        age = np.asarray(meta.age_years, dtype=np.float32).reshape(-1)
        sex = np.asarray(meta.sex, dtype=np.float32).reshape(-1)
        if age.shape[0] != n or sex.shape[0] != n:
            raise ConfigError(f"meta has {age.shape[0]} ages and {sex.shape[0]} sexes for {n} windows.")
        pin = self.device.startswith("cuda")
        ts = [torch.from_numpy(standardise(x)).unsqueeze(1), torch.from_numpy(age), torch.from_numpy(sex)]
        return tuple((t.pin_memory() if pin else t).to(self.device, non_blocking=pin) for t in ts)

    def reconstruct(
        self, lead_i: np.ndarray, meta: PatientMeta, samples: int = 8, seeds: Sequence[int] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """``lead_i [n, window_samples]`` mV at ``fs_hz`` -> ``(mean, std)`` ``[n, 11, window_samples]`` (z).

        ``samples <= 1`` is one deterministic pass and its std is all zeros (no uncertainty asked for);
        with ``mc_mode="variance"`` any ``samples > 1`` is one deterministic pass too, its std the
        predicted one. ``seeds`` (one per window): replayable MC dropout, see the module docstring.
        """
        mean, epistemic_var, aleatoric_var = self.reconstruct_parts(lead_i, meta, samples, seeds)
        if samples <= 1:
            return mean, np.zeros_like(mean)
        return mean, np.sqrt(epistemic_var + aleatoric_var)

    def reconstruct_parts(
        self, lead_i: np.ndarray, meta: PatientMeta, samples: int = 8, seeds: Sequence[int] | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(mean, epistemic variance, aleatoric variance)``, each ``[n, 11, window_samples]`` (z, z^2).

        Epistemic = variance of the T MC-dropout means (zeros when ``samples <= 1``); aleatoric = mean of
        the predicted variances. Evaluation reports how each tracks the error.
        """
        if seeds is not None:
            if len(seeds) != len(lead_i):
                raise ConfigError(f"seeds must have one entry per window: {len(seeds)} for {len(lead_i)}.")
            return self._replayable_parts(np.asarray(lead_i), meta, int(samples), seeds)
        x, age, sex = self._tensors(lead_i, meta)
        cuda = self.device.startswith("cuda")
        with torch.inference_mode(), torch.autocast("cuda", enabled=cuda):
            parts = self._run(x, age, sex, int(samples))
        mean, epi, alea = (p.float().cpu().numpy() for p in parts)
        return mean, epi, alea

    def _replayable_parts(
        self, lead_i: np.ndarray, meta: PatientMeta, samples: int, seeds: Sequence[int]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``reconstruct_parts`` in fixed, padded chunks with per-window seeded masks."""
        age = np.asarray(meta.age_years, dtype=np.float32).reshape(-1)
        sex = np.asarray(meta.sex, dtype=np.float32).reshape(-1)
        cuda = self.device.startswith("cuda")
        out: list[tuple[np.ndarray, ...]] = []
        size = self.replay_chunk
        for start, stop in chunks(len(lead_i), size):
            chunk_meta = PatientMeta(pad_rows(age[start:stop], size), pad_rows(sex[start:stop], size))
            x, a, s = self._tensors(pad_rows(lead_i[start:stop], size), chunk_meta)
            with torch.inference_mode(), torch.autocast("cuda", enabled=cuda):
                parts = self._run(x, a, s, samples, pad_seeds(seeds[start:stop], size))
            out.append(tuple(p.float().cpu().numpy()[: stop - start] for p in parts))
        if not out:
            empty = np.zeros((0, len(OUTPUT_LEADS), self.window_samples), np.float32)
            return empty, empty, empty
        mean, epi, alea = (np.concatenate(parts) for parts in zip(*out, strict=True))
        return mean, epi, alea

    def _run(
        self, x: torch.Tensor, age: torch.Tensor, sex: torch.Tensor, t: int, seeds: list[int] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        net = self.net
        net.eval()
        n = x.shape[0]
        if t <= 1 or self.mc_mode == "variance":
            mu, logvar = net(x, age, sex)
            return mu, torch.zeros_like(mu), torch.exp(logvar.float())
        if seeds is not None:  # masks per window from its seed; the dropout modules stay in eval mode
            if self.mc_mode == "full":
                with seeded_dropout(net.modules(), seeds):
                    mu, logvar = net(x.repeat(t, 1, 1), age.repeat(t), sex.repeat(t))
            else:
                feats = net.trunk(x, age, sex)
                with seeded_dropout(net.head_dropouts(), seeds):
                    mu, logvar = net.head(feats.repeat(t, *([1] * (feats.dim() - 1))))
        else:
            try:
                if self.mc_mode == "full":
                    _set_dropout(net, True)
                    mu, logvar = net(x.repeat(t, 1, 1), age.repeat(t), sex.repeat(t))
                else:
                    feats = net.trunk(x, age, sex)
                    for d in net.head_dropouts():
                        d.train(True)
                    mu, logvar = net.head(feats.repeat(t, *([1] * (feats.dim() - 1))))
            finally:
                _set_dropout(net, False)
        mu = mu.float().reshape(t, n, *mu.shape[1:])
        var = torch.exp(logvar.float()).reshape(t, n, *logvar.shape[1:])
        mean = mu.mean(dim=0)
        spread = mu - mean  # not Tensor.var(dim=0): that reduction over the pass axis took 17 % of a head pass
        return mean, (spread * spread).mean(dim=0), var.mean(dim=0)


def save_weights(path: Path, state: nn.Module | dict[str, torch.Tensor], config: dict[str, Any]) -> None:
    """State dict and the config that rebuilds it (arch kwargs, rate, window, leads, version)."""
    tensors = state.state_dict() if isinstance(state, nn.Module) else state
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"config": config, "state_dict": {k: v.detach().cpu() for k, v in tensors.items()}}, path)


def load_weights(path: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """``(config, state_dict)`` from a weight file; a missing or broken file is a ``ModelError``."""
    if not path.is_file():
        raise ModelError(f"Weights {path} are missing; train them with `ecgmon train reconstructor` first.")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelError(f"Weights {path} cannot be read ({exc}); retrain or restore the file.") from None
    return blob["config"], blob["state_dict"]


def device_or_default(device: str) -> str:
    """``auto`` -> ``cuda`` when available, else ``cpu``; anything else as given."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


DEFAULT_FS_HZ = 100.0
DEFAULT_WINDOW_SAMPLES = 1000
VERSION = "1.0"


def build_torch(
    name: str,
    net_cls: type[TwoStageNet],
    *,
    device: str,
    weights: bool | Path,
    mc_mode: MCMode,
    arch: dict[str, Any] | None = None,
    replay_chunk: int = REPLAY_CHUNK,
) -> TorchReconstructor:
    """Build ``net_cls``; unless ``weights`` is False load ``reconstructor_<name>.pt`` (or the given path)."""
    config: dict[str, Any] = {
        "name": name,
        "version": VERSION,
        "fs_hz": DEFAULT_FS_HZ,
        "window_samples": DEFAULT_WINDOW_SAMPLES,
        "leads": list(OUTPUT_LEADS),
        "units": UNITS,
        "arch": dict(arch or {}),
    }
    state = None
    if weights is not False:
        path = WEIGHTS_DIR / f"reconstructor_{name}.pt" if weights is True else Path(weights)
        config, state = load_weights(path)
        if tuple(config.get("leads", ())) != OUTPUT_LEADS:
            raise ModelError(f"Weights {path} output leads {config.get('leads')} differ from {OUTPUT_LEADS}.")
    net = net_cls(**config["arch"])
    if state is not None:
        try:
            net.load_state_dict(state)
        except RuntimeError as exc:
            raise ModelError(
                f"Weights for {name} do not fit the architecture: {exc}".splitlines()[0]
            ) from None
    return TorchReconstructor(
        net,
        name=name,
        version=str(config["version"]),
        fs_hz=float(config["fs_hz"]),
        window_samples=int(config["window_samples"]),
        config=config,
        device=device_or_default(device),
        mc_mode=mc_mode,
        replay_chunk=replay_chunk,
    )
