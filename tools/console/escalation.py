"""Escalation: whom an alert goes to by its patient's notification criteria, and the webhook call.

A patient's criteria (set on the patient page by a physician or admin, stored as a ``criteria``
action) name the alert types and the least urgent tier that concern a recipient, and whether a
matching alert is escalated automatically when it opens. A technician's escalation goes to the
criteria's recipient when the alert matches them, else to ``ECGMON_CONSOLE_ESCALATE_DEFAULT_TO``.
The notification is one JSON ``POST`` to ``ECGMON_CONSOLE_WEBHOOK_URL`` (a paging gateway, a chat
bridge); its answer is recorded with the action (``delivered``), so a failed delivery is visible
on the alert page and in the shift report instead of lost.
"""

from __future__ import annotations

from typing import Any

from tools.console.state import AlertView, Criteria


def recipient_for(criteria: Criteria | None, view: AlertView, default: str) -> str:
    """Whom an escalation of ``view`` goes to."""
    if criteria is not None and criteria.notify and criteria.matches(view):
        return criteria.notify
    return default


def auto_escalates(criteria: Criteria | None, view: AlertView) -> bool:
    """True when ``view`` should be escalated without waiting for a technician."""
    return bool(criteria and criteria.auto and criteria.notify and criteria.matches(view) and view.is_open)


def payload(view: AlertView, *, recipient: str, user: str, note: str, console_url: str) -> dict[str, Any]:
    """The webhook's JSON body."""
    return {
        "event": "ecgmon.escalation",
        "to": recipient,
        "by": user,
        "note": note,
        "alert": view.summary(),
        "link": f"{console_url}/alerts/{view.alert_id}",
    }


async def send(url: str, body: dict[str, Any], timeout_s: float) -> tuple[bool, str]:
    """POST ``body`` to ``url``; (delivered, what happened). Never raises: a failure is recorded, not lost."""
    if not url:
        return False, "no webhook configured (ECGMON_CONSOLE_WEBHOOK_URL); recorded only"
    import aiohttp

    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s)) as http,
            http.post(url, json=body) as resp,
        ):
            await resp.read()
            return 200 <= resp.status < 300, f"HTTP {resp.status}"
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        return False, f"webhook unreachable: {type(exc).__name__} {exc}".strip()
