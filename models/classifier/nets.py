"""The classifier networks: a multi-scale CNN-Transformer backbone, the 12-lead teacher, the
feature-reconstruction student and its baseline (the student without reconstruction and fusion).

Shapes: input ``[n, leads, samples]`` (preprocessed, unit-free); backbone tokens ``[n, tokens, d]``.
The teacher runs the same backbone on 12 leads, so its tokens line up one to one in time with the
student's: the student's reconstruction module predicts the teacher's token sequence from lead I.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class NetConfig:
    """Sizes of the backbone and heads; saved with the weights so a checkpoint rebuilds its network."""

    in_leads: int = 1
    samples: int = 1000
    stem_channels: int = 16
    stem_kernels: tuple[int, ...] = (5, 11, 21)
    widths: tuple[int, ...] = (64, 64, 96)
    d_model: int = 64
    heads: int = 4
    layers: int = 2
    recon_layers: int = 2
    dropout: float = 0.1
    head_dropout: float = 0.3
    n_classes: int = 4
    n_codes: int = 0
    """Teacher only: outputs of its diagnostic-statement head (multi-label PTB-XL SCP codes); 0 = none."""

    def to_dict(self) -> dict[str, object]:
        """JSON-friendly form (tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> NetConfig:
        """Inverse of ``to_dict``."""
        kw = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}  # type: ignore[call-overload]
        return cls(**kw)  # type: ignore[arg-type]


class _ResBlock(nn.Module):
    """Two convolutions with a strided shortcut: halves the length, widens the channels."""

    def __init__(self, c_in: int, c_out: int, kernel: int, dropout: float) -> None:
        super().__init__()
        pad = kernel // 2
        self.body = nn.Sequential(
            nn.Conv1d(c_in, c_out, kernel, stride=2, padding=pad, bias=False),
            nn.BatchNorm1d(c_out),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Conv1d(c_out, c_out, kernel, padding=pad, bias=False),
            nn.BatchNorm1d(c_out),
        )
        self.skip = nn.Sequential(nn.Conv1d(c_in, c_out, 1, stride=2, bias=False), nn.BatchNorm1d(c_out))
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x) + self.skip(x))


class Backbone(nn.Module):
    """Multi-scale CNN (parallel kernels of 50-210 ms at 100 Hz) then a transformer encoder.

    ``[n, leads, samples]`` -> tokens ``[n, tokens, d_model]``; each token covers 160 ms at 100 Hz,
    fine enough for RR intervals, and attention sees the whole window (irregularity is global).
    """

    def __init__(self, cfg: NetConfig) -> None:
        super().__init__()
        self.stems = nn.ModuleList(
            nn.Conv1d(cfg.in_leads, cfg.stem_channels, k, stride=2, padding=k // 2, bias=False)
            for k in cfg.stem_kernels
        )
        c = cfg.stem_channels * len(cfg.stem_kernels)
        self.stem_norm = nn.Sequential(nn.BatchNorm1d(c), nn.GELU())
        blocks = []
        for w in cfg.widths:
            blocks.append(_ResBlock(c, w, 7, cfg.dropout))
            c = w
        self.blocks = nn.Sequential(*blocks)
        self.proj = nn.Conv1d(c, cfg.d_model, 1)
        self.tokens = token_count(cfg)
        self.pos = nn.Parameter(torch.zeros(1, self.tokens, cfg.d_model))
        nn.init.normal_(self.pos, std=0.02)
        layer = nn.TransformerEncoderLayer(
            cfg.d_model,
            cfg.heads,
            2 * cfg.d_model,
            cfg.dropout,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        self.encoder = nn.TransformerEncoder(layer, cfg.layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(cfg.d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stem_norm(torch.cat([s(x) for s in self.stems], dim=1))
        h = self.proj(self.blocks(h)).transpose(1, 2)
        return self.norm(self.encoder(h + self.pos))


def token_count(cfg: NetConfig) -> int:
    """Tokens per window: the stem and each block halve the length (ceil)."""
    n = cfg.samples
    for _ in range(1 + len(cfg.widths)):
        n = (n + 1) // 2
    return n


class _Head(nn.Module):
    """Mean- and max-pool the tokens, dropout, linear: the same head for every network."""

    def __init__(self, d: int, n_classes: int, dropout: float) -> None:
        super().__init__()
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(2 * d, n_classes)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.fc(self.drop(self.pool(tokens)))

    def pool(self, tokens: torch.Tensor) -> torch.Tensor:
        """``[n, tokens, d]`` -> ``[n, 2 d]``: what the dropout and the linear layer read."""
        return torch.cat([tokens.mean(dim=1), tokens.amax(dim=1)], dim=1)

    def sample(self, tokens: torch.Tensor, passes: int) -> torch.Tensor:
        """Logits of ``passes`` dropout passes in one batch, ``[passes * n, classes]`` (pass-major).

        Pools once and repeats the pooled rows, so head-only MC dropout costs one pooling and one
        small matrix product; the dropout masks are whatever the dropout module draws for its rows.
        """
        return self.fc(self.drop(self.pool(tokens).repeat(passes, 1)))


class TeacherNet(nn.Module):
    """12-lead network; ``features`` are the tokens the student learns to reconstruct.

    With ``n_codes`` it also has a multi-label head over PTB-XL's diagnostic statements (infarcts,
    bundle branch blocks, hypertrophy, ...), trained beside the rhythm head so the tokens carry what
    12 leads show and lead I does not: the *diagnostic* features the method reconstructs.
    """

    def __init__(self, cfg: NetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.backbone = Backbone(cfg)
        self.head = _Head(cfg.d_model, cfg.n_classes, cfg.head_dropout)
        self.code_head = _Head(cfg.d_model, cfg.n_codes, cfg.head_dropout) if cfg.n_codes else None

    def forward_all(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``[n, 12, samples]`` -> ``(rhythm logits [n, classes], statement logits [n, n_codes] or None)``."""
        tokens = self.backbone(x)
        codes = self.code_head(tokens) if self.code_head is not None else None
        return self.head(tokens), codes

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``[n, 12, samples]`` -> ``[n, tokens, d]``."""
        return self.backbone(x)

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """What the head reads, ``[n, tokens, d]`` (head-only MC dropout samples only the head)."""
        return self.backbone(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))


class BaselineNet(nn.Module):
    """The student's backbone and head alone (no reconstruction, no fusion)."""

    def __init__(self, cfg: NetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.backbone = Backbone(cfg)
        self.head = _Head(cfg.d_model, cfg.n_classes, cfg.head_dropout)

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """What the head reads, ``[n, tokens, d]``."""
        return self.backbone(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))


class StudentNet(nn.Module):
    """Lead I -> backbone tokens -> reconstructed teacher tokens -> cross-attention fusion -> head.

    ``forward_all`` also returns the reconstructed 12-lead features for the feature loss; ``forward``
    returns logits only (what inference needs).
    """

    def __init__(self, cfg: NetConfig, teacher_d: int | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.d_model
        td = teacher_d or d
        self.backbone = Backbone(cfg)
        layer = nn.TransformerEncoderLayer(
            d, cfg.heads, 2 * d, cfg.dropout, activation="gelu", batch_first=True, norm_first=True
        )
        self.reconstruct = nn.TransformerEncoder(layer, cfg.recon_layers, enable_nested_tensor=False)
        self.to_teacher = nn.Linear(d, td)
        self.from_teacher = nn.Linear(td, d)
        self.cross = nn.MultiheadAttention(d, cfg.heads, dropout=cfg.dropout, batch_first=True)
        self.norm_q = nn.LayerNorm(d)
        self.norm_kv = nn.LayerNorm(d)
        self.ffn = nn.Sequential(
            nn.LayerNorm(d), nn.Linear(d, 2 * d), nn.GELU(), nn.Dropout(cfg.dropout), nn.Linear(2 * d, d)
        )
        self.head = _Head(d, cfg.n_classes, cfg.head_dropout)

    def _fused(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        own = self.backbone(x)
        recon = self.to_teacher(self.reconstruct(own))
        kv = self.norm_kv(self.from_teacher(recon))
        fused, _ = self.cross(self.norm_q(own), kv, kv, need_weights=False)
        fused = own + fused
        return fused + self.ffn(fused), recon

    def forward_all(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``[n, 1, samples]`` -> ``(logits [n, classes], teacher tokens [n, tokens, teacher_d])``."""
        fused, recon = self._fused(x)
        return self.head(fused), recon

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """The fused tokens the head reads, ``[n, tokens, d]``."""
        return self._fused(x)[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_all(x)[0]


def build_net(kind: str, cfg: NetConfig) -> nn.Module:
    """``teacher`` | ``student`` | ``baseline`` -> an untrained network for ``cfg``."""
    if kind == "teacher":
        return TeacherNet(cfg)
    if kind == "student":
        return StudentNet(cfg)
    if kind == "baseline":
        return BaselineNet(cfg)
    raise ValueError(f"Unknown network kind {kind!r}; expected teacher, student or baseline.")
