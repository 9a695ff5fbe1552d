"""The whole pipeline under load: real broker, ``ecgmon worker`` subprocesses, real InfluxDB.

``Workers`` starts N ``ecgmon worker`` processes with one app id (one consumer group) and waits until
every one of them is ready and the group has settled. ``run_load`` offers windows of
fresh synthetic patients at a fixed rate (windows/s; round robin over the patients, so each patient
sends at ``rate * hop_s / patients`` times real time) for ``duration_s`` and records, per window:

* produced: the window record's Kafka timestamp, set by this producer at the moment it sends;
* written: the first moment its prediction row is visible in InfluxDB. The bench reads each
  patient's ``last(seq)`` every ``INFLUX_POLL_S`` (``GROUP BY patient_id``, from the oldest window
  not yet seen); a patient's windows are completed and written in order, so every window up to it
  is written. Resolution: one poll (100 ms), an upper bound.
* also per window, ``kafka_p50_ms``/``kafka_p99_ms``: to the Kafka timestamp of its prediction
  record (the worker publishes it in the step that hands the InfluxDB points to the sink, which
  flushes by size or after ``influx_flush_ms``), so the sink's share of the latency shows.

Delivered windows/s is the rate at which the predictions of the windows sent in the steady part of
the load (after its first 30 %) come back: the offered rate while the pipeline keeps up, its service
rate when a backlog builds up (then delivered < offered).
"""

from __future__ import annotations

import asyncio
import re
import signal
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ecgmon.contracts import Prediction, Window, encode_window, wire_encoding
from ecgmon.errors import SinkError, StackError
from ecgmon.influx import InfluxClient
from ecgmon.settings import Settings
from ecgmon.stack import free_port
from tools.bench.cpu import per_window_ms, snapshot
from tools.processes import WorkerProcess, wait_until

INFLUX_POLL_S = 0.1
"""How often the bench counts prediction rows in InfluxDB during a load (the resolution of "written")."""
STEADY_FROM = 0.3
"""Delivered windows/s counts predictions after this share of the load's duration."""
COLLECT_FETCH_WAIT_MS = 500
"""The bench's own consumer of predictions: Tansu answers a fetch after about this wait whether or not
data came, at ~2 ms of broker CPU per fetch of 16 partitions (40 ms/s at the 50 ms it waited until
issue 24, 0.8 ms per window at 50 windows/s charged to the broker; 13 ms/s at 200 ms). The latency is
read from the records' own timestamps, so a longer wait only delays the end of a load by <= 0.5 s."""
HEALTH_INTERVAL_S = 1.0
"""The bench's workers write their ``pipeline`` point (with ``cpu_s`` and ``model_cpu_s``) this often."""


def bench_overrides(s: Settings, torch_threads: int) -> dict[str, str]:
    """What the bench decides for its workers beyond the stack (``stack_env``): models, batching, policy."""
    return {
        "ECGMON_DEVICE": s.device,
        "ECGMON_TORCH_THREADS": str(torch_threads),
        "ECGMON_CLASSIFIER": s.classifier,
        "ECGMON_RECONSTRUCTOR": s.reconstructor,
        "ECGMON_MC_SAMPLES": str(s.mc_samples),
        "ECGMON_MAX_BATCH": str(s.max_batch),
        "ECGMON_MAX_DELAY_MS": str(s.max_delay_ms),
        "ECGMON_QUEUE_WINDOWS": str(s.queue_windows),
        "ECGMON_RECONSTRUCTION_POLICY": s.reconstruction_policy,
        "ECGMON_MODEL_WEIGHTS": "1" if s.model_weights else "0",
        "ECGMON_KAFKA_SESSION_TIMEOUT_S": str(s.kafka_session_timeout_s),
        "ECGMON_KAFKA_REBALANCE_TIMEOUT_S": str(s.kafka_rebalance_timeout_s),
        "ECGMON_WORKER_WEB": "0",
        "ECGMON_LOG_LEVEL": "warn",
        # Every second: a load's end finds each worker's cumulative model CPU (``read_counters``) within 1 s.
        "ECGMON_HEALTH_INTERVAL_S": str(HEALTH_INTERVAL_S),
    }


class Workers:
    """N ``ecgmon worker`` subprocesses of one consumer group; ``stop`` ends exactly those it started."""

    def __init__(self, s: Settings, n: int, *, torch_threads: int, log_dir: Path) -> None:
        self.s = s
        self.n = n
        self.torch_threads = torch_threads
        self.log_dir = log_dir
        self.procs: list[WorkerProcess] = []

    def start(self, timeout_s: float, settle_s: float = 5.0) -> None:
        """Start the workers; return when each is ready and none rebalanced for ``settle_s``.

        A worker rewrites its readiness file after every rebalance, so unchanged files mean a settled group.
        """
        for i in range(self.n):
            name = f"{self.s.app_id}-{i}"
            worker = WorkerProcess(
                self.s.model_copy(update={"web_port": free_port()}),
                self.log_dir / f"{name}.log",
                name=name,
                overrides=bench_overrides(self.s, self.torch_threads),
            )
            self.procs.append(worker.start())
        stable: dict[str, Any] = {"since": None, "mtimes": None}

        def settled() -> bool:
            if not all(w.ready() for w in self.procs):
                stable.update(since=None, mtimes=None)
                return False
            mtimes = [w.ready_path().stat().st_mtime for w in self.procs]
            if mtimes != stable["mtimes"]:
                stable.update(since=time.monotonic(), mtimes=mtimes)
            return bool(time.monotonic() - stable["since"] >= settle_s)

        try:
            wait_until(settled, timeout_s, interval_s=0.5, what=f"{self.n} bench worker(s) (logs in {self.log_dir})")
        except TimeoutError as exc:
            raise StackError(f"{exc}.") from None

    def cpu_parts(self) -> dict[str, list[int]]:
        """Pids to account CPU to: these workers, and the embedded broker and influxd when they run here."""
        from ecgmon.stack import Part, read_pid

        parts = {"worker": [p.pid for p in self.procs]}
        names: dict[Part, str] = {"influxdb": "influxdb", "kafka": "broker"}
        for part, name in names.items():
            pid = read_pid(self.s, part)
            if pid is not None:
                parts[name] = [pid]
        return parts

    def tags(self) -> list[str]:
        """The ``worker`` tags of these workers' ``pipeline`` points."""
        return [p.tag for p in self.procs]

    def stop(self) -> None:
        """SIGTERM each worker's process group (all at once), SIGKILL after 20 s."""
        for worker in self.procs:
            worker.signal(signal.SIGTERM)
        for worker in self.procs:
            worker.stop(grace_s=20)
        self.procs.clear()


@dataclass
class LoadResult:
    """One offered load: what was sent, what came back, how late (ms), and whether it saturated."""

    offered_windows_per_s: float
    patients: int
    speed: float
    duration_s: float
    sent: int
    delivered: int
    delivered_windows_per_s: float
    p50_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    kafka_p50_ms: float | None
    kafka_p99_ms: float | None
    reconstructed: int
    influx_rows: int
    saturated: bool
    cpu_ms_per_window: dict[str, float] = field(default_factory=dict)
    influx_points_per_window: float | None = None
    latencies_ms: list[float] = field(default_factory=list, repr=False)

    def as_json(self) -> dict[str, Any]:
        """The entry of ``loads`` in the bench JSON (latencies summarised)."""
        out = {k: v for k, v in self.__dict__.items() if k != "latencies_ms"}
        return {k: round(v, 2) if isinstance(v, float) else v for k, v in out.items()}


@dataclass(frozen=True)
class Counters:
    """What the stack has counted by one moment: the workers' CPU and model CPU (s), the points InfluxDB took.

    ``worker_cpu_s`` and ``model_cpu_s`` come from the same ``pipeline`` point of each worker, so their
    ratio over a load is the models' share of the workers' CPU whatever the moment of the reading.
    """

    worker_cpu_s: float | None
    model_cpu_s: float | None
    influx_points: int | None


def influx_points_written(client: InfluxClient) -> int | None:
    """Points InfluxDB 1.x has accepted over HTTP since it started (``SHOW STATS``, ``httpd`` pointsWrittenOK).

    Counted by InfluxDB itself, so it is what the sink really wrote, health points included; None when
    the server does not say (InfluxDB 2.x has no ``SHOW STATS``).
    """
    try:
        series = client.query("SHOW STATS FOR 'httpd'")
    except SinkError:
        return None
    total = 0
    for row in series:
        columns = row.get("columns", [])
        if "pointsWrittenOK" not in columns or not row.get("values"):
            continue
        total += int(row["values"][0][columns.index("pointsWrittenOK")] or 0)
    return total if series else None


def workers_cpu_s(
    client: InfluxClient, tags: list[str], *, after_ms: int, timeout_s: float
) -> tuple[float, float] | None:
    """The workers' summed ``(cpu_s, model_cpu_s)`` from each one's first ``pipeline`` point at ``after_ms`` or later.

    Each worker writes one point per ``HEALTH_INTERVAL_S``; a worker without a point that recent
    within ``timeout_s`` makes the figures unknown (None).
    """
    if not tags:
        return None
    pattern = "|".join(re.escape(t) for t in tags)
    query = (
        f"SELECT first(cpu_s), first(model_cpu_s) FROM pipeline WHERE worker =~ /^({pattern})$/ "
        f"AND time >= {after_ms}ms GROUP BY worker"
    )
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            series = client.query(query)
        except SinkError:
            series = []
        values = {row.get("tags", {}).get("worker"): row["values"][0][1:3] for row in series if row.get("values")}
        if len(values) == len(tags) and all(None not in v for v in values.values()):
            return float(sum(v[0] for v in values.values())), float(sum(v[1] for v in values.values()))
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.2)


def read_counters(s: Settings, tags: list[str], *, timeout_s: float = 5.0) -> Counters:
    """The counters now: the workers' next ``pipeline`` points (<= 1 interval away) and InfluxDB's own count."""
    client = InfluxClient(s)
    now_ms = time.time_ns() // 1_000_000
    cpu = workers_cpu_s(client, tags, after_ms=now_ms, timeout_s=timeout_s)
    worker, model = (None, None) if cpu is None else cpu
    return Counters(worker, model, influx_points_written(client))


def models_share(before: Counters, after: Counters) -> float | None:
    """The models' share of the workers' CPU between two readings (None when unknown)."""
    w0, m0, w1, m1 = before.worker_cpu_s, before.model_cpu_s, after.worker_cpu_s, after.model_cpu_s
    if w0 is None or m0 is None or w1 is None or m1 is None or w1 <= w0:
        return None
    return min(max((m1 - m0) / (w1 - w0), 0.0), 1.0)


def _percentile(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


async def _collect(
    s: Settings,
    prefix: str,
    got: dict[tuple[str, int], int],
    recon: list[int],
    started: asyncio.Event,
    stop: asyncio.Event,
) -> None:
    """Read the predictions and reconstructions topics from their current end; keep this load's records."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(
        **s.aiokafka_options(), enable_auto_commit=False, fetch_max_wait_ms=COLLECT_FETCH_WAIT_MS
    )
    await consumer.start()
    try:
        tps = [
            TopicPartition(t, p) for t in (s.topic_predictions, s.topic_reconstructions) for p in range(s.partitions)
        ]
        consumer.assign(tps)
        await consumer.seek_to_end(*tps)
        for tp in tps:  # resolve the end offsets now, before any window of this load is sent
            await consumer.position(tp)
        started.set()
        key_prefix = f"{prefix}-".encode()
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=100, max_records=2000)
            now_ms = time.time_ns() // 1_000_000
            for tp, messages in batches.items():
                for m in messages:
                    if not (m.key or b"").startswith(key_prefix):
                        continue
                    if tp.topic == s.topic_reconstructions:
                        recon[0] += 1
                        continue
                    p = Prediction.from_bytes(m.value)
                    got[(p.patient_id, p.seq)] = m.timestamp if m.timestamp and m.timestamp > 0 else now_ms
    finally:
        await consumer.stop()


async def _poll_influx(
    s: Settings,
    prefix: str,
    ends_ms: Mapping[tuple[str, int], int],
    written: dict[tuple[str, int], int],
    stop: asyncio.Event,
    interval_s: float,
) -> None:
    """Every ``interval_s``, read each patient's last written seq; windows up to it count as written now.

    A patient's windows reach the sink in order (one partition, one completion task), so the first
    poll that sees ``last(seq) >= k`` for a patient is when window k was written (to within one poll).
    The query reads only rows from the end time (``ends_ms``, the prediction's timestamp) of the
    oldest window not yet seen: counting every row of the load each poll cost InfluxDB 13-17 ms of
    CPU per query (0.1-0.2 of a core at 10 polls/s, taken from the pipeline it measures), this 3 ms.
    """
    client = InfluxClient(s)
    patients = sorted({p for p, _ in ends_ms})
    seen: dict[str, int] = dict.fromkeys(patients, 0)
    while True:
        t_ms = time.time_ns() // 1_000_000
        pending = [ends_ms[(p, n)] for p, n in seen.items() if (p, n) in ends_ms]
        since = min(pending) if pending else t_ms
        query = (
            f"SELECT last(seq) FROM prediction WHERE patient_id =~ /^{prefix}-/ AND time >= {since}ms "
            "GROUP BY patient_id"
        )
        series = await asyncio.to_thread(client.query, query)
        for row in series:
            patient = row.get("tags", {}).get("patient_id", "")
            last = row["values"][0][1]
            if patient not in seen or last is None:
                continue
            for seq in range(seen[patient], int(last) + 1):
                written[(patient, seq)] = t_ms
            seen[patient] = max(seen[patient], int(last) + 1)
        if stop.is_set():
            return
        await asyncio.sleep(interval_s)


async def _run_load(
    s: Settings,
    payloads: list[tuple[str, int, bytes]],
    ends_ms: Mapping[tuple[str, int], int],
    rate: float,
    prefix: str,
    drain_s: float,
    tick: Callable[[int, int], None],
) -> tuple[dict[tuple[str, int], int], dict[tuple[str, int], int], dict[tuple[str, int], int], int, int]:
    from aiokafka import AIOKafkaProducer

    got: dict[tuple[str, int], int] = {}
    sent: dict[tuple[str, int], int] = {}
    recon = [0]
    started, stop = asyncio.Event(), asyncio.Event()
    written: dict[tuple[str, int], int] = {}
    collector = asyncio.create_task(_collect(s, prefix, got, recon, started, stop))
    stop_poll = asyncio.Event()
    poller = asyncio.create_task(_poll_influx(s, prefix, ends_ms, written, stop_poll, INFLUX_POLL_S))
    await asyncio.wait_for(started.wait(), 30)
    # As the gateway sends (``sim_linger_ms``, ``sim_batch_bytes``): the broker's cost per window depends on it.
    producer = AIOKafkaProducer(
        **s.aiokafka_options(),
        acks="all",
        linger_ms=s.sim_linger_ms,
        max_batch_size=s.sim_batch_bytes,
        max_request_size=s.max_message_bytes,
    )
    await producer.start()
    try:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        futures = []
        for k, (patient, seq, value) in enumerate(payloads):
            delay = t0 + k / rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            ts = time.time_ns() // 1_000_000
            futures.append(await producer.send(s.topic_windows, value, key=patient.encode(), timestamp_ms=ts))
            sent[(patient, seq)] = ts
            if k % 50 == 0:
                tick(len(sent), len(got))
        await asyncio.gather(*futures)
        send_end = time.time_ns() // 1_000_000
        deadline = loop.time() + drain_s
        while (len(got) < len(sent) or len(written) < len(got)) and loop.time() < deadline:
            tick(len(sent), len(written))
            await asyncio.sleep(0.2)
        tick(len(sent), len(written))
    finally:
        await producer.stop()
        stop.set()
        stop_poll.set()
        await collector
        await poller
    return sent, got, written, recon[0], send_end


def cpu_totals(cpu: Mapping[str, float], models_share: float | None) -> dict[str, float]:
    """``total`` (worker + influxdb + broker: the pipeline, not the bench's load generator) and ``models``.

    ``models`` is the workers' CPU ms per window (``/proc``) times the models' share of it, which the
    workers measure themselves (``models_share``); absent when unknown.
    """
    out = {"total": round(sum(cpu.get(k, 0.0) for k in ("worker", "influxdb", "broker")), 3)}
    if models_share is not None:
        out["models"] = round(cpu.get("worker", 0.0) * models_share, 3)
    return out


def prepare_payloads(windows: list[Window]) -> list[tuple[str, int, bytes]]:
    """``(patient_id, seq, encoded window)`` in sending order."""
    return [(w.patient_id, w.seq, encode_window(w, encoding=wire_encoding(w.samples))) for w in windows]


def run_load(
    s: Settings,
    windows: list[Window],
    *,
    rate: float,
    duration_s: float,
    patients: int,
    prefix: str,
    drain_s: float,
    tick: Callable[[int, int], None] = lambda sent, got: None,
    cpu_parts: Mapping[str, list[int]] | None = None,
    worker_tags: list[str] | None = None,
) -> LoadResult:
    """Offer ``windows`` (patient ids starting ``prefix-``) at ``rate`` windows/s and measure the pipeline.

    ``cpu_parts`` (name -> pids) adds the CPU ms per delivered window of each part (``tools.bench.cpu``);
    with ``worker_tags`` also the models' share of the workers' (``models``, from their ``pipeline``
    points) and the InfluxDB points written per delivered window (InfluxDB's own count).
    """
    payloads = prepare_payloads(windows)
    ends_ms = {(w.patient_id, w.seq): w.t_end_ns // 1_000_000 for w in windows}
    tags = worker_tags or []
    counters_before = read_counters(s, tags) if cpu_parts else None
    cpu_before = snapshot(cpu_parts or {})
    sent, got, written, reconstructed, send_end = asyncio.run(
        _run_load(s, payloads, ends_ms, rate, prefix, drain_s, tick)
    )
    cpu: dict[str, float] = {}
    points_per_window = None
    if cpu_parts:
        cpu_after = snapshot(cpu_parts)
        counters_after = read_counters(s, tags)
        assert counters_before is not None
        cpu = per_window_ms(cpu_before, cpu_after, len(got))
        cpu.update(cpu_totals(cpu, models_share(counters_before, counters_after)))
        if counters_before.influx_points is not None and counters_after.influx_points is not None and got:
            points_per_window = round((counters_after.influx_points - counters_before.influx_points) / len(got), 2)
    latencies = [float(written[k] - t) for k, t in sent.items() if k in written]
    published = [float(got[k] - t) for k, t in sent.items() if k in got]
    t_first = min(sent.values())
    steady_from = t_first + STEADY_FROM * (send_end - t_first)
    steady = [got[k] for k, t in sent.items() if t >= steady_from and k in got]
    span_s = (max(steady) - min(steady)) / 1000.0 if len(steady) > 1 else 0.0
    delivered_rate = (len(steady) - 1) / span_s if span_s > 0 else 0.0
    drained = len(got) >= len(sent)
    return LoadResult(
        offered_windows_per_s=rate,
        patients=patients,
        speed=rate * s.hop_s / patients,
        duration_s=duration_s,
        sent=len(sent),
        delivered=len(got),
        delivered_windows_per_s=delivered_rate,
        p50_ms=_percentile(latencies, 50),
        p99_ms=_percentile(latencies, 99),
        max_ms=max(latencies) if latencies else None,
        kafka_p50_ms=_percentile(published, 50),
        kafka_p99_ms=_percentile(published, 99),
        reconstructed=reconstructed,
        influx_rows=len(written),
        saturated=(not drained) or delivered_rate < 0.9 * rate,
        cpu_ms_per_window=cpu,
        influx_points_per_window=points_per_window,
        latencies_ms=latencies,
    )
