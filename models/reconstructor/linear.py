"""Baseline: one linear FIR filter per output lead from lead I, fitted by least squares on training data.

Centred taps (non-causal, ``taps`` samples) over the standardised lead I; the std it returns is the
per-lead residual RMS on the training data, constant over time (it has no dropout to sample).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from models.interfaces import OUTPUT_LEADS, PatientMeta
from models.reconstructor.common import (
    DEFAULT_FS_HZ,
    DEFAULT_WINDOW_SAMPLES,
    UNITS,
    VERSION,
    WEIGHTS_DIR,
    load_weights,
    standardise,
)
from models.registry import register

DEFAULT_TAPS = 61
RIDGE = 1e-3


def _lagged(x: np.ndarray, taps: int) -> np.ndarray:
    """``x [n, L]`` -> ``[n, L, taps]`` of centred, zero-padded lags."""
    half = taps // 2
    xp = np.pad(x, ((0, 0), (half, taps - 1 - half)))
    return np.lib.stride_tricks.sliding_window_view(xp, taps, axis=1)


def fit_fir(x: np.ndarray, taps: int = DEFAULT_TAPS, chunk_records: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """``x [n, 12, L]`` z units -> ``(coef [11, taps + 1], resid_std [11])`` by ridge least squares.

    The normal equations are summed over ``chunk_records`` records at a time, so memory stays flat
    however many records there are (the full PTB-XL pool would need ~10 GB as one design matrix).
    """
    n_out = len(OUTPUT_LEADS)
    gram = RIDGE * np.eye(taps + 1)
    cross = np.zeros((taps + 1, n_out))
    for design, y in _chunks(x, taps, chunk_records):
        gram += design.T @ design
        cross += design.T @ y
    coef = np.linalg.solve(gram, cross).T
    total, s1, s2 = 0, np.zeros(n_out), np.zeros(n_out)
    for design, y in _chunks(x, taps, chunk_records):
        resid = y - design @ coef.T
        total += resid.shape[0]
        s1 += resid.sum(axis=0)
        s2 += (resid**2).sum(axis=0)
    resid_std = np.sqrt(np.maximum(s2 / total - (s1 / total) ** 2, 0.0))
    return coef.astype(np.float32), resid_std.astype(np.float32)


def _chunks(x: np.ndarray, taps: int, chunk_records: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``(design [m, taps + 1], targets [m, 11])`` float64 for ``chunk_records`` records at a time."""
    for i in range(0, x.shape[0], chunk_records):
        part = np.asarray(x[i : i + chunk_records], dtype=np.float64)
        lag = _lagged(part[:, 0], taps).reshape(-1, taps)
        design = np.concatenate([lag, np.ones((lag.shape[0], 1))], axis=1)
        y = part[:, 1:].transpose(0, 2, 1).reshape(-1, len(OUTPUT_LEADS))
        yield design, y


@dataclass
class LinearReconstructor:
    """Per-lead FIR from lead I; satisfies ``models.interfaces.Reconstructor``."""

    coef: np.ndarray
    resid_std: np.ndarray
    name: str = "linear"
    version: str = VERSION
    fs_hz: float = DEFAULT_FS_HZ
    window_samples: int = DEFAULT_WINDOW_SAMPLES
    units: str = UNITS
    config: dict[str, Any] = field(default_factory=dict)

    def reconstruct(
        self, lead_i: np.ndarray, meta: PatientMeta, samples: int = 8, seeds: Sequence[int] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """``lead_i [n, window_samples]`` mV -> ``(mean, std)`` ``[n, 11, window_samples]``; ``meta`` unused.

        The std is the training residual RMS per lead when ``samples > 1``, zeros otherwise (as for the nets).
        ``seeds`` is accepted like the nets' and unused: nothing here is random.
        """
        taps = self.coef.shape[1] - 1
        lag = _lagged(standardise(lead_i), taps)
        mean = np.einsum("nlt,kt->nkl", lag, self.coef[:, :taps]) + self.coef[:, taps][None, :, None]
        scale = self.resid_std if samples > 1 else np.zeros_like(self.resid_std)
        std = np.broadcast_to(scale[None, :, None], mean.shape).copy()
        return mean.astype(np.float32), std.astype(np.float32)


@register("linear")
def build(
    *, device: str = "cpu", weights: bool | Path = True, mc_mode: str = "full", replay_chunk: int = 1
) -> LinearReconstructor:
    """The linear baseline; ``weights=False`` gives an identity-like filter for shape tests.

    ``mc_mode`` and ``replay_chunk`` are accepted so every reconstructor builds from the same settings;
    a linear filter has no dropout to sample and no batch-dependent kernels.
    """
    del device, mc_mode, replay_chunk  # numpy only, deterministic
    if weights is False:
        coef = np.zeros((len(OUTPUT_LEADS), DEFAULT_TAPS + 1), dtype=np.float32)
        coef[:, DEFAULT_TAPS // 2] = 1.0
        return LinearReconstructor(coef, np.ones(len(OUTPUT_LEADS), dtype=np.float32))
    path = WEIGHTS_DIR / "reconstructor_linear.pt" if weights is True else Path(weights)
    config, state = load_weights(path)
    return LinearReconstructor(
        state["coef"].numpy(),
        state["resid_std"].numpy(),
        version=str(config["version"]),
        fs_hz=float(config["fs_hz"]),
        window_samples=int(config["window_samples"]),
        config=config,
    )
