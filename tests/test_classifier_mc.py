"""Head-only MC dropout: the trunk runs once per batch, the head is sampled, outputs stay valid."""

from __future__ import annotations

import numpy as np
import pytest

from models import registry


@pytest.mark.parametrize(("mode", "trunk_calls"), [("head", 1), ("full", 8)])
def test_mc_modes_run_the_trunk_once_or_every_pass(mode: str, trunk_calls: int) -> None:
    clf = registry.load("student", weights=False, mc_mode=mode)
    calls = []
    clf.net.backbone.register_forward_hook(lambda *_: calls.append(1))
    x = np.random.default_rng(0).normal(0, 0.3, (5, clf.window_samples)).astype(np.float32)
    out = clf.predict(x, mc_samples=8)
    assert len(calls) == trunk_calls
    assert out.probs.shape == (5, 4)
    np.testing.assert_allclose(out.probs.sum(axis=1), 1.0, atol=1e-6)
    assert np.all((out.uncertainty >= 0) & (out.uncertainty <= 1))
    assert not clf.net.training and not clf.net.head.drop.training  # dropout off again afterwards


def test_head_mode_samples_the_head() -> None:
    clf = registry.load("student", mc_mode="head")
    x = np.random.default_rng(1).normal(0, 0.3, (8, clf.window_samples)).astype(np.float32)
    single = clf.predict(x).probs
    sampled = clf.predict(x, mc_samples=16).probs
    assert not np.allclose(single, sampled)  # the head's dropout did vary the passes
    assert np.abs(single - sampled).max() < 0.2  # ...around the same prediction


def test_unknown_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="mc_mode"):
        registry.load("student", weights=False, mc_mode="tail")
