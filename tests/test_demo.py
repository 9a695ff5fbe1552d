"""``ecgmon demo`` headless on the real embedded stack, then every provisioned query on what it stored.

One real run serves both checks (a worker takes ~20-30 s to join its group): ``ecgmon demo
--patients 6 --duration 60 --no-live`` runs a real ``ecgmon worker`` and ``ecgmon simulate`` as
subprocesses against the test session's broker and influxd (with this test's own topics and app
id), writes the report and stops what it started. Then every panel, annotation, variable and
alert-rule query of the provisioned files runs, as Grafana would send it, against that InfluxDB.
Queries that depend on what happened (alerts open, AF windows) are checked against the answer
computed here from the raw points. The committed weights are used when they exist, else untrained
models of the same architecture (``ECGMON_MODEL_WEIGHTS=0``): this is about wiring, not accuracy.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from dashboards.check import QueryResult, run_all
from ecgmon import stack
from ecgmon.influx import InfluxClient
from ecgmon.settings import Settings
from ecgmon.stack import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = ROOT / "models" / "weights"
PATIENTS = 6
DURATION_S = 60


@dataclass(frozen=True)
class DemoRun:
    """What one demo run left: its settings, report, stdout, sent windows per patient and time range."""

    settings: Settings
    report: Path
    stdout: str
    sent: dict[str, int]
    t_from_ms: int
    t_to_ms: int


def _env(s: Settings, prefix: str) -> dict[str, str]:
    weights = (WEIGHTS / "classifier_student.pt").exists() and (WEIGHTS / "reconstructor_dual_branch.pt").exists()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ECGMON_")}
    env.update(
        {
            "ECGMON_STATE_DIR": str(s.state_dir),
            "ECGMON_KAFKA_PORT": str(s.kafka_port),
            "ECGMON_INFLUX_PORT": str(s.influx_port),
            "ECGMON_WEB_PORT": str(free_port()),
            "ECGMON_PARTITIONS": str(s.partitions),
            "ECGMON_APP_ID": f"{prefix}-app",
            "ECGMON_TOPIC_WINDOWS": f"{prefix}.windows",
            "ECGMON_TOPIC_PREDICTIONS": f"{prefix}.predictions",
            "ECGMON_TOPIC_RECONSTRUCTIONS": f"{prefix}.reconstructions",
            "ECGMON_TOPIC_ALERTS": f"{prefix}.alerts",
            "ECGMON_TOPIC_DEADLETTER": f"{prefix}.deadletter",
            "ECGMON_MODEL_WEIGHTS": "1" if weights else "0",
            "ECGMON_MC_SAMPLES": "2",
            "ECGMON_TORCH_THREADS": "1",
            "ECGMON_RECONSTRUCTION_EVERY_K": "2",
            "ECGMON_HEALTH_INTERVAL_S": "1",
            "ECGMON_DEMO_EVENT_RATE_PER_H": "360",
        }
    )
    return env


@pytest.fixture(scope="module")
def demo_run(stack_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    prefix = f"demo{os.getpid()}x{free_port()}"
    report_dir = tmp_path_factory.mktemp("demo-report")
    t_from_ms = int(time.time() * 1000) - (DURATION_S + 20) * 1000
    argv = [sys.executable, "-m", "tools.cli.main", "demo", "--patients", str(PATIENTS), "--duration",
            str(DURATION_S), "--speed", "15", "--seed", "11", "--no-live", "--report", str(report_dir)]  # fmt: skip
    done = subprocess.run(argv, env=_env(stack_settings, prefix), cwd=ROOT, capture_output=True, text=True, timeout=300)
    logs = report_dir / "logs"
    assert done.returncode == 0, f"{done.stderr[-2000:]}\n{(logs / 'worker.log').read_text()[-3000:]}"
    report = Path(done.stdout.strip().splitlines()[-1])
    summary = json.loads((logs / "simulate.json").read_text())
    sent = {pid: int(p["windows"]) for pid, p in summary["per_patient"].items()}
    # The demo may start its clock after earlier points (up to now), so look ahead generously.
    return DemoRun(stack_settings, report, done.stdout, sent, t_from_ms, int(time.time() * 1000) + 600_000)


def test_demo_writes_the_report_and_leaves_the_running_stack(demo_run: DemoRun) -> None:
    assert demo_run.report.exists() and demo_run.report.suffix == ".html"
    text = demo_run.report.read_text()
    assert len(demo_run.sent) == PATIENTS
    total = sum(demo_run.sent.values())
    assert f"{total} of {total} windows sent have a stored prediction" in text
    for pid in demo_run.sent:
        assert f'alt="rhythm of {pid}"' in text
    assert 'alt="reconstructed 12-lead"' in text and 'alt="pipeline throughput and latency"' in text
    for pid in demo_run.sent:  # every window is stored packed: every patient has a full-disclosure strip
        assert f'alt="full disclosure of {pid}"' in text
    assert len(re.findall(r"data:image/png;base64,", text)) == 2 * PATIENTS + 2
    status = stack.status(demo_run.settings)
    assert status["kafka"].healthy and status["influxdb"].healthy, "the demo must leave a stack it found running"


def _latest_alert_states(client: InfluxClient, run: DemoRun) -> dict[tuple[str, str], str]:
    query = (
        f'SELECT "state" FROM "alert" WHERE time >= {run.t_from_ms}ms and time <= {run.t_to_ms}ms '
        'GROUP BY "patient_id", "type"'
    )
    return {(s["tags"]["patient_id"], s["tags"]["type"]): s["values"][-1][1] for s in client.query(query)}


def _by_title(results: list[QueryResult], title: str) -> list[QueryResult]:
    found = [r for r in results if r.panel.title == title]
    assert found, title
    return found


def test_every_panel_and_rule_query_returns_the_run(demo_run: DemoRun) -> None:
    client = InfluxClient(demo_run.settings)
    latest = _latest_alert_states(client, demo_run)
    open_pairs = {pair for pair, state in latest.items() if state != "resolved"}
    with_alerts = sorted({pid for pid, _ in latest if pid in demo_run.sent})
    patient = with_alerts[0] if with_alerts else sorted(demo_run.sent)[0]
    results = run_all(client, demo_run.t_from_ms, demo_run.t_to_ms, patient=patient)
    assert not [(r.label, r.error) for r in results if r.error]

    conditional = {
        "Alerts open now": bool(open_pairs),
        "Open alerts": bool(open_pairs),
        "Alert timeline": bool(latest),
        "Alert events": any(pid == patient for pid, _ in latest),
        "annotation: Alerts": any(pid == patient for pid, _ in latest),
    }
    af_windows = client.count(
        f'SELECT count("label") FROM "prediction" WHERE "label" = \'A\' AND '
        f"time >= {demo_run.t_from_ms}ms and time <= {demo_run.t_to_ms}ms"
    )
    conditional["AF burden: minutes classified AF"] = af_windows > 0
    lag_fields = client.query('SHOW FIELD KEYS FROM "pipeline"')
    has_lag = any(row[0] == "consumer_lag" for s in lag_fields for row in s["values"])
    conditional["Consumer lag (messages)"] = has_lag  # not written by the worker yet: see the note in the report
    conditional["annotation: Technicians' actions"] = False  # nobody acts in the console during this run
    # Live waveforms are written only while the patient has an open alert (ECGMON_LIVE_WAVEFORM=alert_open).
    span = f"time >= {demo_run.t_from_ms}ms and time <= {demo_run.t_to_ms}ms"
    conditional["Lead I (mV)"] = client.count(
        f"SELECT count(\"value\") FROM \"ecg_lead_i\" WHERE \"patient_id\" = '{patient}' AND {span}"
    ) > 0  # fmt: skip
    live_leads = {
        s["tags"]["lead"]
        for s in client.query(
            f"SELECT count(\"value\") FROM \"reconstruction\" WHERE \"patient_id\" = '{patient}' AND {span} "
            'GROUP BY "lead"'
        )
    }

    for r in results:
        if r.panel.source == "alerting":
            continue
        expected = conditional.get(r.panel.title, True)
        if r.panel.repeat == "lead":
            expected = r.variant in live_leads
        assert (r.rows > 0) == expected, f"{r.label}: {r.rows} rows, expected {'some' if expected else 'none'}"

    table = _by_title(results, "Open alerts")[0]
    assert {(s["tags"]["patient_id"], s["tags"]["type"]) for s in table.series} == open_pairs
    for kind, title in (("af", "Atrial fibrillation open"), ("brady", "Bradycardia open"),
                        ("tachy", "Tachycardia open"), ("pause", "Pause open")):  # fmt: skip
        firing = {s["tags"]["patient_id"] for s in _by_title(results, title)[0].series}
        assert firing == {pid for pid, t in open_pairs if t == kind}, title
    assert _by_title(results, "Pipeline stalled")[0].rows > 0


def _tags(series: list[dict[str, Any]], key: str) -> set[str]:
    return {s["tags"][key] for s in series if "tags" in s}


def test_panels_see_every_demo_patient(demo_run: DemoRun) -> None:
    client = InfluxClient(demo_run.settings)
    results = run_all(client, demo_run.t_from_ms, demo_run.t_to_ms)
    table = _by_title(results, "Patients: current rhythm")[0]
    assert set(demo_run.sent) <= _tags(table.series, "patient_id")
    rhythm = _by_title(results, "Rhythm by patient")[0]
    assert set(demo_run.sent) <= _tags(rhythm.series, "patient_id")


def test_start_stack_reports_only_the_parts_it_started(tmp_path: Path) -> None:
    from tools.cli.demo import start_stack

    s = Settings(state_dir=tmp_path, kafka_port=free_port(), influx_port=free_port(), partitions=1)
    try:
        assert start_stack(s) == ["kafka", "influxdb"]
        assert start_stack(s) == []  # already running: the demo must not stop them
        external = s.model_copy(update={"influx_url": f"http://127.0.0.1:{s.influx_port}"})
        stack.down(s, "kafka")
        assert start_stack(external) == ["kafka"]  # an external InfluxDB is never started or stopped
    finally:
        stack.down(s)
