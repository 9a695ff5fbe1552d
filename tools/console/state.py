"""The console's state: every alert episode and every action, folded from the two topics.

Plain data and pure functions, no I/O, so the queue's order, what counts as handled and what a
replay after a restart gives are unit-tested without a broker. ``ConsoleState`` is rebuilt on
every start by reading ``ecg.alerts`` and ``ecg.actions`` from the beginning (``tools.console.bus``):
applying an alert event or an action twice changes nothing (alert events are folded by
``alert_id`` and ``seq``, actions by ``action_id``), so the order the two topics interleave in
does not matter either.

Tiers, in the order the queue shows them (then oldest first):

==========  =====================================================
tier        alerts
==========  =====================================================
emergency   a rhythm alert of severity ``critical``
urgent      ``high``
routine     ``medium`` and ``low`` rhythm alerts
technical   ``technical`` (poor signal, lead off)
==========  =====================================================
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ecgmon.contracts import Alert, AlertAction

TIERS: tuple[str, ...] = ("emergency", "urgent", "routine", "technical")
"""Priority tiers, most urgent first."""
TIER_RANK = {tier: rank for rank, tier in enumerate(TIERS)}
CLOSING_KINDS = frozenset({"acknowledge", "confirm", "reject"})
"""Actions that take an alert off the queue (it has been seen and judged)."""
ALERT_ACTIONS: tuple[str, ...] = ("acknowledge", "confirm", "reject", "annotate", "escalate")
"""Actions on one alert (``criteria`` is an action on a patient)."""


def tier_of(alert_type: str, severity: str) -> str:
    """The queue tier of an alert of ``alert_type`` at ``severity`` (see the module's table)."""
    if alert_type == "technical":
        return "technical"
    if severity == "critical":
        return "emergency"
    if severity == "high":
        return "urgent"
    return "routine"


@dataclass
class AlertView:
    """One alert episode as the console shows it: the engine's events plus the users' actions."""

    alert_id: str
    patient_id: str
    type: str
    severity: str
    confidence: float
    message: str
    opened_ns: int
    opened_seq: int
    last_seq: int
    resolved_ns: int | None = None
    seen_ns: int = 0
    """Wall time the console first read the opening event (for the queue's latency figure)."""
    produced_ms: int = 0
    """Kafka timestamp of the opening event (the worker's clock when it sent it)."""
    actions: list[AlertAction] = field(default_factory=list)

    @property
    def tier(self) -> str:
        """Queue tier from type and (highest) severity."""
        return tier_of(self.type, self.severity)

    @property
    def is_open(self) -> bool:
        """True until the alert engine resolves the episode."""
        return self.resolved_ns is None

    @property
    def acknowledged(self) -> bool:
        """True once a user acknowledged, confirmed or rejected it."""
        return any(a.kind in CLOSING_KINDS for a in self.actions)

    @property
    def disposition(self) -> str:
        """``confirmed``, ``rejected``, ``acknowledged`` or ``new``: the latest closing action decides."""
        closing = [a for a in self.actions if a.kind in CLOSING_KINDS]
        if not closing:
            return "new"
        return {"acknowledge": "acknowledged", "confirm": "confirmed", "reject": "rejected"}[closing[-1].kind]

    @property
    def escalated(self) -> bool:
        """True once it was escalated."""
        return any(a.kind == "escalate" for a in self.actions)

    def summary(self) -> dict[str, Any]:
        """The JSON the API lists (``GET /api/alerts``)."""
        return {
            "alert_id": self.alert_id,
            "patient_id": self.patient_id,
            "type": self.type,
            "tier": self.tier,
            "severity": self.severity,
            "opened_at": _iso(self.opened_ns),
            "opened_ns": self.opened_ns,
            "open": self.is_open,
            "resolved_at": _iso(self.resolved_ns) if self.resolved_ns is not None else None,
            "acknowledged": self.acknowledged,
            "disposition": self.disposition,
            "escalated": self.escalated,
            "message": self.message,
            "confidence": self.confidence,
            "produced_ms": self.produced_ms,
            "seen_ms": self.seen_ns // 1_000_000,
        }


def _iso(t_ns: int) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(t_ns / 1e9, tz=dt.UTC).isoformat(timespec="milliseconds")


def queue_key(view: AlertView) -> tuple[int, int, str]:
    """Sort key of the queue: tier, then oldest first, then id (stable)."""
    return (TIER_RANK[view.tier], view.opened_ns, view.alert_id)


@dataclass(frozen=True)
class Criteria:
    """A patient's notification criteria: which alert types at which tier or above go to whom.

    ``types`` empty means every type. ``auto`` escalates a matching alert as soon as it opens,
    without waiting for a technician.
    """

    notify: str
    types: tuple[str, ...] = ()
    min_tier: str = "routine"
    auto: bool = False

    def matches(self, view: AlertView) -> bool:
        """True when ``view`` is of a listed type and at ``min_tier`` or more urgent."""
        type_ok = not self.types or view.type in self.types
        return type_ok and TIER_RANK[view.tier] <= TIER_RANK.get(self.min_tier, len(TIERS))

    def to_detail(self) -> dict[str, Any]:
        """As stored in a ``criteria`` action's ``detail``."""
        return {"notify": self.notify, "types": list(self.types), "min_tier": self.min_tier, "auto": self.auto}

    @classmethod
    def from_detail(cls, detail: dict[str, Any]) -> Criteria:
        """Read what ``to_detail`` wrote."""
        return cls(
            notify=str(detail.get("notify", "")),
            types=tuple(str(t) for t in detail.get("types", [])),
            min_tier=str(detail.get("min_tier", "routine")),
            auto=bool(detail.get("auto", False)),
        )


class ConsoleState:
    """Alerts by id, actions by id and criteria by patient; ``version`` grows with every change."""

    def __init__(self) -> None:
        self.alerts: dict[str, AlertView] = {}
        self.actions: dict[str, AlertAction] = {}
        self.criteria: dict[str, Criteria] = {}
        self._pending: dict[str, list[AlertAction]] = {}  # actions read before their alert
        self.version = 0
        self._changed = asyncio.Event() if _has_loop() else None

    # --- folding -------------------------------------------------------------------------------
    def apply_alert(self, alert: Alert, *, seen_ns: int = 0, produced_ms: int = 0) -> bool:
        """Fold one alert event; returns True when it changed something."""
        view = self.alerts.get(alert.alert_id)
        if view is None:
            if alert.state == "resolved" and not alert.alert_id:
                return False
            view = AlertView(
                alert_id=alert.alert_id,
                patient_id=alert.patient_id,
                type=alert.type,
                severity=alert.severity,
                confidence=alert.confidence,
                message=alert.message,
                opened_ns=alert.t_ns,
                opened_seq=alert.seq,
                last_seq=alert.seq,
                seen_ns=seen_ns,
                produced_ms=produced_ms,
                actions=self._pending.pop(alert.alert_id, []),
            )
            if alert.state == "resolved":
                view.resolved_ns = alert.t_ns
            self.alerts[alert.alert_id] = view
            self._bump()
            return True
        if alert.seq < view.last_seq or (alert.seq == view.last_seq and alert.state != "resolved"):
            return False  # a replayed or older event
        if alert.state == "resolved":
            if view.resolved_ns is not None:
                return False
            view.resolved_ns = alert.t_ns
        else:
            view.severity = alert.severity
            view.confidence = alert.confidence
            view.message = alert.message
        view.last_seq = alert.seq
        self._bump()
        return True

    def apply_action(self, action: AlertAction) -> bool:
        """Fold one action; returns True when it was new."""
        if action.action_id in self.actions:
            return False
        self.actions[action.action_id] = action
        if action.kind == "criteria":
            self.criteria[action.patient_id] = Criteria.from_detail(action.detail)
        elif action.alert_id:
            view = self.alerts.get(action.alert_id)
            target = view.actions if view is not None else self._pending.setdefault(action.alert_id, [])
            target.append(action)
            target.sort(key=lambda a: (a.t_ns, a.action_id))
        self._bump()
        return True

    def _bump(self) -> None:
        self.version += 1
        if self._changed is not None:
            self._changed.set()

    async def wait_changed(self, since: int, timeout_s: float) -> int:
        """Wait until ``version`` exceeds ``since`` (or ``timeout_s`` passes); returns the version."""
        if self._changed is None:
            self._changed = asyncio.Event()
        while self.version <= since:
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), timeout_s)
            except TimeoutError:
                break
        return self.version

    # --- views ---------------------------------------------------------------------------------
    def queue(self) -> list[AlertView]:
        """Alerts no one has acknowledged, confirmed or rejected yet (open or latched after resolving)."""
        return sorted((v for v in self.alerts.values() if not v.acknowledged), key=queue_key)

    def listed(self, state: str) -> list[AlertView]:
        """``open`` (not resolved by the engine), ``unacknowledged`` (the queue) or ``all``, in queue order."""
        if state == "unacknowledged":
            return self.queue()
        views: Iterable[AlertView] = self.alerts.values()
        if state == "open":
            views = (v for v in views if v.is_open)
        return sorted(views, key=queue_key)

    def acknowledged_open(self) -> list[AlertView]:
        """Alerts handled by a user but still open in the engine."""
        return sorted((v for v in self.alerts.values() if v.acknowledged and v.is_open), key=queue_key)

    def for_patient(self, patient_id: str) -> list[AlertView]:
        """A patient's alerts, newest first."""
        return sorted((v for v in self.alerts.values() if v.patient_id == patient_id), key=lambda v: -v.opened_ns)

    def patient_actions(self, patient_id: str) -> list[AlertAction]:
        """A patient's actions, newest first."""
        return sorted((a for a in self.actions.values() if a.patient_id == patient_id), key=lambda a: -a.t_ns)

    def actions_between(self, t0_ns: int, t1_ns: int) -> list[AlertAction]:
        """Actions taken in ``[t0_ns, t1_ns]``, oldest first."""
        return sorted((a for a in self.actions.values() if t0_ns <= a.t_ns <= t1_ns), key=lambda a: a.t_ns)

    def alerts_between(self, t0_ns: int, t1_ns: int) -> list[AlertView]:
        """Alerts opened in ``[t0_ns, t1_ns]`` (alert time) or first read by the console then, oldest first."""
        return sorted(
            (v for v in self.alerts.values() if t0_ns <= v.opened_ns <= t1_ns or t0_ns <= v.seen_ns <= t1_ns),
            key=lambda v: v.opened_ns,
        )

    def patients(self) -> list[str]:
        """Every patient with an alert or an action, sorted."""
        return sorted({v.patient_id for v in self.alerts.values()} | {a.patient_id for a in self.actions.values()})


def _has_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True
