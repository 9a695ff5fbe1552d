"""MC dropout that a replay reproduces bit for bit: each window's masks come from its own seed.

Torch's dropout draws one mask for the whole batch from the global generator, so a window's MC
passes (its probabilities, uncertainty, reconstruction) depend on which other windows shared its
batch and on what ran before. Here the dropout modules stay in eval mode (identity) and a forward
hook multiplies each row of their output by a mask drawn from the generator of the row's window,
seeded by the caller (the stream seeds from patient id and seq). A row ``r`` of a batch of ``rows``
belongs to window ``r % n`` of the ``n`` seeded windows, so the batch replicated ``T`` times for
the MC passes (``x.repeat(T, ...)``, pass-major) works as well as one pass at a time; each window's
generator is drawn in the same order whatever else is in the batch.

The arithmetic must not depend on the batch either, and CPU kernels choose their blocking by batch
size (measured on this machine: a window's fp32 probabilities differ in the last bits between a batch
of 1, of 2-15 and of 16 or more; within one size its position and neighbours change nothing). So the
replayable path always runs ``REPLAY_CHUNK`` windows per forward pass, padding the last chunk
(``chunks``). Same device, torch build and thread count give the same bits; a different machine may not.
A model may use a chunk of its own (the reconstructor's ``replay_chunk``, 4: it sees a few windows per
batch); what matters is that its size never depends on the batch.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from torch import nn

REPLAY_CHUNK = 16
"""Windows per forward pass on the replayable path: at 16 a batch of 32 cost the same as one pass of 32."""


def chunks(n: int, size: int | None = None) -> Iterator[tuple[int, int]]:
    """``(start, stop)`` of the chunks of ``size`` (default ``REPLAY_CHUNK``) over ``n`` rows; the last may be short."""
    size = size or REPLAY_CHUNK
    for start in range(0, n, size):
        yield start, min(start + size, n)


def pad_rows(x: np.ndarray, size: int | None = None) -> np.ndarray:
    """``x [k, ...]`` padded with zero rows to ``[size, ...]`` (k <= size), so every forward pass has one shape."""
    size = size or REPLAY_CHUNK
    if x.shape[0] == size:
        return x
    return np.concatenate([x, np.zeros((size - x.shape[0], *x.shape[1:]), dtype=x.dtype)])


def pad_seeds(seeds: Sequence[int], size: int | None = None) -> list[int]:
    """The chunk's seeds, then zeros for its padding rows (whose outputs are thrown away)."""
    size = size or REPLAY_CHUNK
    return [int(s) for s in seeds] + [0] * (size - len(seeds))


@contextmanager
def seeded_dropout(modules: Iterable[nn.Module], seeds: Sequence[int]) -> Iterator[None]:
    """Within the block, every ``nn.Dropout`` in ``modules`` drops with per-window seeded masks.

    ``seeds`` has one entry per window of the batch (``n``); a module's input must have a multiple of
    ``n`` rows. The modules must be in eval mode (they are identity then; the hook applies the mask).
    """
    dropouts = [m for m in modules if isinstance(m, nn.Dropout)]
    generators: list[torch.Generator] = []
    device: torch.device | None = None

    def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> torch.Tensor:
        nonlocal device, generators
        p = float(module.p)  # type: ignore[arg-type]
        if p <= 0.0:
            return output
        if device is None or output.device != device:
            device = output.device
            generators = [torch.Generator(device=device).manual_seed(int(s) % 2**63) for s in seeds]
        rows = output.shape[0]
        n = len(generators)
        if rows % n:
            raise ValueError(f"a dropout input has {rows} rows, not a multiple of the {n} seeded windows")
        shape = tuple(output.shape[1:])
        # One draw per window for all its rows (passes): the same numbers, in the same order, as one draw
        # per row (rows r, r + n, ... of window r), at a fraction of the calls (issue 24).
        passes = rows // n
        u = torch.stack([torch.rand((passes, *shape), generator=g, device=device) for g in generators], dim=1)
        keep = u.reshape(rows, *shape) >= p
        return output * keep.to(output.dtype).mul_(1.0 / (1.0 - p))

    handles: list[Any] = []
    try:
        for m in dropouts:
            if m.training:
                raise ValueError("seeded_dropout needs the dropout modules in eval mode")
            handles.append(m.register_forward_hook(hook))
        yield
    finally:
        for h in handles:
            h.remove()
