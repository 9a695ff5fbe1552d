"""The worker's own vital signs: one ``pipeline`` point every ``health_interval_s``.

Fields: ``windows_per_s`` (windows handed to the sink per second over the interval),
``batch_size_mean``, ``queue_depth`` (windows waiting for inference now), ``latency_ms_p50`` and
``latency_ms_p99`` (from a window's arrival in the worker to its outputs being handed to Kafka
and the InfluxDB sink), ``deadletter_total`` (since the worker started), and ``windows_total``,
``inference_busy``, ``inflight``, ``sink_buffered_points``, ``sink_retries``, ``consumer_lag``
(records of the input topic not yet committed, from the last fetched end offsets), ``sink_down_s``
(seconds InfluxDB has been failing writes, 0 when it answers: during an outage the points wait in
the sink's buffer and are written with their own timestamps once it is back, so the outage shows
in the ``pipeline`` measurement afterwards), ``rebalances`` (partition revocations this worker has
seen), ``dropped_total`` (windows dropped unprocessed and read again: in flight when their
partition was revoked, or handed over out of turn, see ``streams.offsets``), and ``cpu_s`` and
``model_cpu_s``: CPU seconds since the worker started of the whole process and of its model calls
(``ecgmon bench`` reads them to split a window's CPU between the models and the rest).
"""

from __future__ import annotations

import os
import socket
import time

import numpy as np

from ecgmon.influx import FieldValue
from streams.batching import BatchStats


def worker_name(configured: str) -> str:
    """The ``worker`` tag: the configured name, or ``host-pid``."""
    return configured or f"{socket.gethostname()}-{os.getpid()}"


class Health:
    """Counts what the pipeline does and renders the ``pipeline`` point."""

    def __init__(self, worker: str) -> None:
        self.worker = worker
        self.windows_total = 0
        self.deadletter_total = 0
        self._latencies_s: list[float] = []
        self._windows = 0
        self._t_last = time.monotonic()

    def window_done(self, latency_s: float) -> None:
        """A window's outputs were handed off ``latency_s`` after it arrived."""
        self.windows_total += 1
        self._windows += 1
        self._latencies_s.append(latency_s)

    def dead_lettered(self) -> None:
        """A message went to the dead-letter topic."""
        self.deadletter_total += 1

    def fields(
        self,
        *,
        stats: BatchStats,
        queue_depth: int,
        inflight: int,
        sink_buffered: int,
        sink_retries: int,
        consumer_lag: int | None = None,
        sink_down_s: float = 0.0,
        rebalances: int = 0,
        dropped_total: int = 0,
        model_cpu_s: float | None = None,
    ) -> dict[str, FieldValue | None]:
        """The fields of one ``pipeline`` point; resets the per-interval counters."""
        now = time.monotonic()
        elapsed = max(now - self._t_last, 1e-9)
        lat_ms = np.asarray(self._latencies_s) * 1000.0
        fields: dict[str, FieldValue | None] = {
            "windows_per_s": self._windows / elapsed,
            "batch_size_mean": float(np.mean(stats.sizes)) if stats.sizes else 0.0,
            "queue_depth": int(queue_depth),
            "latency_ms_p50": float(np.percentile(lat_ms, 50)) if lat_ms.size else None,
            "latency_ms_p99": float(np.percentile(lat_ms, 99)) if lat_ms.size else None,
            "deadletter_total": int(self.deadletter_total),
            "windows_total": int(self.windows_total),
            "inference_busy": min(stats.busy_s / elapsed, 1.0),
            "inflight": int(inflight),
            "sink_buffered_points": int(sink_buffered),
            "sink_retries": int(sink_retries),
            "consumer_lag": consumer_lag,
            "sink_down_s": float(sink_down_s),
            "rebalances": int(rebalances),
            "dropped_total": int(dropped_total),
            "cpu_s": round(time.process_time(), 3),
            "model_cpu_s": None if model_cpu_s is None else round(model_cpu_s, 3),
        }
        self._latencies_s = []
        self._windows = 0
        self._t_last = now
        return fields
