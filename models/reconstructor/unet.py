"""Baseline: a 1-D U-Net over lead I with the same metadata embedding joined at its bottleneck.

Four levels (L, L/2, L/4, L/8), skips at each, dropout at the bottleneck (full MC only) and twice in
the head (both MC passes), and the same mean + log-variance output as the dual-branch model.
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
from models.reconstructor.dual_branch import _conv, _fit
from models.registry import register


class UNet1d(TwoStageNet):
    """A small 1-D U-Net; ``width`` channels at the top level, doubling per level."""

    def __init__(
        self, width: int = 16, meta_dim: int = 16, p_trunk: float = 0.1, p_head: float = 0.2, levels: int = 3
    ) -> None:
        super().__init__()
        self.meta = MetaEncoder(meta_dim)
        chans = [width * 2**i for i in range(levels + 1)]
        self.stem = nn.Sequential(_conv(1, chans[0], 7), _conv(chans[0], chans[0], 7))
        self.downs = nn.ModuleList(
            nn.Sequential(_conv(chans[i], chans[i + 1], 5, stride=2), _conv(chans[i + 1], chans[i + 1], 5))
            for i in range(levels)
        )
        self.bottleneck = _conv(chans[-1] + meta_dim, chans[-1], 3)
        self.drop_trunk = nn.Dropout(p_trunk)
        self.ups = nn.ModuleList(
            nn.ConvTranspose1d(chans[i + 1], chans[i], 4, stride=2, padding=1)
            for i in reversed(range(levels))
        )
        self.decs = nn.ModuleList(_conv(2 * chans[i], chans[i], 5) for i in reversed(range(levels)))
        self.drop_h1 = nn.Dropout(p_head)
        self.head_conv = _conv(chans[0], chans[0], 5)
        self.drop_h2 = nn.Dropout(p_head)
        self.out = nn.Conv1d(chans[0], 2 * N_OUT, 1)

    def trunk(self, x: torch.Tensor, age: torch.Tensor, sex: torch.Tensor) -> torch.Tensor:
        skips = [self.stem(x)]
        for down in self.downs:
            skips.append(down(skips[-1]))
        b = skips.pop()
        m = self.meta(age, sex).unsqueeze(-1).expand(-1, -1, b.shape[-1])
        h = self.drop_trunk(self.bottleneck(torch.cat([b, m], dim=1)))
        for up, dec in zip(self.ups, self.decs, strict=True):
            s = skips.pop()
            h = dec(torch.cat([_fit(up(h), s.shape[-1]), s], dim=1))
        return h

    def head(self, feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = self.out(self.drop_h2(self.head_conv(self.drop_h1(feats))))
        return y[:, :N_OUT], y[:, N_OUT:].clamp(-12.0, 6.0)

    def head_dropouts(self) -> list[nn.Dropout]:
        return [self.drop_h1, self.drop_h2]


@register("unet")
def build(
    *,
    device: str = "cpu",
    weights: bool | Path = True,
    mc_mode: MCMode = "full",
    replay_chunk: int = REPLAY_CHUNK,
) -> TorchReconstructor:
    """The U-Net baseline, with committed weights unless ``weights=False``."""
    return build_torch("unet", UNet1d, device=device, weights=weights, mc_mode=mc_mode, replay_chunk=replay_chunk)
