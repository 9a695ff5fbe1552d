"""When to reconstruct the twelve leads of a window (``Settings.reconstruction_policy``).

Reconstruction with MC dropout costs several times the classification, and a 12-lead view is
needed when a clinician looks at a patient with a problem, so the default reconstructs only while
a rhythm alert is open. ``every_k`` keys on the window's sequence number, so a replayed window gets
the same decision as the first time. The decision is taken when a window arrives, from the alert
state of the windows already completed: windows already in flight when an alert opens (at most
about one batch) are not reconstructed.

``live_waveform`` decides the same way, from the same open alerts, whether a window also gets the
per-sample display points Grafana's patient view draws (``Settings.live_waveform``); every window
is stored packed (``ecg_strip``) whatever it decides. Unlike reconstruction, any open alert counts,
a technical one too: a technician watching a lead-off alert wants to see the signal come back.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import get_args

from ecgmon.settings import LiveWaveform, ReconstructionPolicy

Policy = ReconstructionPolicy
POLICIES: tuple[Policy, ...] = get_args(ReconstructionPolicy)
LIVE_MODES: tuple[LiveWaveform, ...] = get_args(LiveWaveform)
NON_RHYTHM_ALERTS = frozenset({"technical"})
"""Alert types that do not call for a 12-lead view (a lead-off signal reconstructs to noise)."""


def should_reconstruct(policy: Policy, *, seq: int, every_k: int, open_alert_types: Iterable[str]) -> bool:
    """Whether the window numbered ``seq`` of a patient with ``open_alert_types`` is reconstructed."""
    if policy == "every":
        return True
    if policy == "never":
        return False
    if policy == "every_k":
        if every_k < 1:
            raise ValueError(f"every_k must be >= 1, got {every_k}.")
        return seq % every_k == 0
    if policy == "alert_open":
        return any(t not in NON_RHYTHM_ALERTS for t in open_alert_types)
    raise ValueError(f"reconstruction policy {policy!r} is unknown; use one of {', '.join(POLICIES)}.")


def live_waveform(mode: LiveWaveform, *, open_alert_types: Iterable[str]) -> bool:
    """Whether a window of a patient with ``open_alert_types`` also gets live per-sample waveform points."""
    if mode == "always":
        return True
    if mode == "never":
        return False
    if mode == "alert_open":
        return any(True for _ in open_alert_types)
    raise ValueError(f"live waveform mode {mode!r} is unknown; use one of {', '.join(LIVE_MODES)}.")
