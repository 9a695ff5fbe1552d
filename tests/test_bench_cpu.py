"""CPU accounting of the bench: per-part CPU seconds from /proc, turned into ms per window."""

from __future__ import annotations

import os
import sys
import time

import pytest

from tools.bench.cpu import CpuSnapshot, per_window_ms, snapshot
from tools.procstat import cpu_seconds

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


def test_cpu_seconds_grow_with_work_and_unknown_pids_read_none() -> None:
    before = cpu_seconds(os.getpid()) or 0.0
    t_end = time.process_time() + 0.3
    while time.process_time() < t_end:
        pass
    assert (cpu_seconds(os.getpid()) or 0.0) - before >= 0.2
    assert cpu_seconds(2**22 + 12345) is None


def test_per_window_ms_divides_each_part_and_reports_cores_busy() -> None:
    a = CpuSnapshot(10.0, {"worker": 1.0, "influxd": 0.5, "bench": 2.0})
    b = CpuSnapshot(12.0, {"worker": 2.0, "influxd": 0.9, "bench": 2.2})
    out = per_window_ms(a, b, 200)
    assert out == {"worker": 5.0, "influxd": 2.0, "bench": 1.0, "cores_busy": 0.8}


def test_snapshot_counts_this_process_as_bench() -> None:
    snap = snapshot({"self": [os.getpid()]})
    assert set(snap.seconds) == {"self", "bench"} and snap.seconds["self"] > 0
