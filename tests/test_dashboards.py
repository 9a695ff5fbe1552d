"""Grafana provisioning: generated from Python, valid for Grafana 11.6, queries right on a real InfluxDB.

The query-semantics tests write a small, fully known set of points (in 2001, so no other test's
data falls in their time range) to the real influxd of the test stack and check each panel
against the answer computed here. ``tests/test_dashboards_pipeline.py`` runs every panel after a
real worker + simulator run.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from dashboards import definitions as d
from dashboards.check import run_all
from dashboards.generate import PROVISIONING_DIR, load_alert_rules, load_dashboards, render_all, stale_files, write_all
from dashboards.push import PushError, dashboard_payload, datasource_payload, push, rule_group_payload
from dashboards.queries import (
    alert_queries,
    dashboard_queries,
    format_duration,
    grafana_interval_ms,
    parse_duration_ms,
    substitute,
    unresolved_variables,
)
from dashboards.validate import validate_alert_rules, validate_dashboard
from ecgmon.errors import ConfigError
from ecgmon.influx import InfluxClient, line
from ecgmon.points import strip_lines
from ecgmon.stack import free_port
from tools.cli.main import app

# --- files ---------------------------------------------------------------------------------------


def test_committed_files_match_the_generator() -> None:
    assert stale_files() == [], "run `ecgmon dashboards generate` and commit dashboards/provisioning"


def test_generate_writes_the_same_tree_elsewhere(tmp_path: Path) -> None:
    written = write_all(tmp_path)
    assert {str(p.relative_to(tmp_path)) for p in written} == set(render_all())
    assert stale_files(tmp_path) == []
    (tmp_path / "dashboards" / "json" / "fleet-overview.json").write_text("{}")
    assert stale_files(tmp_path) == ["dashboards/json/fleet-overview.json"]


def test_dashboards_are_valid_for_the_pinned_grafana() -> None:
    dashboards = load_dashboards()
    assert set(dashboards) == {"fleet-overview", "patient-detail", "pipeline-health"}
    for model in dashboards.values():
        assert validate_dashboard(model) == []
    assert validate_alert_rules(load_alert_rules()) == []


def test_validation_catches_what_breaks_a_dashboard() -> None:
    model = copy.deepcopy(load_dashboards()["patient-detail"])
    model["schemaVersion"] = 39
    model["panels"][1]["gridPos"] = dict(model["panels"][0]["gridPos"])
    model["panels"][2]["type"] = "graph-old"
    model["panels"][3]["targets"][0]["query"] = (
        'SELECT mean("hr_bpm") FROM "prediction" WHERE "patient_id" = \'$nobody\''
    )
    model["panels"][4]["datasource"] = {"type": "influxdb", "uid": "other"}
    problems = " | ".join(validate_dashboard(model))
    for expected in (
        "schemaVersion 39",
        "overlaps",
        "graph-old",
        "$nobody".lstrip("$"),
        "no $timeFilter",
        "datasource",
    ):
        assert expected in problems, (expected, problems)


def test_validation_catches_broken_alert_rules() -> None:
    rules = copy.deepcopy(load_alert_rules())
    rule = rules["groups"][0]["rules"][0]
    rule["condition"] = "Z"
    rule["data"][1]["model"]["expression"] = "Q"
    rule["noDataState"] = "Maybe"
    rules["groups"][0]["rules"][1]["uid"] = rule["uid"]
    problems = " | ".join(validate_alert_rules(rules))
    for expected in ("condition 'Z'", "unknown 'Q'", "noDataState", "duplicated"):
        assert expected in problems, (expected, problems)


def test_at_least_eight_panel_queries_cover_the_issue() -> None:
    dashboards = load_dashboards()
    titles = {stem: {p["title"] for p in m["panels"]} for stem, m in dashboards.items()}
    panel_queries = [q for stem, m in dashboards.items() for q in dashboard_queries(stem, m) if ":" not in q.title]
    assert len(panel_queries) >= 8
    assert {"Patients monitored", "Patients: current rhythm", "Open alerts", "Alert timeline"} <= titles[
        "fleet-overview"
    ]
    assert {"Lead I (mV)", "Class probabilities", "Heart rate (bpm)", "Alert events"} <= titles["patient-detail"]
    assert any(t.startswith("Lead $lead") for t in titles["patient-detail"])
    assert {
        "Windows per second",
        "Latency p50 / p99 (ms)",
        "Dead letters (total)",
        "Consumer lag (messages)",
    } <= titles["pipeline-health"]
    annotations = [a for a in dashboards["patient-detail"]["annotations"]["list"] if not a.get("builtIn")]
    assert annotations and "alert" in annotations[0]["target"]["query"]


def test_alert_rules_cover_rhythms_and_a_stalled_pipeline() -> None:
    rules = load_alert_rules()
    uids = {r["uid"] for g in rules["groups"] for r in g["rules"]}
    assert uids == {
        "ecgmon-af-open",
        "ecgmon-brady-open",
        "ecgmon-tachy-open",
        "ecgmon-pause-open",
        "ecgmon-pipeline-stalled",
        "ecgmon-pipeline-not-consuming",
    }
    by_uid = {r["uid"]: r for g in rules["groups"] for r in g["rules"]}
    assert by_uid["ecgmon-pipeline-stalled"]["noDataState"] == "Alerting"  # silence from every worker is the stall
    assert by_uid["ecgmon-pipeline-not-consuming"]["noDataState"] == "OK"  # no idle worker with a backlog


def test_datasource_keeps_the_token_out_of_the_file() -> None:
    text = (PROVISIONING_DIR / "datasources" / "ecgmon.yaml").read_text()
    assert "Token ${ECGMON_INFLUX_TOKEN}" in text and "version: InfluxQL" in text


# --- macros ------------------------------------------------------------------------------------


@given(st.integers(min_value=1, max_value=10**9), st.sampled_from(["ms", "s", "m", "h", "d"]))
def test_durations_round_trip(n: int, unit: str) -> None:
    ms = parse_duration_ms(f"{n}{unit}")
    assert parse_duration_ms(format_duration(ms)) == ms


@given(st.text(max_size=12))
def test_bad_durations_are_refused(text: str) -> None:
    try:
        parse_duration_ms(text)
    except ValueError as exc:
        assert "duration" in str(exc)


@given(st.integers(min_value=1, max_value=30 * 86_400_000), st.integers(min_value=1, max_value=5000))
def test_interval_covers_the_range_within_the_point_budget(range_ms: int, points: int) -> None:
    interval = grafana_interval_ms(range_ms, points, "20ms")
    assert interval >= 20
    assert interval >= range_ms // points or interval == 86_400_000


def test_substitute_sends_what_grafana_sends() -> None:
    sent = substitute(
        d.RECONSTRUCTED_LEAD,
        t_from_ms=1000,
        t_to_ms=61000,
        interval_ms=200,
        variables={"patient": "p-1", "lead": "aVR"},
    )
    assert "time >= 1000ms and time <= 61000ms" in sent and "time(200ms)" in sent
    assert "'p-1'" in sent and "'aVR'" in sent and unresolved_variables(sent) == []
    assert unresolved_variables(substitute(d.LEAD_I, t_from_ms=0, t_to_ms=1, interval_ms=1)) == ["patient"]


# --- push payloads -----------------------------------------------------------------------------


def test_push_payloads() -> None:
    model = d.fleet_overview()
    body = dashboard_payload(model)
    assert body["overwrite"] is True and body["folderUid"] == "ecgmon" and body["dashboard"]["uid"] == "ecgmon-fleet"
    group = rule_group_payload(d.alert_rules()["groups"][0])
    assert group["interval"] == 30 and {r["ruleGroup"] for r in group["rules"]} == {"ecgmon-rhythm"}
    assert all(r["folderUID"] == "ecgmon" for r in group["rules"])
    ds = datasource_payload("http://influx:8086", "ecg", "s3cret")
    assert ds["uid"] == "ecgmon-influxdb" and ds["secureJsonData"]["httpHeaderValue1"] == "Token s3cret"
    assert "httpHeaderName1" not in datasource_payload("http://influx:8086", "ecg", "")["jsonData"]


def test_push_needs_url_and_token_and_never_echoes_the_token() -> None:
    with pytest.raises(ConfigError, match="token"):
        push("http://127.0.0.1:1", "")
    with pytest.raises(ConfigError, match="URL"):
        push("", "tok")
    secret = "glsa_do-not-print-me"
    with pytest.raises(PushError) as info:
        push(f"http://127.0.0.1:{free_port()}", secret)  # nothing listens there
    assert secret not in str(info.value)


def test_cli_check_passes_and_generate_writes(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["dashboards", "check"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["dashboards", "generate", "--out", str(tmp_path)])
    assert result.exit_code == 0 and (tmp_path / "alerting" / "ecgmon-rules.yaml").exists()


# --- query semantics on the real InfluxDB --------------------------------------------------------

T0 = 978_307_200_000  # 2001-01-01T00:00:00Z in ms: far from every other test's points
PATIENTS = ("dash-a", "dash-b", "dash-c")


def _known_points() -> list[str]:
    lines = []
    for p_i, patient in enumerate(PATIENTS):
        for seq in range(12):
            t = T0 + 10_000 * (seq + 1)
            af = patient == "dash-a" and seq >= 6
            probs = {"N": 0.1, "A": 0.8, "O": 0.05, "~": 0.05} if af else {"N": 0.85, "A": 0.05, "O": 0.05, "~": 0.05}
            fields: dict[str, Any] = {
                "label": "A" if af else "N",
                "confidence": max(probs.values()),
                "uncertainty": 0.1,
                **{f"p_{k}": v for k, v in probs.items()},
                "hr_bpm": 60.0 + 10 * p_i,
                "sqi": 0.9,
                "seq": seq,
                "model": "test",
            }
            lines.append(line("prediction", {"patient_id": patient}, fields, t))
        for k in range(50):
            lines.append(line("ecg_lead_i", {"patient_id": patient}, {"value": 0.01 * k}, T0 + 20 * k))
            for lead in ("II", "V1"):
                lines.append(
                    line(
                        "reconstruction",
                        {"patient_id": patient, "lead": lead},
                        {"value": 0.5, "uncertainty": 0.1},
                        T0 + 20 * k,
                    )
                )
    events = [
        ("dash-a", "af", "opened", 70_000),
        ("dash-b", "brady", "opened", 30_000),
        ("dash-b", "brady", "resolved", 60_000),
        ("dash-c", "pause", "opened", 50_000),
        ("dash-c", "pause", "updated", 80_000),
    ]
    for p_i, patient in enumerate(PATIENTS):  # packed windows (ecg_strip): the report's 12-lead and full disclosure
        for k in range(3):
            lead_i = np.sin(np.linspace(0, 60, 2500) + p_i) * 0.8
            lines += strip_lines(patient_id=patient, lead="I", t_start_ns=(T0 + 10_000 * k) * 10**6, fs_hz=250.0,
                                 samples=lead_i)  # fmt: skip
        for lead in ("II", "V1"):
            lines += strip_lines(patient_id=patient, lead=lead, t_start_ns=(T0 + 20_000) * 10**6, fs_hz=100.0,
                                 samples=np.full(1000, 0.5), sd=np.full(1000, 0.1), model="test")  # fmt: skip
    for patient, kind, state, dt in events:
        fields = {"state": state, "severity": "high", "confidence": 0.9, "message": f"{kind} {state}"}
        lines.append(line("alert", {"patient_id": patient, "type": kind}, fields, T0 + dt))
    for k in range(6):
        health = {
            "windows_per_s": 5.0, "batch_size_mean": 4.0, "queue_depth": k, "latency_ms_p50": 50.0,
            "latency_ms_p99": 120.0, "deadletter_total": k, "consumer_lag": 10 - k,
        }  # fmt: skip
        lines.append(line("pipeline", {"worker": "w-test"}, health, T0 + 5_000 * k))
    for k in range(3):  # a worker with records waiting that completes nothing
        stuck = {"windows_per_s": 0.0, "consumer_lag": 7, "inflight": 0}
        lines.append(line("pipeline", {"worker": "w-stuck"}, stuck, T0 + 5_000 * k))
    for patient in ("dash-a", "dash-b", "dash-c"):  # a technician's action in the console (tools/console)
        lines.append(_console_action_line(patient, T0 + 90_000))
    return lines


def _console_action_line(patient: str, t_ms: int) -> str:
    from ecgmon.contracts import AlertAction
    from ecgmon.points import action_line

    action = AlertAction(
        action_id=f"a-{patient}", kind="acknowledge", patient_id=patient, user="tess", role="technician",
        t_ns=t_ms * 1_000_000, alert_id=f"{patient}:af:1", alert_type="af",
    )  # fmt: skip
    return action_line(action)


@pytest.fixture(scope="module")
def known(stack_settings: Any) -> InfluxClient:
    client = InfluxClient(stack_settings)
    client.write_lines(_known_points())
    return client


def _run(client: InfluxClient, query: str, **variables: str) -> list[dict[str, Any]]:
    sent = substitute(query, t_from_ms=T0, t_to_ms=T0 + 200_000, interval_ms=10_000, variables=variables)
    return client.query(sent)


@pytest.mark.integration
def test_fleet_queries_give_the_known_answers(known: InfluxClient) -> None:
    assert _run(known, d.PATIENTS_MONITORED)[0]["values"][0][1] == 3
    assert _run(known, d.OPEN_ALERTS_COUNT)[0]["values"][0][1] == 2  # dash-a af, dash-c pause (updated)
    open_rows = {(s["tags"]["patient_id"], s["tags"]["type"]): s["values"][0] for s in _run(known, d.OPEN_ALERTS_TABLE)}
    assert set(open_rows) == {("dash-a", "af"), ("dash-c", "pause")}
    assert open_rows[("dash-c", "pause")][0] == T0 + 80_000  # "since" = the latest event's time
    table = {
        s["tags"]["patient_id"]: dict(zip(s["columns"], s["values"][0], strict=True))
        for s in _run(known, d.PATIENT_TABLE)
    }
    assert table["dash-a"]["rhythm"] == "A" and table["dash-b"]["rhythm"] == "N"
    assert table["dash-a"]["time"] == T0 + 120_000 and table["dash-c"]["hr_bpm"] == 80.0  # last seen = last window
    burden = {s["tags"]["patient_id"]: s["values"][0][1] for s in _run(known, d.AF_MINUTES)}
    assert burden == {"dash-a": pytest.approx(6 * d.WINDOW_S / 60)}
    rhythm = {s["tags"]["patient_id"]: [v[1] for v in s["values"]] for s in _run(known, d.RHYTHM_BY_PATIENT)}
    assert rhythm["dash-a"][-1] == "A" and set(rhythm["dash-b"]) == {"N"}


@pytest.mark.integration
def test_patient_queries_give_the_known_answers(known: InfluxClient) -> None:
    probs = _run(known, d.CLASS_PROBABILITIES, patient="dash-a")[0]
    assert probs["columns"] == ["time", "Normal", "AF", "Other", "Noisy"]
    assert probs["values"][-1][2] == pytest.approx(0.8) and probs["values"][-1][4] == pytest.approx(0.05)
    band = _run(known, d.RECONSTRUCTED_LEAD, patient="dash-b", lead="V1")[0]
    for _, mean, lower, upper in band["values"]:
        assert lower == pytest.approx(mean - 0.2) and upper == pytest.approx(mean + 0.2)
    assert _run(known, d.RECONSTRUCTED_LEAD, patient="dash-b", lead="V6") == []
    alerts = _run(known, d.PATIENT_ALERTS, patient="dash-b")[0]
    assert [v[2] for v in alerts["values"]] == ["opened", "resolved"]
    assert len(_run(known, d.LEAD_I, patient="dash-c")[0]["values"]) >= 1


@pytest.mark.integration
def test_alert_rule_queries_fire_only_for_open_alerts(known: InfluxClient) -> None:
    def firing(kind: str) -> set[str]:
        return {s["tags"]["patient_id"] for s in _run(known, d.open_alerts_query(kind))}

    assert firing("af") == {"dash-a"}
    assert firing("pause") == {"dash-c"}
    assert firing("brady") == set()  # opened then resolved
    assert _run(known, d.PIPELINE_HEARTBEAT)[0]["values"][0][1] == 6 + 3
    # Only the worker that completes nothing while records wait: not the busy one whose lag falls.
    assert {s["tags"]["worker"] for s in _run(known, d.PIPELINE_NOT_CONSUMING)} == {"w-stuck"}


@pytest.mark.integration
def test_every_provisioned_query_runs_on_the_known_points(known: InfluxClient) -> None:
    results = run_all(known, T0, T0 + 200_000)
    assert not [r.label for r in results if r.error]
    empty = [r.label for r in results if r.rows == 0]
    # Empty exactly where the known points say so: leads never written, rules with nothing open.
    unwritten_leads = [r.label for r in results if r.panel.repeat == "lead" and r.variant not in ("II", "V1")]
    assert sorted(empty) == sorted([*unwritten_leads, "alerting / Bradycardia open A", "alerting / Tachycardia open A"])
    assert len({r.label for r in results}) == len(results)
    assert sum(1 for _ in alert_queries(load_alert_rules())) == 6
    assert json.dumps([r.sent for r in results]).count("$") == 0


@pytest.mark.integration
def test_live_snapshot_shows_each_patient_and_open_alert(known: InfluxClient) -> None:
    from rich.console import Console

    from dashboards.live import render, snapshot

    snap = snapshot(known, T0, T0 + 200_000, patients=set(PATIENTS))
    rows = {r.patient_id: r for r in snap.patients}
    assert set(rows) == set(PATIENTS) and snap.windows == 36 and snap.open_alerts == 2
    assert rows["dash-a"].label == "A" and rows["dash-a"].open_alerts == ["af"] and rows["dash-b"].open_alerts == []
    assert rows["dash-c"].hr_bpm == 80.0 and rows["dash-c"].seq == 11
    console = Console(width=160, record=True)
    console.print(render(snap))
    text = console.export_text()
    assert "3 patients" in text and "2 alerts open" in text and "AF" in text and "pause" in text


@pytest.mark.integration
def test_report_reads_the_run_back(known: InfluxClient, tmp_path: Path) -> None:
    from dashboards.report import load_patients, load_reconstruction, write_report

    data = {p.patient_id: p.summary() for p in load_patients(known, T0, T0 + 200_000, set(PATIENTS))}
    assert data["dash-a"]["windows"] == 12 and data["dash-a"]["alerts_opened"] == {"af": 1}
    assert data["dash-b"]["alerts_opened"] == {"brady": 1}
    path = write_report(known, tmp_path, t_from_ms=T0, t_to_ms=T0 + 200_000, patients=set(PATIENTS), notes=["n"])
    text = path.read_text()
    assert text.count("data:image/png;base64,") == 2 * len(PATIENTS) + 2  # patients, 12-lead, full disclosure, pipeline
    assert 'alt="reconstructed 12-lead"' in text and "dash-c" in text
    assert all(f'alt="full disclosure of {p}"' in text for p in PATIENTS)
    recon = load_reconstruction(known, T0, T0 + 200_000, set(PATIENTS))
    assert recon is not None and set(recon[1]) == {"I", "II", "V1"}
    t, mean, sd = recon[1]["V1"]
    assert len(t) == 1000 and t[0] == T0 + 20_000 and mean[0] == 0.5 and sd[0] == 0.1
    assert len(recon[1]["I"][0]) == 2500 and recon[1]["I"][0][0] == T0 + 20_000  # the same window of lead I
