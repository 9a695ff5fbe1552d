"""Run every provisioned query against a real InfluxDB, as Grafana would send it.

Variables take real values: ``$patient`` the first value of the dashboard's own variable query
(or the one given), a repeated panel runs once per value of its repeat variable. ``$timeFilter``
and ``$__interval`` are substituted for the range ``[t_from_ms, t_to_ms]`` (see
``dashboards.queries``). Alert-rule queries use the same range.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dashboards.generate import PROVISIONING_DIR, load_alert_rules, load_dashboards
from dashboards.queries import (
    PanelQuery,
    alert_queries,
    dashboard_queries,
    grafana_interval_ms,
    substitute,
    unresolved_variables,
)
from ecgmon.errors import EcgmonError
from ecgmon.influx import InfluxClient


@dataclass(frozen=True)
class QueryResult:
    """One query as sent, with the rows it returned or the error InfluxDB gave."""

    panel: PanelQuery
    sent: str
    rows: int
    series: list[dict[str, Any]]
    error: str = ""
    variant: str = ""  # the repeat variable's value, if any

    @property
    def label(self) -> str:
        """``dashboard / panel [variant] refId`` for tables and failure messages."""
        variant = f" [{self.variant}]" if self.variant else ""
        return f"{self.panel.source} / {self.panel.title}{variant} {self.panel.ref_id}"


def _rows(series: list[dict[str, Any]]) -> int:
    return sum(len(s.get("values", [])) for s in series)


def _variable_values(
    client: InfluxClient, model: Mapping[str, Any], t_from_ms: int, t_to_ms: int
) -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    for var in model.get("templating", {}).get("list", []):
        if var["type"] == "custom":
            values[var["name"]] = [v.strip() for v in var["query"].split(",") if v.strip()]
        elif var["type"] == "query":
            series = client.query(substitute(var["query"], t_from_ms=t_from_ms, t_to_ms=t_to_ms, interval_ms=1000))
            values[var["name"]] = sorted({str(row[1]) for s in series for row in s.get("values", [])})
    return values


def _run(client: InfluxClient, pq: PanelQuery, sent: str, variant: str = "") -> QueryResult:
    left = unresolved_variables(sent)
    if left:
        return QueryResult(pq, sent, 0, [], error=f"unresolved variables {left}", variant=variant)
    try:
        series = client.query(sent)
    except EcgmonError as exc:
        return QueryResult(pq, sent, 0, [], error=str(exc), variant=variant)
    return QueryResult(pq, sent, _rows(series), series, variant=variant)


def run_all(
    client: InfluxClient,
    t_from_ms: int,
    t_to_ms: int,
    *,
    patient: str | None = None,
    provisioning_dir: Path = PROVISIONING_DIR,
) -> list[QueryResult]:
    """Every dashboard panel, annotation, variable and alert-rule query, run once (or per repeat value)."""
    results: list[QueryResult] = []
    range_ms = max(1, t_to_ms - t_from_ms)
    for stem, model in load_dashboards(provisioning_dir).items():
        values = _variable_values(client, model, t_from_ms, t_to_ms)
        chosen = {name: (vals[0] if vals else "") for name, vals in values.items()}
        if patient is not None and "patient" in chosen:
            chosen["patient"] = patient
        for pq in dashboard_queries(stem, model):
            interval = grafana_interval_ms(range_ms, pq.max_data_points, pq.min_interval)
            variants = values.get(pq.repeat, [""]) if pq.repeat else [""]
            for variant in variants:
                variables = {**chosen, **({pq.repeat: variant} if pq.repeat else {})}
                sent = substitute(
                    pq.query, t_from_ms=t_from_ms, t_to_ms=t_to_ms, interval_ms=interval, variables=variables
                )
                results.append(_run(client, pq, sent, variant))
    for pq in alert_queries(load_alert_rules(provisioning_dir)):
        sent = substitute(pq.query, t_from_ms=t_from_ms, t_to_ms=t_to_ms, interval_ms=1000)
        results.append(_run(client, pq, sent))
    return results
