"""Push the dashboards (and, optionally, the alert rules and the datasource) to an existing Grafana.

For a Grafana that is not provisioned from ``dashboards/provisioning`` (a hosted one, say): the
payloads are built from the same generator, then sent with grafana-client (the maintained fork of
the archived grafana-api). The token authenticates as a service account; it is never printed or
logged, and errors quote Grafana's message, never the request headers.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from dashboards.definitions import alert_rules, all_dashboards
from dashboards.generate import datasource_config
from dashboards.model import DATASOURCE_UID, FOLDER_TITLE, FOLDER_UID
from dashboards.queries import parse_duration_ms
from ecgmon.errors import ConfigError, PushError


@dataclass
class PushResult:
    """What a push did: dashboard uids, rule group names, whether the datasource was created."""

    dashboards: list[str] = field(default_factory=list)
    rule_groups: list[str] = field(default_factory=list)
    datasource_created: bool = False


def dashboard_payload(model: dict[str, Any], message: str = "ecgmon dashboards push") -> dict[str, Any]:
    """Body of ``POST /api/dashboards/db``: overwrite by uid into the ecgmon folder."""
    return {"dashboard": copy.deepcopy(model), "folderUid": FOLDER_UID, "overwrite": True, "message": message}


def rule_group_payload(group: dict[str, Any]) -> dict[str, Any]:
    """Body of ``PUT /api/v1/provisioning/folder/<uid>/rule-groups/<name>`` from a provisioning-file group.

    The HTTP API wants the interval in seconds and each rule's folder, group and org spelled out.
    """
    rules = []
    for rule in group["rules"]:
        api_rule = copy.deepcopy(rule)
        api_rule.update({"folderUID": FOLDER_UID, "ruleGroup": group["name"], "orgID": group["orgId"]})
        rules.append(api_rule)
    return {"title": group["name"], "interval": parse_duration_ms(group["interval"]) // 1000, "rules": rules}


def datasource_payload(influx_url: str, database: str, token: str) -> dict[str, Any]:
    """Body of ``POST /api/datasources``: the provisioned datasource with concrete URL, database and token."""
    ds = copy.deepcopy(datasource_config()["datasources"][0])
    ds["url"] = influx_url
    ds["jsonData"]["dbName"] = database
    ds["secureJsonData"] = {"httpHeaderValue1": f"Token {token}"} if token else {}
    if not token:
        ds["jsonData"].pop("httpHeaderName1", None)
    ds.pop("editable", None)
    return ds


def _grafana(url: str, token: str) -> Any:
    from grafana_client import GrafanaApi

    if not url:
        raise ConfigError("No Grafana URL: pass --url or set ECGMON_GRAFANA_URL.")
    if not token:
        raise ConfigError("No Grafana token: pass --token or set ECGMON_GRAFANA_TOKEN (a service-account token).")
    return GrafanaApi.from_url(url, credential=token, timeout=10.0)


def _call(what: str, fn: Any, *args: Any) -> Any:
    from grafana_client.client import GrafanaException

    try:
        return fn(*args)
    except GrafanaException as exc:
        raise PushError(f"Grafana refused to {what} ({exc.status_code}): {exc.message}") from None
    except Exception as exc:  # connection errors come from niquests/urllib3 under several names
        raise PushError(f"Could not {what}: {type(exc).__name__}; check --url and that Grafana is up.") from None


def _exists(fn: Any, *args: Any) -> bool:
    from grafana_client.client import GrafanaClientError

    try:
        fn(*args)
    except GrafanaClientError as exc:
        if exc.status_code == 404:
            return False
        raise PushError(f"Grafana refused a lookup ({exc.status_code}): {exc.message}") from None
    return True


def push(
    url: str,
    token: str,
    *,
    rules: bool = True,
    influx_url: str = "",
    influx_database: str = "ecg",
    influx_token: str = "",
) -> PushResult:
    """Create the folder if missing, overwrite the dashboards, upsert rule groups, add the datasource.

    The datasource is only created when ``influx_url`` is given and Grafana has none with uid
    ``ecgmon-influxdb`` (an existing one is left alone).
    """
    api = _grafana(url, token)
    result = PushResult()
    if not _call("look up the ecgmon folder", _exists, api.folder.get_folder, FOLDER_UID):
        _call("create the ecgmon folder", api.folder.create_folder, FOLDER_TITLE, FOLDER_UID)
    if influx_url and not _call(
        "look up the datasource", _exists, api.datasource.get_datasource_by_uid, DATASOURCE_UID
    ):
        payload = datasource_payload(influx_url, influx_database, influx_token)
        _call("create the InfluxDB datasource", api.datasource.create_datasource, payload)
        result.datasource_created = True
    for model in all_dashboards().values():
        _call(f"save dashboard {model['uid']}", api.dashboard.update_dashboard, dashboard_payload(model))
        result.dashboards.append(model["uid"])
    if rules:
        for group in alert_rules()["groups"]:
            body = rule_group_payload(group)
            _call(
                f"save rule group {group['name']}",
                api.alertingprovisioning.update_rule_group,
                FOLDER_UID,
                group["name"],
                body,
            )
            result.rule_groups.append(group["name"])
    return result
