"""A real ``ecgmon worker`` on the real broker and influxd: windows in, outputs out, bad input dead-lettered.

One worker subprocess serves both checks (it takes ~20-30 s to join its group), with its own app id
and topics. It loads the committed weights, so a deleted weight file fails here rather than hiding.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Iterator

import neurokit2 as nk
import numpy as np
import pytest
from kafka import KafkaProducer, TopicPartition

from ecgmon.contracts import Alert, DeadLetter, Prediction, Reconstruction, Window, decode_window, encode_window
from ecgmon.full_disclosure import read_strip
from ecgmon.influx import InfluxClient
from ecgmon.settings import Settings
from ecgmon.stack import create_topics, free_port, kafka_admin
from tests.conftest import WORKER_READY_S, make_worker
from tools.delivery import consume_all
from tools.processes import WorkerProcess, wait_until

pytestmark = pytest.mark.integration

MAX_BYTES = 65_536
PATIENTS = 5
WINDOWS = 4  # per patient: 3 before the malformed messages, 1 after
FLAT = 3  # lead-off windows of one more patient: enough to open a technical alert
DUPLICATE = 1  # the flat patient's seq 1 once more: harmless
RUN_TIMES = "time >= 1700000000000ms AND time < 1700000100000ms"  # every window's points are in here


def _settings(stack: Settings, prefix: str) -> Settings:
    return stack.namespaced(prefix).model_copy(update={"max_message_bytes": MAX_BYTES, "web_port": free_port()})


PIPELINE_ENV = {
    "ECGMON_MAX_MESSAGE_BYTES": str(MAX_BYTES),
    "ECGMON_MODEL_WEIGHTS": "1",  # the committed weights: a deleted weight file fails this test
    "ECGMON_MC_SAMPLES": "2",
    "ECGMON_RECONSTRUCTION_POLICY": "every_k",
    "ECGMON_RECONSTRUCTION_EVERY_K": "2",
    "ECGMON_LIVE_WAVEFORM": "alert_open",
}


@pytest.fixture(scope="module")
def worker(stack_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerProcess]:
    """A running worker (subprocess) with fresh topics and app id."""
    s = _settings(stack_settings, f"w{os.getpid()}x{free_port()}")
    create_topics(s.bootstrap, s.topics(), s.partitions)
    w = make_worker(s, s.app_id, tmp_path_factory.mktemp("worker"), **PIPELINE_ENV)
    try:
        w.start().wait_ready(WORKER_READY_S)
        yield w
    finally:
        w.stop()


def _window(patient: str, seq: int) -> Window:
    samples = nk.ecg_simulate(duration=10, sampling_rate=250, heart_rate=60 + 5 * seq, random_state=seq)
    return Window(
        patient_id=patient,
        device_id="dev-1",
        seq=seq,
        t_start_ns=1_700_000_000_000_000_000 + seq * 10**10,
        fs_hz=250.0,
        samples=samples,
        truth="N",
    )


def _malformed(patient: str) -> dict[bytes, bytes]:
    good = encode_window(_window(patient, 0))
    nan = bytearray(encode_window(_window(patient, 0), encoding="float32"))
    nan[-4:] = struct.pack("<f", float("nan"))
    version = bytearray(good)
    version[4] = 2
    return {
        b"bad-random": np.random.default_rng(1).bytes(777),
        b"bad-empty": b"",
        b"bad-truncated": good[: len(good) // 2],
        b"bad-nan": bytes(nan),
        b"bad-oversized": b"ECGW" + bytes(MAX_BYTES),
        b"bad-version": bytes(version),
        b"bad-text": b"patient_id=p1 samples=0.1,0.2,0.3 and a lot more text to pass the header size",
    }


def _consume(s: Settings, topic: str, want: int) -> list[tuple[bytes | None, bytes]]:
    """Every record of ``topic``, once there are at least ``want``."""
    out: list[tuple[bytes | None, bytes]] = []

    def enough() -> bool:
        out[:] = [(k, v) for k, v, _, _ in consume_all(s, topic, idle_ms=500)]
        return len(out) >= want

    wait_until(enough, timeout_s=90, interval_s=0.5, what=f"{want} records on {topic}")
    return out


def test_windows_in_outputs_out_and_malformed_dead_lettered(worker: WorkerProcess, influx: InfluxClient) -> None:
    s = worker.settings
    patients = [f"{s.app_id}-p{i}" for i in range(PATIENTS)]
    bad = _malformed(patients[0])
    producer = KafkaProducer(bootstrap_servers=s.bootstrap, max_request_size=4 * MAX_BYTES)
    for seq in range(WINDOWS - 1):
        for p in patients:
            producer.send(s.topic_windows, key=p.encode(), value=encode_window(_window(p, seq)))
    for key, value in bad.items():
        producer.send(s.topic_windows, key=key, value=value)
    for p in patients:  # after the bad input: the worker must keep serving
        producer.send(s.topic_windows, key=p.encode(), value=encode_window(_window(p, WINDOWS - 1)))
    flat = f"{s.app_id}-flat"
    for seq in range(FLAT):
        w = Window(
            patient_id=flat,
            device_id="dev-2",
            seq=seq,
            t_start_ns=1_700_000_000_000_000_000 + seq * 10**10,
            fs_hz=250.0,
            samples=np.full(2500, 0.1),
        )
        producer.send(s.topic_windows, key=flat.encode(), value=encode_window(w))
        if seq == FLAT - 1:
            duplicate = Window(
                patient_id=flat,
                device_id="dev-2",
                seq=1,
                t_start_ns=1_700_000_010_000_000_000,
                fs_hz=250.0,
                samples=np.full(2500, 0.1),
            )
            producer.send(s.topic_windows, key=flat.encode(), value=encode_window(duplicate))
    producer.flush()
    producer.close()

    # Predictions for every patient and window, in InfluxDB and on the predictions topic.
    def all_in_influx() -> bool:
        rows = influx.query(
            f"SELECT COUNT(confidence) FROM prediction WHERE patient_id =~ /^{s.app_id}-p/ GROUP BY patient_id"
        )
        counts = {r["tags"]["patient_id"]: r["values"][0][1] for r in rows}
        return counts == {p: WINDOWS for p in patients}

    wait_until(all_in_influx, timeout_s=120, interval_s=0.5, what="predictions of every patient in InfluxDB")
    every = [
        Prediction.from_bytes(v) for _, v in _consume(s, s.topic_predictions, PATIENTS * WINDOWS + FLAT + DUPLICATE)
    ]
    preds = [p for p in every if p.patient_id != flat]
    assert sorted((p.patient_id, p.seq) for p in preds) == sorted((p, q) for p in patients for q in range(WINDOWS))
    for pred in preds:
        assert pred.label in pred.probs and abs(sum(pred.probs.values()) - 1.0) < 1e-3 and 0.0 <= pred.sqi <= 1.0
        assert pred.hr_bpm is not None and abs(pred.hr_bpm - (60 + 5 * pred.seq)) < 3.0  # the simulated rate
        assert pred.truth == "N" and pred.t_end_ns == 1_700_000_000_000_000_000 + (pred.seq + 1) * 10**10
    latest = influx.query(f"SELECT * FROM prediction WHERE patient_id = '{patients[0]}' ORDER BY time DESC LIMIT 1")
    row = dict(zip(latest[0]["columns"], latest[0]["values"][0], strict=True))
    assert row["time"] == (1_700_000_000_000_000_000 + WINDOWS * 10**10) // 10**6  # stamped at the window end
    schema = {"label", "confidence", "uncertainty", "p_N", "p_A", "p_O", "p_~", "hr_bpm", "sqi", "seq", "model"}
    assert schema <= set(row)

    # Every malformed message on the dead-letter topic under its original key, with its bytes.
    letters = {k: DeadLetter.from_bytes(v) for k, v in _consume(s, s.topic_deadletter, len(bad))}
    assert set(letters) == set(bad)
    for letter_key, env in letters.items():
        assert letter_key is not None and env.reason and env.topic == s.topic_windows and env.offset >= 0
        assert bytes.fromhex(env.value_hex) == bad[letter_key][: s.deadletter_keep_bytes]
    assert "exceeds" in letters[b"bad-oversized"].reason and "NaN" in letters[b"bad-nan"].reason

    # Reconstructions by policy (every 2nd window), to Kafka at display rate and packed in InfluxDB.
    recs = [Reconstruction.from_bytes(v) for _, v in _consume(s, s.topic_reconstructions, PATIENTS * 2)]
    assert sorted({r.seq for r in recs}) == [0, 2]
    assert all(len(r.leads) == 11 and len(r.leads["V1"]) == int(10 * s.display_hz) for r in recs)

    # A patient without an open alert costs InfluxDB one prediction and one packed lead I per window,
    # plus one packed point per reconstructed lead when reconstructed; no per-sample points at all.
    quiet = patients[1]
    strip_per_window = (
        f"SELECT COUNT(n) FROM ecg_strip WHERE patient_id = '{quiet}' AND {RUN_TIMES} GROUP BY time(10s) fill(none)"
    )

    def strips_in() -> bool:
        rows = influx.query(strip_per_window)
        return bool(rows) and sum(v[1] for v in rows[0]["values"]) == WINDOWS + 2 * 11

    wait_until(strips_in, timeout_s=30, what="the packed strips of every window")
    per_window = [v[1] + 1 for v in influx.query(strip_per_window)[0]["values"]]  # + its one prediction
    assert per_window == [2 + 11, 2, 2 + 11, 2]
    series = {
        row[0].split(",", 1)[0]
        for r in influx.query(f"SHOW SERIES WHERE patient_id = '{quiet}'")
        for row in r["values"]
    }
    assert series == {"prediction", "ecg_strip"}  # no ecg_lead_i, no reconstruction (live only with an open alert)
    # ... and full disclosure gives back every sample the device sent (int16 at 1 µV: lossless).
    t0_ms = 1_700_000_000_000
    strip = read_strip(influx, quiet, t0_ms, t0_ms + WINDOWS * 10_000 - 1)
    sent = np.concatenate([decode_window(encode_window(_window(quiet, q))).samples for q in range(WINDOWS)])
    assert strip.fs_hz == 250.0 and strip.points == WINDOWS and len(strip.values) == len(sent)
    assert np.max(np.abs(strip.values - sent)) < 1e-6
    v1 = read_strip(influx, quiet, t0_ms, t0_ms + WINDOWS * 10_000 - 1, lead="V1")
    assert v1.points == 2 and v1.sd is not None and np.isfinite(v1.values).sum() == 2 * 10 * v1.fs_hz

    # The lead-off patient: a technical alert, opened once, on the alerts topic and in InfluxDB.
    alerts = [Alert.from_bytes(v) for k, v in _consume(s, s.topic_alerts, 1) if k == flat.encode()]
    assert [(a.type, a.state) for a in alerts] == [("technical", "opened")]
    flat_pred = [p for p in every if p.patient_id == flat]
    assert all(p.sqi == 0.0 and p.hr_bpm is None for p in flat_pred)
    assert sorted(p.seq for p in flat_pred) == [0, 1, 1, 2]  # the duplicate is re-emitted, and nothing else
    flat_points = f"SELECT COUNT(sqi) FROM prediction WHERE patient_id = '{flat}'"
    wait_until(lambda: influx.count(flat_points) == FLAT, timeout_s=30, what="one point per flat window")
    query = f"SELECT COUNT(severity) FROM alert WHERE patient_id = '{flat}' AND type = 'technical'"
    wait_until(lambda: influx.count(query) == 1, timeout_s=30, what="the technical alert in InfluxDB")

    # The worker reports on itself, and commits offsets once outputs are written.
    def health() -> bool:
        rows = influx.query(
            f"SELECT last(windows_total), last(deadletter_total) FROM pipeline WHERE worker = '{s.app_id}'"
        )
        return any(
            r["values"][0][1] == PATIENTS * WINDOWS + FLAT + DUPLICATE and r["values"][0][2] == len(bad) for r in rows
        )

    wait_until(health, timeout_s=30, what="a pipeline point counting every window and dead letter")
    admin = kafka_admin(s.bootstrap)
    try:

        def committed() -> bool:
            tps = [TopicPartition(s.topic_windows, p) for p in range(s.partitions)]
            offsets = admin.list_group_offsets({s.app_id: tps})[s.app_id]
            total = sum(max(o.offset, 0) for o in offsets.values())
            return bool(total == PATIENTS * WINDOWS + FLAT + DUPLICATE + len(bad))

        wait_until(committed, timeout_s=30, interval_s=0.5, what="committed offsets of every record")
    finally:
        admin.close()

    def caught_up() -> bool:
        rows = influx.query(
            f"SELECT last(consumer_lag) FROM pipeline WHERE time > now() - 5s AND worker = '{s.app_id}'"
        )
        return any(r["values"][0][1] == 0 for r in rows)

    wait_until(caught_up, timeout_s=30, what="a pipeline point with no consumer lag")
    json.dumps([p.probs for p in preds])  # records stay JSON-able
    assert worker.alive(), f"worker died:\n{worker.tail()}"


def test_alert_state_survives_a_worker_restart(worker: WorkerProcess, influx: InfluxClient) -> None:
    """The table's changelog brings a patient's open alert back: good windows after a restart resolve it."""
    s = worker.settings
    patient = f"{s.app_id}-restart"
    producer = KafkaProducer(bootstrap_servers=s.bootstrap)
    for seq in range(FLAT):
        w = Window(
            patient_id=patient,
            device_id="dev-3",
            seq=seq,
            t_start_ns=1_700_000_000_000_000_000 + seq * 10**10,
            fs_hz=250.0,
            samples=np.full(2500, -0.2),
        )
        producer.send(s.topic_windows, key=patient.encode(), value=encode_window(w))
    producer.flush()
    query = f"SELECT COUNT(severity) FROM alert WHERE patient_id = '{patient}' AND type = 'technical'"
    wait_until(lambda: influx.count(query) == 1, timeout_s=60, what="the technical alert before the restart")

    worker.stop()
    worker.start().wait_ready(WORKER_READY_S)
    for seq in range(FLAT, FLAT + 3):
        producer.send(s.topic_windows, key=patient.encode(), value=encode_window(_window(patient, seq)))
    producer.flush()
    producer.close()
    wait_until(lambda: influx.count(query) == 2, timeout_s=90, what="the technical alert's resolution after restart")
    events = [Alert.from_bytes(v) for k, v in _consume(s, s.topic_alerts, 1) if k == patient.encode()]
    assert [(a.type, a.state) for a in events] == [("technical", "opened"), ("technical", "resolved")]
    assert events[0].alert_id == events[1].alert_id
    # While the alert was open, the windows also got live per-sample points for Grafana; before it, none.
    display = int(10 * s.display_hz)
    where = f"patient_id = '{patient}' AND {RUN_TIMES}"
    live = influx.query(f"SELECT COUNT(value) FROM ecg_lead_i WHERE {where} GROUP BY time(10s) fill(none)")
    counts = {v[0]: v[1] for v in live[0]["values"]} if live else {}
    assert counts and set(counts.values()) == {display} and 1_700_000_000_000 not in counts
    assert influx.count(f"SELECT COUNT(n) FROM ecg_strip WHERE {where} AND lead = 'I'") == FLAT + 3  # all packed
