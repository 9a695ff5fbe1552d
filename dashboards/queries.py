"""Every InfluxQL query in the provisioned files, and Grafana's macro substitution, for checks and tests.

Grafana 11 runs InfluxQL in its backend, which replaces ``$timeFilter`` with
``time >= <from>ms and time <= <to>ms`` and ``$__interval`` with the panel's interval (range /
max data points, rounded to a "nice" step, never below the panel's minimum interval), and
dashboard variables with their current value. ``substitute`` does the same so a check can send
exactly what Grafana would send.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

DEFAULT_MAX_DATA_POINTS = 1000
"""Grafana's default when a panel sets none and the browser width is unknown."""

_NICE_MS = (
    1, 2, 5, 10, 20, 50, 100, 200, 500,
    1_000, 2_000, 5_000, 10_000, 15_000, 20_000, 30_000,
    60_000, 120_000, 300_000, 600_000, 900_000, 1_200_000, 1_800_000,
    3_600_000, 7_200_000, 10_800_000, 21_600_000, 43_200_000, 86_400_000,
)  # fmt: skip
_UNIT_MS = {"ms": 1, "s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


@dataclass(frozen=True)
class PanelQuery:
    """One query as provisioned: where it lives and its raw InfluxQL text."""

    source: str  # dashboard stem, or "alerting"
    title: str  # panel, annotation, variable or rule title
    ref_id: str
    query: str
    min_interval: str = ""
    max_data_points: int = DEFAULT_MAX_DATA_POINTS
    repeat: str = ""  # variable the panel repeats over, if any


def parse_duration_ms(text: str) -> int:
    """``"20ms"``, ``"5s"``, ``"1m"`` -> milliseconds; raises ``ValueError`` naming the text."""
    match = re.fullmatch(r"(\d+)(ms|s|m|h|d)", text.strip())
    if not match:
        raise ValueError(f"duration {text!r} is not like 20ms, 5s, 1m, 2h or 1d")
    return int(match.group(1)) * _UNIT_MS[match.group(2)]


def format_duration(ms: int) -> str:
    """Milliseconds -> the largest whole InfluxQL unit (``"15s"``, ``"200ms"``)."""
    for unit in ("d", "h", "m", "s"):
        if ms % _UNIT_MS[unit] == 0:
            return f"{ms // _UNIT_MS[unit]}{unit}"
    return f"{ms}ms"


def grafana_interval_ms(range_ms: int, max_data_points: int = DEFAULT_MAX_DATA_POINTS, min_interval: str = "") -> int:
    """The ``$__interval`` Grafana picks: range / points rounded up to a nice step, floored at the minimum."""
    raw = max(1, range_ms // max(1, max_data_points))
    nice = next((step for step in _NICE_MS if step >= raw), _NICE_MS[-1])
    floor = parse_duration_ms(min_interval) if min_interval else 1
    return max(nice, floor)


def substitute(
    query: str,
    *,
    t_from_ms: int,
    t_to_ms: int,
    interval_ms: int,
    variables: Mapping[str, str] | None = None,
) -> str:
    """Replace ``$timeFilter``, ``$__interval`` and ``$<variable>`` as Grafana's backend does."""
    out = query.replace("$timeFilter", f"time >= {int(t_from_ms)}ms and time <= {int(t_to_ms)}ms")
    out = out.replace("$__interval_ms", str(int(interval_ms))).replace("$__interval", format_duration(interval_ms))
    for name, value in sorted((variables or {}).items(), key=lambda kv: -len(kv[0])):
        out = re.sub(rf"\$\{{{re.escape(name)}\}}|\${re.escape(name)}\b", value.replace("\\", "\\\\"), out)
    return out


def unresolved_variables(query: str) -> list[str]:
    """``$names`` left in a substituted query (Grafana would send them literally and InfluxDB would fail)."""
    return re.findall(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)", query)


def dashboard_queries(stem: str, model: Mapping[str, Any]) -> Iterator[PanelQuery]:
    """Every panel target, annotation and query variable of one dashboard model."""
    for panel in model.get("panels", []):
        for target in panel.get("targets", []):
            yield PanelQuery(
                stem,
                panel["title"],
                target["refId"],
                target["query"],
                min_interval=panel.get("interval", ""),
                max_data_points=panel.get("maxDataPoints", DEFAULT_MAX_DATA_POINTS),
                repeat=panel.get("repeat", ""),
            )
    for anno in model.get("annotations", {}).get("list", []):
        target = anno.get("target") or {}
        if "query" in target:
            yield PanelQuery(stem, f"annotation: {anno['name']}", target.get("refId", "Anno"), target["query"])
    for var in model.get("templating", {}).get("list", []):
        if var.get("type") == "query":
            yield PanelQuery(stem, f"variable: {var['name']}", var["name"], var["query"])


def alert_queries(rules: Mapping[str, Any]) -> Iterator[PanelQuery]:
    """The datasource queries of every provisioned alert rule (expressions are Grafana-side)."""
    for group in rules.get("groups", []):
        for rule in group.get("rules", []):
            for item in rule.get("data", []):
                model = item.get("model", {})
                if "query" in model:
                    yield PanelQuery("alerting", rule["title"], item["refId"], model["query"])
