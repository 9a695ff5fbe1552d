"""What the stream sees of a model: two small protocols and the metadata they carry.

``streams/`` imports only this module and ``models.registry``; training and evaluation code
stay out of the worker.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

CLASSES: tuple[str, ...] = ("N", "A", "O", "~")
"""CinC 2017 rhythm classes: normal sinus, atrial fibrillation/flutter, other rhythm, too noisy."""

OUTPUT_LEADS: tuple[str, ...] = ("II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")
"""The eleven leads a reconstructor returns, in this order."""


@dataclass(frozen=True)
class ClassifierOutput:
    """Batched classifier result: ``probs [n, 4]`` over ``CLASSES``, ``uncertainty [n]`` (0 = sure)."""

    probs: np.ndarray
    uncertainty: np.ndarray


@dataclass(frozen=True)
class PatientMeta:
    """Clinical metadata for a batch: ``age_years [n]`` and ``sex [n]`` (0 male, 1 female); NaN = unknown."""

    age_years: np.ndarray
    sex: np.ndarray

    @classmethod
    def unknown(cls, n: int) -> PatientMeta:
        """Metadata for ``n`` patients of whom nothing is known."""
        return cls(np.full(n, np.nan), np.full(n, np.nan))


@runtime_checkable
class Classifier(Protocol):
    """A rhythm classifier over single-lead windows at ``fs_hz``, ``window_samples`` long."""

    name: str
    version: str
    fs_hz: float
    window_samples: int

    def predict(self, x: np.ndarray, *, mc_samples: int = 0, seeds: Sequence[int] | None = None) -> ClassifierOutput:
        """``x [n, window_samples]`` lead I in mV at ``fs_hz`` -> probabilities and uncertainty.

        ``seeds`` (one per window) makes the MC passes replayable: a window's outputs then depend only
        on the window and its seed, not on the rest of the batch.
        """
        ...


@runtime_checkable
class Reconstructor(Protocol):
    """Lead I (+ metadata) to the other eleven leads with a per-sample standard deviation."""

    name: str
    version: str
    fs_hz: float
    window_samples: int
    units: str

    def reconstruct(
        self, lead_i: np.ndarray, meta: PatientMeta, samples: int = 8, seeds: Sequence[int] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """``lead_i [n, window_samples]`` in mV at ``fs_hz`` -> ``(mean, std)``, each ``[n, 11, window_samples]``.

        ``seeds``: as for ``Classifier.predict``.
        """
        ...
