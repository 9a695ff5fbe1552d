"""A live terminal view of the monitoring centre (rich), read from InfluxDB like the dashboards.

``snapshot`` runs the fleet-overview queries of ``dashboards.definitions`` (substituted exactly as
Grafana would) plus each patient's latest truth, and returns plain data; ``render`` turns it into
a rich table. ``ecgmon demo`` refreshes it every ``ECGMON_LIVE_REFRESH_S`` seconds.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from dashboards import definitions as d
from dashboards.queries import substitute
from ecgmon.influx import InfluxClient

LATEST_TRUTH = 'SELECT "truth" FROM "prediction" WHERE $timeFilter GROUP BY "patient_id" ORDER BY time DESC LIMIT 1'
"""The simulator's ground truth of each patient's latest window (absent for real devices)."""

_LABEL_STYLE = {"N": "green", "A": "bold red", "O": "yellow", "~": "dim"}


@dataclass
class PatientRow:
    """One patient's latest window: rhythm, heart rate (bpm), trust, and open alert types."""

    patient_id: str
    label: str
    confidence: float | None
    uncertainty: float | None
    hr_bpm: float | None
    sqi: float | None
    seq: int | None
    last_seen_ms: int
    truth: str = ""
    open_alerts: list[str] = field(default_factory=list)


@dataclass
class Snapshot:
    """Everything the live view shows at one instant."""

    t_ms: int
    patients: list[PatientRow]
    windows: int
    windows_per_s: float | None
    open_alerts: int


def _query(client: InfluxClient, query: str, t_from_ms: int, t_to_ms: int) -> list[dict[str, Any]]:
    return client.query(substitute(query, t_from_ms=t_from_ms, t_to_ms=t_to_ms, interval_ms=1000))


def _first_value(series: list[dict[str, Any]]) -> Any:
    return series[0]["values"][0][1] if series and series[0].get("values") else None


def snapshot(
    client: InfluxClient, t_from_ms: int, t_to_ms: int | None = None, patients: set[str] | None = None
) -> Snapshot:
    """Latest state of every patient (or of ``patients``) with data in ``[t_from_ms, t_to_ms]``."""
    t_to = t_to_ms if t_to_ms is not None else int(time.time() * 1000) + 3_600_000  # simulators may run ahead
    rows: dict[str, PatientRow] = {}
    for s in _query(client, d.PATIENT_TABLE, t_from_ms, t_to):
        pid = s["tags"]["patient_id"]
        if patients is not None and pid not in patients:
            continue
        v = dict(zip(s["columns"], s["values"][0], strict=True))
        rows[pid] = PatientRow(
            pid, str(v.get("rhythm") or ""), v.get("confidence"), v.get("uncertainty"), v.get("hr_bpm"), v.get("sqi"),
            v.get("seq"), int(v["time"]),
        )  # fmt: skip
    for s in _query(client, LATEST_TRUTH, t_from_ms, t_to):
        row = rows.get(s["tags"]["patient_id"])
        if row is not None:
            row.truth = str(s["values"][0][1] or "")
    n_open = 0
    for s in _query(client, d.OPEN_ALERTS_TABLE, t_from_ms, t_to):
        row = rows.get(s["tags"]["patient_id"])
        if row is not None:
            row.open_alerts.append(s["tags"]["type"])
            n_open += 1
    windows = 0
    for s in _query(
        client, 'SELECT count("confidence") FROM "prediction" WHERE $timeFilter GROUP BY "patient_id"', t_from_ms, t_to
    ):
        if patients is None or s["tags"]["patient_id"] in patients:
            windows += int(s["values"][0][1])
    rate = _first_value(_query(client, d.THROUGHPUT_NOW, t_from_ms - 60_000, int(time.time() * 1000) + 60_000))
    return Snapshot(int(time.time() * 1000), sorted(rows.values(), key=lambda r: r.patient_id), windows, rate, n_open)


def _num(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def render(snap: Snapshot, title: str = "ecgmon demo", status: str = "") -> Group:
    """A rich renderable: header line, then one row per patient."""
    table = Table(expand=True, header_style="bold")
    for col, justify in (("patient", "left"), ("rhythm", "left"), ("truth", "left"), ("HR bpm", "right"),
                         ("confidence", "right"), ("uncertainty", "right"), ("SQI", "right"), ("window", "right"),
                         ("open alerts", "left")):  # fmt: skip
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for row in snap.patients:
        label_text, _ = d.CLASSES.get(row.label, (row.label, ""))
        table.add_row(
            row.patient_id,
            Text(label_text, style=_LABEL_STYLE.get(row.label, "")),
            row.truth or "-",
            _num(row.hr_bpm, ".0f"),
            _num(row.confidence, ".2f"),
            _num(row.uncertainty, ".3f"),
            _num(row.sqi, ".2f"),
            "-" if row.seq is None else str(row.seq),
            Text(", ".join(row.open_alerts) or "-", style="bold red" if row.open_alerts else "dim"),
        )
    rate = "-" if snap.windows_per_s is None else f"{snap.windows_per_s:.1f}"
    alert_style = "bold red" if snap.open_alerts else "green"
    header = Text.assemble(
        (f"{len(snap.patients)} patients", "bold"), "   ", (f"{snap.windows} windows classified", ""), "   ",
        (f"{rate} windows/s", ""), "   ", (f"{snap.open_alerts} alerts open", alert_style),
        ("   " + status if status else "", "dim"),
    )  # fmt: skip
    return Group(Panel(header, title=title), table)
