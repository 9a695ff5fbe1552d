"""``RhythmClassifier``: what the stream calls. Preprocesses, batches, runs the network, returns
``ClassifierOutput`` with optional MC-dropout uncertainty. Works on CPU and CUDA unchanged."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import nullcontext
from typing import Any

import numpy as np
import torch
from torch import nn

from models.classifier.preprocess import preprocess_windows
from models.interfaces import CLASSES, ClassifierOutput
from models.mc_dropout import REPLAY_CHUNK, chunks, pad_rows, pad_seeds, seeded_dropout

MC_MODES: tuple[str, ...] = ("full", "head")
"""``full``: dropout on everywhere for every pass; ``head``: trunk once, only the head sampled."""


def _dropouts(net: nn.Module) -> Iterator[nn.Module]:
    return (m for m in net.modules() if isinstance(m, nn.Dropout))


def normalised_entropy(probs: np.ndarray) -> np.ndarray:
    """Predictive entropy of ``probs [n, k]`` divided by ``log k``: 0 = certain, 1 = uniform."""
    p = np.clip(probs, 1e-12, 1.0)
    return np.clip(-(p * np.log(p)).sum(axis=1) / math.log(p.shape[1]), 0.0, 1.0)


class RhythmClassifier:
    """A trained network with its input contract (``fs_hz``, ``window_samples``, ``leads``).

    ``predict(x)`` takes raw windows in mV at ``fs_hz``: ``[n, window_samples]`` for single-lead models,
    ``[n, 12, window_samples]`` for the teacher; preprocessing is the one used in training.
    """

    classes: tuple[str, ...] = CLASSES

    def __init__(
        self,
        name: str,
        version: str,
        net: nn.Module,
        *,
        fs_hz: float,
        window_samples: int,
        leads: int,
        device: str = "cpu",
        batch_size: int = 256,
        mc_mode: str = "full",
        replay_chunk: int = REPLAY_CHUNK,
    ) -> None:
        self.name = name
        self.version = version
        self.fs_hz = float(fs_hz)
        self.window_samples = int(window_samples)
        self.leads = int(leads)
        self.device = torch.device(device)
        self.batch_size = int(batch_size)
        if mc_mode not in MC_MODES:
            raise ValueError(f"mc_mode must be one of {', '.join(MC_MODES)}, not {mc_mode!r}.")
        self.mc_mode = mc_mode
        if replay_chunk < 1:
            raise ValueError(f"replay_chunk must be >= 1, got {replay_chunk}.")
        self.replay_chunk = int(replay_chunk)
        """Windows per forward pass with seeds (replayable MC dropout): a batch is padded to a multiple."""
        self.net = net.to(self.device).eval()

    def _check(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        want = (self.window_samples,) if self.leads == 1 else (self.leads, self.window_samples)
        if x.ndim != 1 + len(want) or x.shape[1:] != want:
            dims = ", ".join(map(str, want))
            raise ValueError(f"x must have shape [n, {dims}] (mV at {self.fs_hz:g} Hz), not {list(x.shape)}.")
        return x

    def logits(self, x: np.ndarray) -> np.ndarray:
        """Network outputs for already-preprocessed ``x [n, leads, samples]`` (eval mode, batched)."""
        return self._run(x, mc_samples=0)[0]

    def _run(
        self, xp: np.ndarray, mc_samples: int, seeds: Sequence[int] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        cuda = self.device.type == "cuda"
        probs_out, unc_out = [], []
        size = self.batch_size if seeds is None else self.replay_chunk  # seeded: fixed chunks, padded
        with torch.inference_mode():
            for start, stop in chunks(len(xp), size):
                part = np.ascontiguousarray(xp[start:stop])
                t = torch.from_numpy(part if seeds is None else pad_rows(part, size))
                if cuda:
                    t = t.pin_memory()
                t = t.to(self.device, non_blocking=cuda)
                amp = torch.autocast("cuda", dtype=torch.float16) if cuda else nullcontext()
                with amp:
                    if seeds is not None:
                        p = self._mc_seeded(t, mc_samples, pad_seeds(seeds[start:stop], size))[: stop - start]
                    elif mc_samples > 0 and self.mc_mode == "head":
                        p = self._mc_head(t, mc_samples)
                    elif mc_samples > 0:
                        for m in _dropouts(self.net):
                            m.train()
                        try:
                            p = torch.stack(
                                [torch.softmax(self.net(t).float(), dim=1) for _ in range(mc_samples)]
                            ).mean(0)
                        finally:
                            self.net.eval()
                    else:
                        p = torch.softmax(self.net(t).float(), dim=1)
                pn = p.cpu().numpy().astype(np.float64)
                probs_out.append(pn)
                unc_out.append(normalised_entropy(pn))
        if not probs_out:
            return np.zeros((0, len(CLASSES))), np.zeros(0)
        return np.concatenate(probs_out), np.concatenate(unc_out)

    def _mc_seeded(self, t: torch.Tensor, mc_samples: int, seeds: list[int]) -> torch.Tensor:
        """``_run``'s passes for one full chunk with each window's dropout masks from its seed (``models.mc_dropout``).

        Same schemes as unseeded (``head``: trunk once, head sampled; ``full``: every dropout sampled),
        the dropout modules stay in eval mode and a hook masks row by row; ``mc_samples`` 0 is one plain pass.
        ``head`` runs its passes as one batch (``_Head.sample``): the same masks as pass by pass.
        """
        net: Any = self.net
        if mc_samples <= 0:
            return torch.softmax(net(t).float(), dim=1)
        if self.mc_mode == "head":
            tokens = net.tokens(t)
            with seeded_dropout([net.head.drop], seeds):
                logits = net.head.sample(tokens, mc_samples)  # [mc_samples * n, classes], pass-major
            return torch.softmax(logits.float(), dim=1).reshape(mc_samples, t.shape[0], -1).mean(0)
        with seeded_dropout(net.modules(), seeds):
            passes = [torch.softmax(net(t).float(), dim=1) for _ in range(mc_samples)]
        return torch.stack(passes).mean(0)

    def _mc_head(self, t: torch.Tensor, mc_samples: int) -> torch.Tensor:
        """The trunk once in eval mode, then only the head's dropout sampled ``mc_samples`` times.

        ``ecgmon bench`` measured the full scheme at 68 % of a worker's time; this one costs about
        one forward pass. It samples less of the network, so its uncertainty is closer to the
        single-pass predictive entropy (what the alert thresholds were tuned on).
        """
        net: Any = self.net
        head = net.head
        tokens = net.tokens(t)
        head.drop.train()
        try:
            return torch.stack([torch.softmax(head(tokens).float(), dim=1) for _ in range(mc_samples)]).mean(0)
        finally:
            head.drop.eval()

    def predict(self, x: np.ndarray, *, mc_samples: int = 0, seeds: Sequence[int] | None = None) -> ClassifierOutput:
        """Raw windows in mV at ``fs_hz`` -> probabilities ``[n, 4]`` and uncertainty ``[n]``.

        ``mc_samples > 0`` averages that many passes with dropout on (MC dropout); uncertainty is the
        normalised entropy of the (mean) prediction, 0 = sure, 1 = uniform. With ``seeds`` (one per
        window) each window's dropout masks come from its own seed and it runs in fixed, padded chunks
        (``models.mc_dropout``), so its outputs are the same bits whatever batch it is in; without,
        masks come from torch's global generator.
        """
        if seeds is not None and len(seeds) != len(x):
            raise ValueError(f"seeds must have one entry per window: {len(seeds)} for {len(x)}.")
        if mc_samples < 0:
            raise ValueError(f"mc_samples must be >= 0, got {mc_samples}.")
        x = self._check(x)
        xp = preprocess_windows(x, self.fs_hz)
        if self.leads == 1:
            xp = xp[:, None, :]
        probs, unc = self._run(xp, mc_samples, seeds)
        probs = probs / probs.sum(axis=1, keepdims=True) if len(probs) else probs
        return ClassifierOutput(probs=probs, uncertainty=unc)
