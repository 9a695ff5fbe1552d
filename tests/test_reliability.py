"""Issue 9's Done-when at CI size: InfluxDB stopped and the worker killed -9 during a simulated run.

12 simulated patients stream 240 simulated seconds at 8x speed (``ecgmon simulate --json`` reports
the windows sent) together with hostile messages; InfluxDB is stopped for ~15 s (the sink's
bounded buffer fills and back-pressures the consumer), then started again; once the pipeline
health shows the outage, the worker is killed with SIGKILL and a new one started. In the end the
``prediction`` measurement holds exactly one row per window sent, every hostile message is
dead-lettered once, and no alert episode is duplicated (state comes back from the changelog).

The helpers here (``isolated_settings``, ``alert_episodes_ok``, ``safe_count``) also serve the scale-out test.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from kafka import KafkaProducer

from ecgmon import stack
from ecgmon.contracts import DeadLetter
from ecgmon.errors import SinkError
from ecgmon.influx import InfluxClient
from ecgmon.settings import Settings
from ecgmon.stack import create_topics, free_port
from tests.conftest import WORKER_READY_S, make_worker, sibling_env
from tools.delivery import check_alert_episodes, consume_all
from tools.processes import Child, ecgmon_argv, wait_until

pytestmark = pytest.mark.integration

PATIENTS = 12
SIM_S = 240
SPEED = 8
HOSTILE = 150
OUTAGE_S = 15


def isolated_settings(base: Settings, prefix: str) -> Settings:
    """``base`` with this test's own app id and topics."""
    return base.namespaced(prefix).model_copy(update={"web_port": free_port()})


def safe_count(influx: InfluxClient, query: str) -> int:
    """``influx.count`` that reads -1 while InfluxDB is away."""
    try:
        return influx.count(query)
    except SinkError:
        return -1


def alert_episodes_ok(
    influx: InfluxClient, patient_regex: str, where: str = "time > 0"
) -> dict[tuple[str, str], list[tuple[str, str]]]:
    """Every (patient, type)'s alert events in time order, asserted free of duplicated episodes
    (``tools.delivery.check_alert_episodes``); returns the events for further checks."""
    check = check_alert_episodes(influx, patient_regex, where)
    assert not check.problems, check.problems
    return check.events


def hostile_messages(n: int, rng: np.random.Generator) -> list[tuple[bytes | None, bytes]]:
    """``n`` messages no decoder should accept: random bytes, a bare magic, and short text."""
    out: list[tuple[bytes | None, bytes]] = []
    for i in range(n):
        kind = i % 3
        key = None if i % 5 == 0 else rng.bytes(int(rng.integers(1, 40)))
        if kind == 0:
            value = rng.bytes(int(rng.integers(1, 4000)))
        elif kind == 1:
            value = b"ECGW" + rng.bytes(int(rng.integers(0, 200)))
        else:
            value = f"not a window {i}".encode()
        out.append((key, value))
    return out


@pytest.fixture()
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("reliability")


@pytest.fixture()
def influx_restored(stack_settings: Settings) -> Iterator[Settings]:
    """The shared stack, with InfluxDB started again whatever the test does to it."""
    try:
        yield stack_settings
    finally:
        stack.up(stack_settings, only="influxdb")


def test_no_window_lost_through_an_influx_outage_and_a_worker_kill(
    influx_restored: Settings, influx: InfluxClient, run_dir: Path
) -> None:
    s = isolated_settings(influx_restored, f"rel{os.getpid()}x{free_port()}")
    create_topics(s.bootstrap, s.topics(), s.partitions)
    worker = make_worker(s, f"{s.app_id}-a", run_dir)
    sim: Child | None = None
    try:
        worker.start().wait_ready(WORKER_READY_S)
        summary_path = run_dir / "sim.json"
        # A recording clock of its own (far from other tests' simulated patients sim-00000...).
        start_ns = 1_000_000_000 * 10**9 + (free_port() * 7919 % 10**5) * 10**12
        sim_argv = ecgmon_argv(
            "simulate", "--patients", str(PATIENTS), "--duration", str(SIM_S), "--speed", str(SPEED),
            "--seed", "9", "--start-ns", str(start_ns), "--json", str(summary_path),
        )  # fmt: skip
        sim = Child("the simulator", sim_argv, run_dir / "sim.log", sibling_env(s, "sim")).start()
        producer = KafkaProducer(bootstrap_servers=s.bootstrap)
        for key, value in hostile_messages(HOSTILE, np.random.default_rng(4)):
            producer.send(s.topic_windows, key=key, value=value)
        producer.flush()
        producer.close()
        in_run = f"time >= {start_ns // 10**6 - 60_000}ms AND time <= {start_ns // 10**6 + (SIM_S + 60) * 1000}ms"
        preds = f"SELECT COUNT(sqi) FROM prediction WHERE patient_id =~ /^sim-/ AND {in_run}"
        wait_until(lambda: safe_count(influx, preds) > 0, timeout_s=60, what="the first windows written")

        stack.down(influx_restored, only="influxdb")  # the outage: the sink buffers, then back-pressures
        time.sleep(OUTAGE_S)
        assert worker.alive(), "the worker must survive the outage"
        stack.up(influx_restored, only="influxdb")

        outage = f"SELECT max(sink_down_s), max(sink_buffered_points) FROM pipeline WHERE worker = '{worker.tag}'"

        def outage_reported() -> bool:
            try:
                rows = influx.query(outage)
            except SinkError:
                return False
            return bool(rows) and (rows[0]["values"][0][1] or 0) >= OUTAGE_S / 2

        wait_until(outage_reported, timeout_s=60, what="pipeline health showing the outage")
        worker.kill()  # mid-run, with windows in flight and unacknowledged
        worker = make_worker(s, f"{s.app_id}-b", run_dir)
        worker.start().wait_ready(WORKER_READY_S)
        assert sim.proc is not None and sim.proc.wait(timeout=120) == 0, sim.tail()
        summary = json.loads(summary_path.read_text())
        sent = int(summary["windows"])
        assert sent == PATIENTS * SIM_S // 10 and summary["errors"] == 0
        patients = sorted(summary["per_patient"])
        regex = "^(" + "|".join(patients) + ")$"
        wait_until(lambda: safe_count(influx, preds) >= sent, timeout_s=120, interval_s=1, what=f"{sent} predictions")
        time.sleep(3)  # anything replayed late would add rows now; it must overwrite instead
        assert influx.count(preds) == sent

        per_patient = influx.query(preds + " GROUP BY patient_id")
        counts = {r["tags"]["patient_id"]: r["values"][0][1] for r in per_patient}
        assert counts == {p: int(v["windows"]) for p, v in summary["per_patient"].items()}

        # Every hostile message dead-lettered (at least once; once per original offset).
        letters = [DeadLetter.from_bytes(v) for _, v, _, _ in consume_all(s, s.topic_deadletter)]
        assert len({(d.partition, d.offset) for d in letters}) == HOSTILE
        assert all(d.reason for d in letters)

        # Alerts: technical episodes from the simulated lead-off spans, none duplicated across the kill.
        episodes = alert_episodes_ok(influx, regex, in_run)
        assert episodes, "the simulated artefacts should open at least one technical alert"

        # Health showed the outage and the consumer's back-pressure (the buffer reached its bound).
        row = influx.query(outage)[0]["values"][0]
        assert row[1] >= OUTAGE_S / 2 and row[2] > 0
    finally:
        if sim is not None:
            sim.kill()
        worker.stop()
