"""The method: a CNN-BiLSTM branch over lead I and an MLP branch over age/sex, fused and decoded.

Lead I ``[n, 1, L]`` -> two strided conv stages (L/4, skips kept at L and L/2) -> BiLSTM over L/4
with the metadata embedding appended to every step -> concat with metadata again, 1x1 fusion ->
two transposed-conv stages back to L with the skips -> dropout head -> 11 means + 11 log-variances.
Dropout sits after the conv stem and the BiLSTM (sampled only in the full MC pass) and twice in the
head (sampled in both MC passes).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from models.reconstructor.common import (
    N_OUT,
    REPLAY_CHUNK,
    MCMode,
    MetaEncoder,
    TorchReconstructor,
    TwoStageNet,
    build_torch,
)
from models.registry import register


def _conv(c_in: int, c_out: int, k: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv1d(c_in, c_out, k, stride=stride, padding=k // 2), nn.BatchNorm1d(c_out), nn.GELU()
    )


class DualBranchNet(TwoStageNet):
    """CNN-BiLSTM over lead I + metadata MLP; see the module docstring for the layout."""

    def __init__(
        self,
        width: int = 32,
        hidden: int = 64,
        meta_dim: int = 16,
        p_trunk: float = 0.1,
        p_head: float = 0.2,
        use_meta: bool = True,
    ) -> None:
        super().__init__()
        w = width
        self.use_meta = use_meta
        self.meta = MetaEncoder(meta_dim)
        self.stem = _conv(1, w, 7)
        self.down1 = nn.Sequential(_conv(w, w, 7, stride=2), _conv(w, w, 5))
        self.down2 = nn.Sequential(_conv(w, 2 * w, 5, stride=2), _conv(2 * w, 2 * w, 5))
        self.drop_trunk = nn.Dropout(p_trunk)
        self.lstm = nn.LSTM(2 * w + meta_dim, hidden, batch_first=True, bidirectional=True)
        self.fuse = _conv(2 * hidden + meta_dim, 2 * w, 1)
        self.up1 = nn.ConvTranspose1d(2 * w, w, 4, stride=2, padding=1)
        self.dec1 = _conv(2 * w, w, 5)
        self.up2 = nn.ConvTranspose1d(w, w, 4, stride=2, padding=1)
        self.dec2 = _conv(2 * w, w, 5)
        self.drop_h1 = nn.Dropout(p_head)
        self.head_conv = _conv(w, w, 5)
        self.drop_h2 = nn.Dropout(p_head)
        self.out = nn.Conv1d(w, 2 * N_OUT, 1)

    def trunk(self, x: torch.Tensor, age: torch.Tensor, sex: torch.Tensor) -> torch.Tensor:
        length = x.shape[-1]
        m = self.meta(age, sex)
        if not self.use_meta:
            m = torch.zeros_like(m)
        s0 = self.stem(x)
        s1 = self.down1(s0)
        s2 = self.drop_trunk(self.down2(s1))
        mt = m.unsqueeze(-1).expand(-1, -1, s2.shape[-1])
        h, _ = self.lstm(torch.cat([s2, mt], dim=1).transpose(1, 2))
        h = self.drop_trunk(h.transpose(1, 2))
        f = self.fuse(torch.cat([h, mt], dim=1))
        f = self.dec1(torch.cat([_fit(self.up1(f), s1.shape[-1]), s1], dim=1))
        return self.dec2(torch.cat([_fit(self.up2(f), length), s0], dim=1))

    def head(self, feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = self.out(self.drop_h2(self.head_conv(self.drop_h1(feats))))
        return y[:, :N_OUT], y[:, N_OUT:].clamp(-12.0, 6.0)

    def head_dropouts(self) -> list[nn.Dropout]:
        return [self.drop_h1, self.drop_h2]


def _fit(x: torch.Tensor, length: int) -> torch.Tensor:
    """Crop or zero-pad the time axis to ``length`` (odd lengths lose a sample when halved)."""
    if x.shape[-1] >= length:
        return x[..., :length]
    return nn.functional.pad(x, (0, length - x.shape[-1]))


@register("dual_branch")
def build(
    *,
    device: str = "cpu",
    weights: bool | Path = True,
    mc_mode: MCMode = "full",
    replay_chunk: int = REPLAY_CHUNK,
) -> TorchReconstructor:
    """The dual-branch reconstructor (the stream's default); committed weights unless ``weights=False``.

    ``mc_mode``: ``full``, ``head`` or ``variance`` (one pass, predicted std; the stream's default since
    issue 24); ``replay_chunk``: windows per forward pass on the seeded, replayable path.
    """
    return build_torch(
        "dual_branch", DualBranchNet, device=device, weights=weights, mc_mode=mc_mode, replay_chunk=replay_chunk
    )
