"""The dashboards and alert rules of the monitoring centre: every InfluxQL query lives here.

Queries read the stable measurement schema of the pipeline (database ``ecg``, ``ecgmon.points``):
``prediction``, ``alert``, ``pipeline``, and the live waveforms ``ecg_lead_i`` and ``reconstruction``,
which the worker writes only while a patient has an open alert (``ECGMON_LIVE_WAVEFORM``). Every
window is also stored packed in ``ecg_strip``, which Grafana cannot decode: full disclosure is
``ecgmon strip``, the console (``/api/strip``) and the HTML report. They use only what
InfluxDB 1.6 and InfluxDB 2.x's InfluxQL both run, and Grafana's macros ``$timeFilter`` and
``$__interval`` plus the dashboard variables ``$patient`` and ``$lead``. Field ``p_~`` (noisy class)
is always double-quoted. Two InfluxQL facts shape the queries: several selectors in one SELECT
return the range start as time (so "latest row" tables use ``ORDER BY time DESC LIMIT 1`` per
series instead), and a subquery's ordering must match its outer query's.
"""

from __future__ import annotations

from typing import Any

from dashboards.model import (
    DATASOURCE,
    DATASOURCE_UID,
    EXPR_DATASOURCE_UID,
    FOLDER_TITLE,
    Panel,
    Target,
    dashboard,
    thresholds,
    value_mappings,
)
from ecgmon.contracts import LEADS
from ecgmon.settings import Settings

CLASSES: dict[str, tuple[str, str]] = {
    "N": ("Normal", "green"),
    "A": ("AF", "red"),
    "O": ("Other", "orange"),
    "~": ("Noisy", "gray"),
}
"""Classifier labels -> display text and colour (PhysioNet/CinC 2017 classes)."""

ALERT_STATES: dict[str, tuple[str, str]] = {
    "opened": ("open", "red"),
    "updated": ("open (escalated)", "dark-red"),
    "resolved": ("resolved", "green"),
}
WINDOW_S: float = Settings.model_fields["window_s"].default
"""The gateway's window length the AF-minutes panels count with (``Settings.window_s``' default)."""
"""Signal seconds one prediction covers (the default ``ECGMON_HOP_S``); AF minutes = windows x this / 60."""

PATIENT = "\"patient_id\" = '$patient'"

# --- fleet overview ----------------------------------------------------------------------------

PATIENTS_MONITORED = (
    'SELECT count("c") AS "patients" FROM '
    '(SELECT last("confidence") AS "c" FROM "prediction" WHERE $timeFilter GROUP BY "patient_id")'
)
OPEN_ALERTS_COUNT = (
    'SELECT count("state") AS "open alerts" FROM '
    '(SELECT last("state") AS "state" FROM "alert" WHERE $timeFilter GROUP BY "patient_id", "type") '
    "WHERE \"state\" <> 'resolved'"
)
WINDOWS_CLASSIFIED = 'SELECT count("confidence") AS "windows" FROM "prediction" WHERE $timeFilter'
PATIENT_TABLE = (
    'SELECT "label" AS "rhythm", "confidence", "uncertainty", "hr_bpm", "sqi", "seq" FROM "prediction" '
    'WHERE $timeFilter GROUP BY "patient_id" ORDER BY time DESC LIMIT 1'
)
OPEN_ALERTS_TABLE = (
    'SELECT "state", "severity", "confidence", "message" FROM '
    '(SELECT "state", "severity", "confidence", "message" FROM "alert" WHERE $timeFilter '
    'GROUP BY "patient_id", "type" ORDER BY time DESC LIMIT 1) '
    'WHERE "state" <> \'resolved\' GROUP BY "patient_id", "type" ORDER BY time DESC'
)
ALERT_TIMELINE = 'SELECT "state" FROM "alert" WHERE $timeFilter GROUP BY "patient_id", "type"'
RHYTHM_BY_PATIENT = (
    'SELECT last("label") FROM "prediction" WHERE $timeFilter GROUP BY time($__interval), "patient_id" fill(none)'
)
AF_MINUTES = (
    f'SELECT count("label") * {WINDOW_S:g} / 60 AS "AF minutes" FROM "prediction" '
    'WHERE "label" = \'A\' AND $timeFilter GROUP BY "patient_id"'
)
MEAN_AF_PROBABILITY = (
    'SELECT 100 * mean("p_A") AS "mean P(AF) %" FROM "prediction" WHERE $timeFilter GROUP BY "patient_id"'
)

# --- patient detail ----------------------------------------------------------------------------

LEAD_I = (
    f'SELECT mean("value") AS "lead I" FROM "ecg_lead_i" WHERE {PATIENT} AND $timeFilter '
    "GROUP BY time($__interval) fill(none)"
)
RECONSTRUCTED_LEAD = (
    'SELECT mean("value") AS "mean", mean("value") - 2 * mean("uncertainty") AS "lower", '
    'mean("value") + 2 * mean("uncertainty") AS "upper" FROM "reconstruction" '
    f"WHERE {PATIENT} AND \"lead\" = '$lead' AND $timeFilter GROUP BY time($__interval) fill(none)"
)
RHYTHM = f'SELECT "label" FROM "prediction" WHERE {PATIENT} AND $timeFilter'
CLASS_PROBABILITIES = (
    'SELECT mean("p_N") AS "Normal", mean("p_A") AS "AF", mean("p_O") AS "Other", mean("p_~") AS "Noisy" '
    f'FROM "prediction" WHERE {PATIENT} AND $timeFilter GROUP BY time($__interval) fill(none)'
)
HEART_RATE = (
    f'SELECT mean("hr_bpm") AS "heart rate" FROM "prediction" WHERE {PATIENT} AND $timeFilter '
    "GROUP BY time($__interval) fill(none)"
)
TRUST = (
    'SELECT mean("confidence") AS "confidence", mean("uncertainty") AS "uncertainty", mean("sqi") AS "signal quality" '
    f'FROM "prediction" WHERE {PATIENT} AND $timeFilter GROUP BY time($__interval) fill(none)'
)
PATIENT_ALERTS = (
    f'SELECT "type", "state", "severity", "confidence", "message" FROM "alert" WHERE {PATIENT} AND $timeFilter'
)
PATIENT_ANNOTATIONS = f'SELECT "message", "type", "state" FROM "alert" WHERE {PATIENT} AND $timeFilter'
PATIENT_ACTION_ANNOTATIONS = f'SELECT "summary", "action", "user" FROM "alert_action" WHERE {PATIENT} AND $timeFilter'
"""The technicians' actions from the console (``tools/console``): who did what to which alert, and when."""
CONSOLE_URL = f"http://localhost:{Settings.model_fields['console_port'].default}"
"""Where the patient dashboard's link to the console points (``ECGMON_CONSOLE_PORT``'s default)."""
PATIENT_VARIABLE = 'SHOW TAG VALUES FROM "prediction" WITH KEY = "patient_id"'

# --- pipeline health ---------------------------------------------------------------------------


def _per_worker(field: str, name: str, agg: str = "mean") -> str:
    return (
        f'SELECT {agg}("{field}") AS "{name}" FROM "pipeline" WHERE $timeFilter '
        'GROUP BY time($__interval), "worker" fill(none)'
    )


THROUGHPUT_NOW = (
    'SELECT sum("w") AS "windows/s" FROM '
    '(SELECT last("windows_per_s") AS "w" FROM "pipeline" WHERE $timeFilter GROUP BY "worker")'
)
WINDOWS_PER_S = _per_worker("windows_per_s", "windows/s")
BATCH_SIZE = _per_worker("batch_size_mean", "batch size")
QUEUE_DEPTH = _per_worker("queue_depth", "queue depth", "max")
LATENCY = (
    'SELECT mean("latency_ms_p50") AS "p50", max("latency_ms_p99") AS "p99" FROM "pipeline" '
    'WHERE $timeFilter GROUP BY time($__interval), "worker" fill(none)'
)
DEAD_LETTERS = _per_worker("deadletter_total", "dead letters", "max")
CONSUMER_LAG = _per_worker("consumer_lag", "consumer lag", "max")

_TS_LINES = {
    "custom": {"drawStyle": "line", "lineWidth": 1, "fillOpacity": 0, "showPoints": "never", "spanNulls": True}
}


def _ts(title: str, targets: list[Target], unit: str = "", w: int = 12, h: int = 8, **kw: Any) -> Panel:
    return Panel(
        "timeseries", title, targets, w=w, h=h, unit=unit, defaults={**_TS_LINES, **kw.pop("defaults", {})}, **kw
    )


def _stat(title: str, query: str, unit: str = "", w: int = 6, **kw: Any) -> Panel:
    options = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}, "colorMode": "value"}
    return Panel("stat", title, [Target("A", query)], w=w, h=4, unit=unit, options=options, **kw)


def _state_timeline(title: str, target: Target, mappings: dict[str, tuple[str, str]], w: int = 24, h: int = 8) -> Panel:
    return Panel(
        "state-timeline",
        title,
        [target],
        w=w,
        h=h,
        defaults={"mappings": value_mappings(mappings), "color": {"mode": "thresholds"}},
        options={"mergeValues": True, "showValue": "auto", "rowHeight": 0.9, "alignValue": "left"},
    )


PATIENT_LINK = [
    {
        "matcher": {"id": "byName", "options": "patient"},
        "properties": [
            {
                "id": "links",
                "value": [
                    {
                        "title": "Patient detail",
                        "url": "/d/ecgmon-patient/ecgmon-patient-detail?var-patient=${__value.raw}&${__url_time_range}",
                    }
                ],
            }
        ],
    }
]
"""Clicking a patient id in a fleet table opens that patient's detail dashboard."""


def fleet_overview() -> dict[str, Any]:
    """Every patient at a glance: who is monitored, their rhythm now, what is open, AF burden."""
    rename_time = {"id": "organize", "options": {"renameByName": {"Time": "last seen", "patient_id": "patient"}}}
    panels = [
        _stat("Patients monitored", PATIENTS_MONITORED, "none", description="Patients with a prediction in the range."),
        _stat(
            "Alerts open now",
            OPEN_ALERTS_COUNT,
            "none",
            defaults={"thresholds": thresholds((None, "green"), (1, "red"))},
            description="Patient/alert-type pairs whose latest event is not 'resolved'.",
        ),
        _stat("Windows classified", WINDOWS_CLASSIFIED, "none"),
        _stat("Throughput", THROUGHPUT_NOW, "short", description="Windows per second over all workers (latest)."),
        Panel(
            "table",
            "Patients: current rhythm",
            [Target("A", PATIENT_TABLE, "table")],
            w=24,
            h=10,
            description="Latest window of each patient: rhythm, confidence, heart rate, signal quality, last seen.",
            defaults={"mappings": value_mappings(CLASSES)},
            transformations=[rename_time],
            overrides=PATIENT_LINK,
            options={"sortBy": [{"displayName": "rhythm", "desc": False}]},
        ),
        Panel(
            "table",
            "Open alerts",
            [Target("A", OPEN_ALERTS_TABLE, "table")],
            w=24,
            h=8,
            description="Each patient's alert types whose latest event is opened or updated; time = that event.",
            defaults={"mappings": value_mappings(ALERT_STATES)},
            overrides=PATIENT_LINK,
            transformations=[
                {"id": "organize", "options": {"renameByName": {"Time": "since", "patient_id": "patient"}}}
            ],
        ),
        _state_timeline("Alert timeline", Target("A", ALERT_TIMELINE, alias="$tag_patient_id $tag_type"), ALERT_STATES),
        _state_timeline("Rhythm by patient", Target("A", RHYTHM_BY_PATIENT, alias="$tag_patient_id"), CLASSES, h=10),
        Panel(
            "bargauge",
            "AF burden: minutes classified AF",
            [Target("A", AF_MINUTES, alias="$tag_patient_id")],
            w=12,
            h=10,
            unit="m",
            options={
                "orientation": "horizontal",
                "displayMode": "gradient",
                "reduceOptions": {"calcs": ["lastNotNull"]},
            },
            description=f"Windows labelled AF x {WINDOW_S:g} s; patients without AF are absent.",
        ),
        Panel(
            "bargauge",
            "Mean AF probability",
            [Target("A", MEAN_AF_PROBABILITY, alias="$tag_patient_id")],
            w=12,
            h=10,
            unit="percent",
            options={
                "orientation": "horizontal",
                "displayMode": "gradient",
                "reduceOptions": {"calcs": ["lastNotNull"]},
            },
            defaults={"min": 0, "max": 100},
        ),
    ]
    return dashboard(
        "ecgmon-fleet",
        "ecgmon: Fleet overview",
        panels,
        description="Every monitored patient: current rhythm, open alerts, alert timeline and AF burden.",
        time_from="now-30m",
    )


def patient_detail() -> dict[str, Any]:
    """One patient (``$patient``): lead I, reconstructed leads with bands, rhythm, trust, alerts."""
    patient_var = {
        "name": "patient",
        "label": "Patient",
        "type": "query",
        "datasource": dict(DATASOURCE),
        "query": PATIENT_VARIABLE,
        "definition": PATIENT_VARIABLE,
        "refresh": 2,
        "sort": 1,
        "multi": False,
        "includeAll": False,
        "options": [],
        "current": {},
        "hide": 0,
        "regex": "",
    }
    leads = LEADS[1:]
    lead_var = {
        "name": "lead",
        "label": "Reconstructed lead",
        "type": "custom",
        "query": ",".join(leads),
        "multi": True,
        "includeAll": True,
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "options": [{"selected": False, "text": lead, "value": lead} for lead in leads],
        "hide": 0,
    }
    annotation = {
        "name": "Alerts",
        "enable": True,
        "iconColor": "red",
        "datasource": dict(DATASOURCE),
        "target": {
            "refId": "Anno",
            "query": PATIENT_ANNOTATIONS,
            "rawQuery": True,
            "fromAnnotations": True,
            "textEditor": True,
            "textColumn": "message",
            "tagsColumn": "type,state",
        },
    }
    action_annotation = {
        "name": "Technicians' actions",
        "enable": True,
        "iconColor": "blue",
        "datasource": dict(DATASOURCE),
        "target": {
            "refId": "Actions",
            "query": PATIENT_ACTION_ANNOTATIONS,
            "rawQuery": True,
            "fromAnnotations": True,
            "textEditor": True,
            "textColumn": "summary",
            "tagsColumn": "action,user",
        },
    }
    band = [
        {
            "matcher": {"id": "byName", "options": "upper"},
            "properties": [
                {"id": "custom.fillBelowTo", "value": "lower"},
                {"id": "custom.fillOpacity", "value": 25},
                {"id": "custom.lineWidth", "value": 0},
                {"id": "color", "value": {"mode": "fixed", "fixedColor": "blue"}},
            ],
        },
        {
            "matcher": {"id": "byName", "options": "lower"},
            "properties": [
                {"id": "custom.lineWidth", "value": 0},
                {"id": "color", "value": {"mode": "fixed", "fixedColor": "blue"}},
                {"id": "custom.hideFrom", "value": {"legend": True, "tooltip": False, "viz": False}},
            ],
        },
        {
            "matcher": {"id": "byName", "options": "mean"},
            "properties": [{"id": "color", "value": {"mode": "fixed", "fixedColor": "dark-blue"}}],
        },
    ]
    panels = [
        _ts(
            "Lead I (mV)",
            [Target("A", LEAD_I, alias="$col")],
            "mvolt",
            w=24,
            h=7,
            min_interval="20ms",
            max_data_points=3000,
            description="Live lead I at ECGMON_DISPLAY_HZ, written while the patient has an open alert "
            "(ECGMON_LIVE_WAVEFORM). Every window is stored at its full rate in ecg_strip, which this panel "
            "cannot decode: for a patient without an open alert the live strip is on the console's patient "
            "page (/patients/<id>, the link above), and the full 24 h with `ecgmon strip` or the console's "
            "/api/strip.",
        ),
        _state_timeline("Rhythm", Target("A", RHYTHM, alias="rhythm"), CLASSES, h=4),
        _ts(
            "Class probabilities",
            [Target("A", CLASS_PROBABILITIES, alias="$col")],
            "percentunit",
            defaults={"min": 0, "max": 1},
        ),
        _ts("Heart rate (bpm)", [Target("A", HEART_RATE, alias="$col")], "suffix: bpm"),
        _ts(
            "Confidence, uncertainty, signal quality",
            [Target("A", TRUST, alias="$col")],
            "percentunit",
            defaults={"min": 0, "max": 1},
        ),
        Panel(
            "table",
            "Alert events",
            [Target("A", PATIENT_ALERTS, "table")],
            w=12,
            h=8,
            defaults={"mappings": value_mappings(ALERT_STATES)},
        ),
        _ts(
            "Lead $lead: reconstructed, ±2σ (mV)",
            [Target("A", RECONSTRUCTED_LEAD, alias="$col")],
            "mvolt",
            w=6,
            h=6,
            min_interval="20ms",
            max_data_points=1500,
            overrides=band,
            repeat="lead",
            description="Reconstructed from lead I; the band is ±2 predicted standard deviations. Drawn only when "
            "the worker writes live reconstruction points (ECGMON_LIVE_RECONSTRUCTION=true, off by default: 5,500 "
            "points per reconstructed window); the console's alert page and the report draw the 12-lead from "
            "ecg_strip, where every reconstruction is stored.",
        ),
    ]
    model = dashboard(
        "ecgmon-patient",
        "ecgmon: Patient detail",
        panels,
        description="One patient: lead I, the reconstructed 12 leads with uncertainty, rhythm, trust and alerts.",
        time_from="now-5m",
        refresh="5s",
        variables=[patient_var, lead_var],
        annotations=[annotation, action_annotation],
    )
    model["links"] = [
        {
            "title": "This patient in the technician's console",
            "type": "link",
            "url": CONSOLE_URL + "/patients/${patient}",
            "icon": "external link",
            "tooltip": "Live lead I, alerts, strips and actions (ecgmon console)",
            "targetBlank": False,
            "asDropdown": False,
            "includeVars": False,
            "keepTime": False,
            "tags": [],
        }
    ]
    return model


def pipeline_health() -> dict[str, Any]:
    """The stream processor: throughput, batching, queueing, latency, dead letters, consumer lag."""
    worker = "$tag_worker"
    panels = [
        _ts("Windows per second", [Target("A", WINDOWS_PER_S, alias=worker)], "short", min_interval="5s"),
        _ts("Mean batch size", [Target("A", BATCH_SIZE, alias=worker)], "short", min_interval="5s"),
        _ts("Inference queue depth", [Target("A", QUEUE_DEPTH, alias=worker)], "short", min_interval="5s"),
        _ts("Latency p50 / p99 (ms)", [Target("A", LATENCY, alias=f"{worker} $col")], "ms", min_interval="5s"),
        _ts("Dead letters (total)", [Target("A", DEAD_LETTERS, alias=worker)], "short", min_interval="5s"),
        _ts("Consumer lag (messages)", [Target("A", CONSUMER_LAG, alias=worker)], "short", min_interval="5s"),
    ]
    return dashboard(
        "ecgmon-pipeline",
        "ecgmon: Pipeline health",
        panels,
        description="Worker throughput, micro-batching, inference queue, latency, dead letters and consumer lag.",
        time_from="now-30m",
    )


def all_dashboards() -> dict[str, dict[str, Any]]:
    """File stem -> dashboard model."""
    return {
        "fleet-overview": fleet_overview(),
        "patient-detail": patient_detail(),
        "pipeline-health": pipeline_health(),
    }


# --- alert rules -------------------------------------------------------------------------------


def open_alerts_query(alert_type: str) -> str:
    """Per patient, 1 when the latest ``alert_type`` event is opened/updated (no row when none is open)."""
    return (
        'SELECT count("state") AS "open" FROM '
        f'(SELECT last("state") AS "state" FROM "alert" WHERE "type" = \'{alert_type}\' AND $timeFilter '
        'GROUP BY "patient_id") '
        'WHERE "state" <> \'resolved\' GROUP BY "patient_id"'
    )


PIPELINE_HEARTBEAT = 'SELECT count("windows_per_s") AS "health points" FROM "pipeline" WHERE $timeFilter'

PIPELINE_NOT_CONSUMING = (
    'SELECT last("consumer_lag") AS "records waiting" FROM "pipeline" '
    'WHERE $timeFilter AND "windows_per_s" = 0 GROUP BY "worker"'
)
"""Per worker: records waiting in its partitions while it completes nothing (docs/reliability.md, known issue)."""


def _rule(
    uid: str,
    title: str,
    query: str,
    *,
    op: str,
    threshold: float,
    window_s: int,
    for_: str,
    no_data: str,
    severity: str,
    summary: str,
) -> dict[str, Any]:
    expr = {"type": "__expr__", "uid": EXPR_DATASOURCE_UID}
    return {
        "uid": uid,
        "title": title,
        "condition": "C",
        "data": [
            {
                "refId": "A",
                "relativeTimeRange": {"from": window_s, "to": 0},
                "datasourceUid": DATASOURCE_UID,
                "model": {
                    "refId": "A",
                    "datasource": dict(DATASOURCE),
                    "query": query,
                    "rawQuery": True,
                    "resultFormat": "time_series",
                    "intervalMs": 1000,
                    "maxDataPoints": 43200,
                },
            },
            {
                "refId": "B",
                "relativeTimeRange": {"from": 0, "to": 0},
                "datasourceUid": EXPR_DATASOURCE_UID,
                "model": {
                    "refId": "B",
                    "datasource": dict(expr),
                    "type": "reduce",
                    "expression": "A",
                    "reducer": "last",
                },
            },
            {
                "refId": "C",
                "relativeTimeRange": {"from": 0, "to": 0},
                "datasourceUid": EXPR_DATASOURCE_UID,
                "model": {
                    "refId": "C",
                    "datasource": dict(expr),
                    "type": "threshold",
                    "expression": "B",
                    "conditions": [{"evaluator": {"type": op, "params": [threshold]}}],
                },
            },
        ],
        "noDataState": no_data,
        "execErrState": "Error",
        "for": for_,
        "annotations": {"summary": summary},
        "labels": {"severity": severity, "service": "ecgmon"},
        "isPaused": False,
    }


RHYTHM_RULES: dict[str, tuple[str, str]] = {
    "af": ("Atrial fibrillation open", "high"),
    "brady": ("Bradycardia open", "high"),
    "tachy": ("Tachycardia open", "high"),
    "pause": ("Pause open", "critical"),
}


def alert_rules() -> dict[str, Any]:
    """Grafana unified alerting provisioning (apiVersion 1): rhythm alerts per patient, pipeline stalls."""
    rhythm = [
        _rule(
            f"ecgmon-{kind}-open",
            title,
            open_alerts_query(kind),
            op="gt",
            threshold=0,
            window_s=6 * 3600,
            for_="0s",
            no_data="OK",
            severity=severity,
            summary=f"{title} for patient {{{{ $labels.patient_id }}}} (opened by the ecgmon alert engine).",
        )
        for kind, (title, severity) in RHYTHM_RULES.items()
    ]
    stalled = _rule(
        "ecgmon-pipeline-stalled",
        "Pipeline stalled",
        PIPELINE_HEARTBEAT,
        op="lt",
        threshold=1,
        window_s=120,
        for_="1m",
        no_data="Alerting",
        severity="critical",
        summary="No worker wrote a pipeline health point for 2 minutes: the stream processor is down or stuck.",
    )
    not_consuming = _rule(
        "ecgmon-pipeline-not-consuming",
        "Worker not consuming",
        PIPELINE_NOT_CONSUMING,
        op="gt",
        threshold=0,
        window_s=60,
        for_="2m",
        no_data="OK",
        severity="critical",
        summary="Worker {{ $labels.worker }} has records waiting and completes no window: check its partitions "
        "(partitions_assigned, partitions_fetching) and restart it.",
    )
    return {
        "apiVersion": 1,
        "groups": [
            {"orgId": 1, "name": "ecgmon-rhythm", "folder": FOLDER_TITLE, "interval": "30s", "rules": rhythm},
            {
                "orgId": 1,
                "name": "ecgmon-pipeline",
                "folder": FOLDER_TITLE,
                "interval": "1m",
                "rules": [stalled, not_consuming],
            },
        ],
    }
