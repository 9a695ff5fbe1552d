"""When to reconstruct the twelve leads of a window (``Settings.reconstruction_policy``).

Reconstruction with MC dropout costs several times the classification, and a 12-lead view is
needed when a clinician looks at a patient with a problem, so the default reconstructs only while
a rhythm alert is open. ``every_k`` keys on the window's sequence number, so a replayed window gets
the same decision as the first time. The decision is taken when a window arrives, from the alert
state of the windows already completed: windows already in flight when an alert opens (at most
about one batch) are not reconstructed.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import get_args

from ecgmon.settings import ReconstructionPolicy

Policy = ReconstructionPolicy
POLICIES: tuple[Policy, ...] = get_args(ReconstructionPolicy)
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
