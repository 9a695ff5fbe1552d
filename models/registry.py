"""Models by name: builders register themselves here; the stream and the CLI load by name."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from ecgmon.errors import ModelError

_BUILDERS: dict[str, Callable[..., Any]] = {}
_FAMILIES = ("models.classifier", "models.reconstructor")


def register(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator for a keyword-only builder ``build(*, device="cpu", weights=True, **kw) -> model``."""

    def wrap(builder: Callable[..., Any]) -> Callable[..., Any]:
        if name in _BUILDERS and _BUILDERS[name] is not builder:
            raise ModelError(f"Model name {name!r} is registered twice; rename one of the builders.")
        _BUILDERS[name] = builder
        return builder

    return wrap


def _import_families() -> None:
    for module in _FAMILIES:
        importlib.import_module(module)


def list_models() -> list[str]:
    """Every registered model name, sorted."""
    _import_families()
    return sorted(_BUILDERS)


def load(name: str, **kwargs: Any) -> Any:
    """Build the model registered as ``name`` with its committed weights."""
    _import_families()
    try:
        builder = _BUILDERS[name]
    except KeyError:
        known = ", ".join(sorted(_BUILDERS)) or "none"
        raise ModelError(f"Unknown model {name!r}; registered models are: {known}.") from None
    return builder(**kwargs)


def resolve_device(device: str) -> str:
    """``auto`` (``Settings.device``) becomes ``cuda`` when torch sees a GPU, else ``cpu``; others pass."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
