"""The reconstruction policy decides per window, deterministically."""

from __future__ import annotations

import pytest

from streams.reconstruction_policy import should_reconstruct


def test_every_and_never() -> None:
    assert should_reconstruct("every", seq=5, every_k=3, open_alert_types=[])
    assert not should_reconstruct("never", seq=0, every_k=1, open_alert_types=["af"])


def test_every_k_keys_on_the_sequence_number() -> None:
    picked = [seq for seq in range(12) if should_reconstruct("every_k", seq=seq, every_k=4, open_alert_types=[])]
    assert picked == [0, 4, 8]


def test_alert_open_means_a_rhythm_alert_is_open() -> None:
    assert should_reconstruct("alert_open", seq=1, every_k=1, open_alert_types={"af": "medium"})
    assert not should_reconstruct("alert_open", seq=1, every_k=1, open_alert_types={})
    assert not should_reconstruct("alert_open", seq=1, every_k=1, open_alert_types=["technical"])


def test_unknown_policy_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown"):
        should_reconstruct("sometimes", seq=1, every_k=1, open_alert_types=[])  # type: ignore[arg-type]


def test_live_waveform_follows_open_alerts_or_the_setting() -> None:
    from streams.reconstruction_policy import live_waveform

    assert live_waveform("alert_open", open_alert_types={"af": "medium"})
    assert live_waveform("alert_open", open_alert_types=["technical"])  # the technician watches the signal return
    assert not live_waveform("alert_open", open_alert_types={})
    assert live_waveform("always", open_alert_types=[]) and not live_waveform("never", open_alert_types=["af"])
    with pytest.raises(ValueError, match="alert_open, always, never"):
        live_waveform("sometimes", open_alert_types=[])  # type: ignore[arg-type]
