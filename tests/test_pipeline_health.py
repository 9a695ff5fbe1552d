"""The ``pipeline`` health point: rates, percentiles and totals from what the pipeline counted."""

from __future__ import annotations

from collections import deque

from ecgmon.points import pipeline_line
from streams.batching import BatchStats
from streams.health import Health, worker_name


def test_fields_summarise_the_interval_and_reset() -> None:
    h = Health("w1")
    for ms in range(1, 101):
        h.window_done(ms / 1000.0)
    h.dead_lettered()
    stats = BatchStats(batches=2, items=100, busy_s=0.0, sizes=deque([60, 40]))
    f = h.fields(stats=stats, queue_depth=7, inflight=9, sink_buffered=11, sink_retries=0, consumer_lag=3)
    assert f["latency_ms_p50"] == 50.5 and 99.0 < float(f["latency_ms_p99"] or 0) < 100.0  # type: ignore[arg-type]
    assert f["batch_size_mean"] == 50.0 and f["queue_depth"] == 7 and f["deadletter_total"] == 1
    assert f["windows_total"] == 100 and float(f["windows_per_s"] or 0) > 0  # type: ignore[arg-type]
    again = h.fields(stats=BatchStats(), queue_depth=0, inflight=0, sink_buffered=0, sink_retries=0)
    assert again["windows_per_s"] == 0 and again["latency_ms_p50"] is None and again["deadletter_total"] == 1
    line = pipeline_line("w 1", again, 5_000_000)
    assert line.startswith("pipeline,worker=w\\ 1 windows_per_s=0.0,batch_size_mean=0.0,queue_depth=0i,")
    assert "latency_ms_p50" not in line and line.endswith(" 5")


def test_worker_name_defaults_to_host_and_pid() -> None:
    assert worker_name("edge-7") == "edge-7"
    assert worker_name("").rsplit("-", 1)[1].isdigit()
