"""Where the CPU goes during a load: seconds of CPU per part of the stack, from ``/proc/<pid>/stat``.

On one machine the worker shares its cores with the broker, InfluxDB and the bench's own load
generator, so "the pipeline is slower than the model" needs a breakdown: CPU milliseconds per
delivered window for each part (worker processes, influxd, the broker, the bench process). CPU
time, unlike wall time, does not grow when a neighbour takes the core, so the figures stay
comparable between a quiet and a shared machine. Linux only; elsewhere every part reads 0.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

from tools.procstat import cpu_seconds


@dataclass(frozen=True)
class CpuSnapshot:
    """CPU seconds of every part at one moment, and the wall clock then."""

    t: float
    seconds: dict[str, float]


def snapshot(parts: Mapping[str, list[int]]) -> CpuSnapshot:
    """CPU seconds per part (summed over its pids); ``bench`` is this process."""
    seconds = {name: sum(cpu_seconds(pid) or 0.0 for pid in pids) for name, pids in parts.items()}
    seconds["bench"] = time.process_time()
    return CpuSnapshot(time.monotonic(), seconds)


def per_window_ms(before: CpuSnapshot, after: CpuSnapshot, windows: int) -> dict[str, float]:
    """CPU ms per window of each part between two snapshots, plus ``cores_busy`` (all parts / wall)."""
    spent = {k: after.seconds[k] - before.seconds.get(k, 0.0) for k in after.seconds}
    out = {k: round(1e3 * v / max(windows, 1), 3) for k, v in spent.items()}
    out["cores_busy"] = round(sum(spent.values()) / max(after.t - before.t, 1e-9), 3)
    return out
