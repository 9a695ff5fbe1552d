"""Small builders for Grafana 11.6 dashboard JSON: datasource refs, InfluxQL targets, panels, layout.

Plain dicts in, plain dicts out, so the generated JSON is exactly what Grafana provisions. The
constants pin what the files target: the Grafana version in ``docker-compose.yml`` and the
dashboard schema version that version writes (41 for Grafana 11.6, as in Grafana's own
foundation SDK for 11.6), so Grafana does not migrate the files on load.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

GRAFANA_VERSION = "11.6.0"
"""The Grafana release the files are written for; ``docker-compose.yml`` pins the same image tag."""

SCHEMA_VERSION = 41
"""Dashboard schema version of Grafana 11.6."""

DATASOURCE_UID = "ecgmon-influxdb"
DATASOURCE_NAME = "ecgmon InfluxDB"
DATASOURCE: dict[str, str] = {"type": "influxdb", "uid": DATASOURCE_UID}
EXPR_DATASOURCE_UID = "__expr__"
FOLDER_TITLE = "ecgmon"
FOLDER_UID = "ecgmon"

PANEL_TYPES = frozenset(
    {
        "timeseries",
        "stat",
        "table",
        "state-timeline",
        "status-history",
        "bargauge",
        "gauge",
        "barchart",
        "text",
        "row",
    }
)
"""Core panel plugins of Grafana 11.6 that the dashboards may use (no external plugins needed)."""

GRID_COLUMNS = 24

Format = Literal["time_series", "table"]


@dataclass(frozen=True)
class Target:
    """One raw InfluxQL query of a panel; ``alias`` names series (``$tag_<key>`` allowed)."""

    ref_id: str
    query: str
    result_format: Format = "time_series"
    alias: str = ""

    def to_json(self) -> dict[str, Any]:
        """The target as Grafana stores it: raw mode, so the text is sent as written."""
        out: dict[str, Any] = {
            "datasource": dict(DATASOURCE),
            "refId": self.ref_id,
            "query": self.query,
            "rawQuery": True,
            "resultFormat": self.result_format,
        }
        if self.alias:
            out["alias"] = self.alias
        return out


@dataclass
class Panel:
    """A panel before layout: type, title, size in grid units, queries and options."""

    type: str
    title: str
    targets: list[Target]
    w: int = 12
    h: int = 8
    description: str = ""
    unit: str = ""
    min_interval: str = ""
    max_data_points: int | None = None
    options: dict[str, Any] = field(default_factory=dict)
    defaults: dict[str, Any] = field(default_factory=dict)
    overrides: list[dict[str, Any]] = field(default_factory=list)
    transformations: list[dict[str, Any]] = field(default_factory=list)
    repeat: str = ""

    def to_json(self, panel_id: int, x: int, y: int) -> dict[str, Any]:
        """The panel JSON at grid position ``(x, y)``."""
        defaults: dict[str, Any] = {**self.defaults}
        if self.unit:
            defaults["unit"] = self.unit
        out: dict[str, Any] = {
            "id": panel_id,
            "type": self.type,
            "title": self.title,
            "description": self.description,
            "datasource": dict(DATASOURCE),
            "gridPos": {"h": self.h, "w": self.w, "x": x, "y": y},
            "targets": [t.to_json() for t in self.targets],
            "fieldConfig": {"defaults": defaults, "overrides": list(self.overrides)},
            "options": dict(self.options),
        }
        if self.min_interval:
            out["interval"] = self.min_interval
        if self.max_data_points:
            out["maxDataPoints"] = self.max_data_points
        if self.transformations:
            out["transformations"] = list(self.transformations)
        if self.repeat:
            out["repeat"] = self.repeat
            out["repeatDirection"] = "h"
            out["maxPerRow"] = 4
        return out


def layout(panels: list[Panel]) -> list[dict[str, Any]]:
    """Place panels left to right, wrapping at 24 columns; a row is as tall as its tallest panel."""
    out: list[dict[str, Any]] = []
    x = y = row_h = 0
    for i, panel in enumerate(panels, start=1):
        if panel.w > GRID_COLUMNS:
            raise ValueError(f"panel {panel.title!r} is wider than {GRID_COLUMNS} columns")
        if x + panel.w > GRID_COLUMNS:
            x, y, row_h = 0, y + row_h, 0
        out.append(panel.to_json(i, x, y))
        x += panel.w
        row_h = max(row_h, panel.h)
    return out


def value_mappings(texts: dict[str, tuple[str, str]]) -> list[dict[str, Any]]:
    """Grafana value mappings: raw value -> (display text, colour)."""
    return [
        {
            "type": "value",
            "options": {
                raw: {"text": text, "color": color, "index": i} for i, (raw, (text, color)) in enumerate(texts.items())
            },
        }
    ]


def thresholds(*steps: tuple[float | None, str]) -> dict[str, Any]:
    """Absolute thresholds: ``(None, base colour), (value, colour), ...``."""
    return {"mode": "absolute", "steps": [{"color": color, "value": value} for value, color in steps]}


def dashboard(
    uid: str,
    title: str,
    panels: list[Panel],
    *,
    description: str,
    time_from: str = "now-15m",
    refresh: str = "10s",
    variables: list[dict[str, Any]] | None = None,
    annotations: list[dict[str, Any]] | None = None,
    tags: tuple[str, ...] = ("ecgmon",),
) -> dict[str, Any]:
    """A complete dashboard model for file provisioning (``id`` null, fixed ``uid``)."""
    builtin = {
        "builtIn": 1,
        "datasource": {"type": "grafana", "uid": "-- Grafana --"},
        "enable": True,
        "hide": True,
        "iconColor": "rgba(0, 211, 255, 1)",
        "name": "Annotations & Alerts",
        "type": "dashboard",
    }
    return {
        "id": None,
        "uid": uid,
        "title": title,
        "description": description,
        "tags": list(tags),
        "timezone": "browser",
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "refresh": refresh,
        "time": {"from": time_from, "to": "now"},
        "timepicker": {},
        "fiscalYearStartMonth": 0,
        "liveNow": False,
        "weekStart": "",
        "links": [],
        "annotations": {"list": [builtin, *(annotations or [])]},
        "templating": {"list": list(variables or [])},
        "panels": layout(panels),
    }
