"""Structural checks that the provisioned files load in the pinned Grafana (11.6) as intended.

There is no Grafana here to load them, so these rules encode what Grafana's provisioning and
dashboard model require and what silently breaks a dashboard: the schema version it writes,
unique panel ids, a 24-column grid without overlaps, core panel types only, every datasource
reference pointing at the provisioned datasource, every ``$variable`` defined, raw InfluxQL in
every target, and alert rules whose condition and expressions reference existing refIds.
Each function returns a list of problems (empty = valid) so a check can print them all.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from dashboards.model import DATASOURCE_UID, EXPR_DATASOURCE_UID, GRID_COLUMNS, PANEL_TYPES, SCHEMA_VERSION

_BUILTIN_VARIABLES = {"timeFilter", "__interval", "__interval_ms", "__from", "__to", "col", "tag_patient_id",
                      "tag_type", "tag_worker", "tag_lead", "__all", "labels", "values"}  # fmt: skip
_NO_DATA_STATES = {"OK", "NoData", "Alerting", "KeepLast"}
_EXEC_ERR_STATES = {"OK", "Error", "Alerting", "KeepLast"}
_DURATION = re.compile(r"^\d+(ms|s|m|h|d)$")


def _variables_used(text: str) -> set[str]:
    return set(re.findall(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)", text))


def validate_dashboard(model: Mapping[str, Any]) -> list[str]:
    """Problems with one dashboard model (empty when Grafana 11.6 would provision it as intended)."""
    problems: list[str] = []
    name = model.get("uid", "?")
    if model.get("schemaVersion") != SCHEMA_VERSION:
        problems.append(f"{name}: schemaVersion {model.get('schemaVersion')} != {SCHEMA_VERSION}")
    uid = model.get("uid")
    if not isinstance(uid, str) or not re.fullmatch(r"[A-Za-z0-9_-]{1,40}", uid):
        problems.append(f"{name}: uid must be 1-40 characters of A-Z a-z 0-9 _ -")
    if model.get("id") is not None:
        problems.append(f"{name}: provisioned dashboards must have id null")
    if not model.get("title"):
        problems.append(f"{name}: no title")
    defined = {v["name"] for v in model.get("templating", {}).get("list", [])}
    for var in model.get("templating", {}).get("list", []):
        if var.get("type") == "query" and var.get("datasource", {}).get("uid") != DATASOURCE_UID:
            problems.append(f"{name}: variable {var['name']} does not use datasource {DATASOURCE_UID}")
    ids: set[int] = set()
    cells: dict[tuple[int, int], str] = {}
    for panel in model.get("panels", []):
        title = panel.get("title", "?")
        where = f"{name}/{title}"
        if panel.get("type") not in PANEL_TYPES:
            problems.append(f"{where}: panel type {panel.get('type')!r} is not a core Grafana 11.6 panel")
        pid = panel.get("id")
        if not isinstance(pid, int) or pid in ids:
            problems.append(f"{where}: panel id {pid!r} is missing or duplicated")
        else:
            ids.add(pid)
        grid = panel.get("gridPos", {})
        x, y, w, h = (grid.get(k, -1) for k in ("x", "y", "w", "h"))
        if min(x, y) < 0 or w < 1 or h < 1 or x + w > GRID_COLUMNS:
            problems.append(f"{where}: gridPos {grid} is outside the {GRID_COLUMNS}-column grid")
        else:
            for cx in range(x, x + w):
                for cy in range(y, y + h):
                    if (cx, cy) in cells:
                        problems.append(f"{where}: overlaps {cells[(cx, cy)]!r} at ({cx}, {cy})")
                        break
                    cells[(cx, cy)] = title
                else:
                    continue
                break
        if panel.get("datasource", {}).get("uid") != DATASOURCE_UID:
            problems.append(f"{where}: panel datasource is not {DATASOURCE_UID}")
        if panel.get("repeat") and panel["repeat"] not in defined:
            problems.append(f"{where}: repeats over undefined variable ${panel['repeat']}")
        interval = panel.get("interval")
        if interval and not _DURATION.match(interval):
            problems.append(f"{where}: interval {interval!r} is not a duration")
        targets = panel.get("targets", [])
        if panel.get("type") != "text" and not targets:
            problems.append(f"{where}: no query")
        refs = [t.get("refId") for t in targets]
        if len(refs) != len(set(refs)):
            problems.append(f"{where}: duplicate refIds {refs}")
        for target in targets:
            problems.extend(_check_target(where, target, defined | _BUILTIN_VARIABLES))
        used_in_title = _variables_used(title) - defined - _BUILTIN_VARIABLES
        if used_in_title:
            problems.append(f"{where}: title uses undefined variables {sorted(used_in_title)}")
    for anno in model.get("annotations", {}).get("list", []):
        if anno.get("builtIn"):
            continue
        if anno.get("datasource", {}).get("uid") != DATASOURCE_UID:
            problems.append(f"{name}: annotation {anno.get('name')} does not use {DATASOURCE_UID}")
        problems.extend(_check_target(f"{name}/annotation", anno.get("target", {}), defined | _BUILTIN_VARIABLES))
    return problems


def _check_target(where: str, target: Mapping[str, Any], known: set[str]) -> list[str]:
    problems = []
    query = target.get("query", "")
    if not target.get("rawQuery") or not isinstance(query, str) or not query.strip():
        problems.append(f"{where}: target {target.get('refId')} is not a raw InfluxQL query")
        return problems
    if target.get("datasource", {"uid": DATASOURCE_UID}).get("uid") != DATASOURCE_UID:
        problems.append(f"{where}: target {target.get('refId')} uses another datasource")
    if target.get("resultFormat", "time_series") not in ("time_series", "table", "logs"):
        problems.append(f"{where}: resultFormat {target.get('resultFormat')!r} is unknown")
    undefined = _variables_used(query) - known
    if undefined:
        problems.append(f"{where}: query uses undefined variables {sorted(undefined)}")
    if query.upper().startswith("SELECT") and "$timeFilter" not in query:
        problems.append(f"{where}: query has no $timeFilter, so it would scan all time")
    if query.count("(") != query.count(")") or query.count("'") % 2 or query.count('"') % 2:
        problems.append(f"{where}: unbalanced brackets or quotes")
    return problems


def validate_alert_rules(rules: Mapping[str, Any]) -> list[str]:
    """Problems with a unified-alerting provisioning file (apiVersion 1)."""
    problems: list[str] = []
    if rules.get("apiVersion") != 1:
        problems.append("alerting: apiVersion must be 1")
    uids: set[str] = set()
    for group in rules.get("groups", []):
        gname = group.get("name", "?")
        for key in ("orgId", "name", "folder", "interval"):
            if key not in group:
                problems.append(f"alerting/{gname}: group has no {key}")
        if not _DURATION.match(str(group.get("interval", ""))):
            problems.append(f"alerting/{gname}: interval is not a duration")
        for rule in group.get("rules", []):
            where = f"alerting/{gname}/{rule.get('title', '?')}"
            uid = rule.get("uid", "")
            if not re.fullmatch(r"[A-Za-z0-9_-]{1,40}", uid) or uid in uids:
                problems.append(f"{where}: uid {uid!r} is invalid or duplicated")
            uids.add(uid)
            if rule.get("noDataState") not in _NO_DATA_STATES:
                problems.append(f"{where}: noDataState {rule.get('noDataState')!r}")
            if rule.get("execErrState") not in _EXEC_ERR_STATES:
                problems.append(f"{where}: execErrState {rule.get('execErrState')!r}")
            if not _DURATION.match(str(rule.get("for", ""))):
                problems.append(f"{where}: for {rule.get('for')!r} is not a duration")
            refs = {item.get("refId") for item in rule.get("data", [])}
            if rule.get("condition") not in refs:
                problems.append(f"{where}: condition {rule.get('condition')!r} is not one of {sorted(refs)}")
            for item in rule.get("data", []):
                model = item.get("model", {})
                if item.get("refId") != model.get("refId"):
                    problems.append(f"{where}: refId mismatch in {item.get('refId')}")
                ds = item.get("datasourceUid")
                if ds == EXPR_DATASOURCE_UID:
                    if model.get("expression") not in refs:
                        problems.append(
                            f"{where}: expression {item.get('refId')} reads unknown {model.get('expression')!r}"
                        )
                elif ds == DATASOURCE_UID:
                    if not model.get("rawQuery") or "$timeFilter" not in model.get("query", ""):
                        problems.append(f"{where}: query {item.get('refId')} must be raw InfluxQL with $timeFilter")
                    if item.get("relativeTimeRange", {}).get("from", 0) <= 0:
                        problems.append(f"{where}: query {item.get('refId')} has no look-back range")
                else:
                    problems.append(
                        f"{where}: datasourceUid {ds!r} is neither {DATASOURCE_UID} nor {EXPR_DATASOURCE_UID}"
                    )
    return problems
