"""Issue 13 at CI size: two workers share the patients; one dies, rejoins, the other leaves.

Two ``ecgmon worker`` processes with one app id share a 4-partition topic. Patients are chosen so
that every partition holds one lead-off patient (whose technical alert opens early and stays open)
and one patient with a normal ECG. Rounds of windows are sent throughout; after the alerts are
open one worker is killed with SIGKILL and the survivor takes all partitions (restoring the alert
state from the changelog); then the killed one starts again and joins (the partitions are split
again); then the other stops with SIGTERM and leaves. Every window ends with exactly one
``prediction`` row, every lead-off patient has exactly one opened technical alert (its open
episode moved with its partition three times and was neither re-opened nor lost), and the health
points show the rebalances.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import neurokit2 as nk
import numpy as np
import pytest
from kafka import KafkaProducer
from kafka.partitioner.default import murmur2

from ecgmon.contracts import Alert, Window, encode_window
from ecgmon.influx import InfluxClient
from ecgmon.settings import Settings
from ecgmon.stack import create_topics, free_port
from tests.conftest import WORKER_READY_S, make_worker
from tests.test_reliability import alert_episodes_ok, isolated_settings, safe_count
from tools.delivery import consume_all
from tools.processes import wait_until

pytestmark = pytest.mark.integration

ROUNDS = 32
KILL_AT, JOIN_AT, LEAVE_AT = 10, 16, 24  # rounds sent before each event
ROUND_S = 0.4
T0_NS = 1_100_000_000 * 10**9


def _partition(key: str, partitions: int) -> int:
    """The partition Kafka's default partitioner (murmur2, as in aiokafka and the Java client) picks."""
    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions


def _one_per_partition(prefix: str, partitions: int) -> list[str]:
    """Patient ids ``prefix-<n>``, the first that lands in each partition."""
    chosen: dict[int, str] = {}
    n = 0
    while len(chosen) < partitions:
        pid = f"{prefix}-{n}"
        chosen.setdefault(_partition(pid, partitions), pid)
        n += 1
    return [chosen[p] for p in range(partitions)]


def _window(patient: str, seq: int, samples: np.ndarray) -> Window:
    return Window(
        patient_id=patient, device_id="dev", seq=seq, t_start_ns=T0_NS + seq * 10**10, fs_hz=250.0, samples=samples
    )


def test_two_workers_share_patients_and_one_takes_over_after_kill9(
    stack_settings: Settings, influx: InfluxClient, tmp_path_factory: pytest.TempPathFactory
) -> None:
    s = isolated_settings(stack_settings, f"so{os.getpid()}x{free_port()}")
    create_topics(s.bootstrap, s.topics(), s.partitions)
    log_dir: Path = tmp_path_factory.mktemp("scaleout")
    flat = _one_per_partition(f"{s.app_id}-flat", s.partitions)
    normal = _one_per_partition(f"{s.app_id}-ok", s.partitions)
    ecg = [nk.ecg_simulate(duration=10, sampling_rate=250, heart_rate=70, random_state=i) for i in range(4)]
    workers = [make_worker(s, f"{s.app_id}-w{i}", log_dir) for i in range(2)]
    producer = KafkaProducer(bootstrap_servers=s.bootstrap, linger_ms=5)
    try:
        for w in workers:
            w.start()
        for w in workers:
            w.wait_ready(WORKER_READY_S)

        def both_serving() -> bool:
            rows = influx.query(
                f"SELECT last(windows_total) FROM pipeline WHERE worker =~ /^{s.app_id}-w/ GROUP BY worker"
            )
            return len([r for r in rows if r["values"][0][1] > 0]) == 2

        def send_round(seq: int) -> None:
            for p in flat:
                producer.send(s.topic_windows, key=p.encode(), value=encode_window(_window(p, seq, np.full(2500, 0.1))))
            for i, p in enumerate(normal):
                producer.send(
                    s.topic_windows, key=p.encode(), value=encode_window(_window(p, seq, ecg[(i + seq) % len(ecg)]))
                )
            producer.flush()

        for seq in range(KILL_AT):
            send_round(seq)
            time.sleep(ROUND_S)
        # Both workers own partitions (the patients are split) and every lead-off alert is open.
        wait_until(both_serving, timeout_s=60, what="both workers writing windows")
        opened = f"SELECT COUNT(severity) FROM alert WHERE patient_id =~ /^{s.app_id}-flat/ AND state = 'opened'"
        wait_until(lambda: safe_count(influx, opened) == len(flat), timeout_s=60, what="every technical alert open")

        victim, survivor = workers
        victim.kill()
        for seq in range(KILL_AT, JOIN_AT):
            send_round(seq)
            time.sleep(ROUND_S)
        # The survivor alone serves every patient, the killed worker's partitions included.
        last = f"SELECT COUNT(sqi) FROM prediction WHERE patient_id =~ /^{s.app_id}-/ AND seq = {JOIN_AT - 1}"
        wait_until(
            lambda: safe_count(influx, last) == len(flat) + len(normal),
            timeout_s=90,
            interval_s=0.5,
            what="the survivor serving every patient",
        )
        victim.start().wait_ready(WORKER_READY_S)  # joins again: the partitions are split again
        for seq in range(JOIN_AT, LEAVE_AT):
            send_round(seq)
            time.sleep(ROUND_S)
        survivor.stop()  # SIGTERM: leaves the group; the rejoined worker takes everything
        for seq in range(LEAVE_AT, ROUNDS):
            send_round(seq)
            time.sleep(ROUND_S)

        preds = f"SELECT COUNT(sqi) FROM prediction WHERE patient_id =~ /^{s.app_id}-/"
        total = ROUNDS * (len(flat) + len(normal))
        wait_until(
            lambda: safe_count(influx, preds) >= total, timeout_s=120, interval_s=1, what=f"{total} prediction rows"
        )
        time.sleep(3)  # a late replay would add rows now; it must overwrite instead
        assert influx.count(preds) == total
        rows = influx.query(preds + " GROUP BY patient_id")
        assert {r["tags"]["patient_id"]: r["values"][0][1] for r in rows} == {p: ROUNDS for p in flat + normal}

        # Each lead-off patient: one technical episode, opened once (same id in InfluxDB and on Kafka).
        episodes = alert_episodes_ok(influx, f"^{s.app_id}-")
        for p in flat:
            assert [state for state, _ in episodes[(p, "technical")]] == ["opened"], episodes[(p, "technical")]
        assert influx.count(opened) == len(flat)
        kafka_alerts = [Alert.from_bytes(v) for _, v, _, _ in consume_all(s, s.topic_alerts)]
        opened_ids = {a.alert_id for a in kafka_alerts if a.state == "opened" and a.type == "technical"}
        assert opened_ids == {f"{p}:technical:1" for p in flat}  # opened at the 2nd poor window, seq 1

        # Health shows the rebalances: the survivor lost partitions when the killed worker rejoined.
        health = influx.query(f"SELECT max(rebalances) FROM pipeline WHERE worker = '{survivor.tag}'")
        assert health and health[0]["values"][0][1] >= 1
        assert victim.alive(), victim.tail()
    finally:
        producer.close()
        for w in workers:
            w.stop()
