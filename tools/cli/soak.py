"""``ecgmon soak``: run a worker under simulated load for minutes or hours and sample its memory.

Not a test (it takes as long as you ask): it answers "does the worker's memory stay bounded?".
It starts ``ecgmon worker`` (one process, or ``--processes N`` under the supervisor) and
``ecgmon simulate`` against the running stack (``ecgmon up`` first), samples the resident set size
(RSS, from ``/proc``, so Linux only) of every worker process every ``--interval-s``, and reports
the growth after a warm-up: the first ``--warmup-min`` minutes (models loading, buffers and
allocator pools filling) are left out of the fit. It also reports the workers' CPU seconds per
window sent (``/proc/<pid>/stat``), the figure capacity planning divides by. ``--json OUT`` keeps
every sample.
"""

from __future__ import annotations

import json
import signal
import sys
import time
from pathlib import Path
from typing import Annotated, Any, Optional

import numpy as np
import typer

from ecgmon.errors import ConfigError, StackError
from ecgmon.settings import get_settings
from tools.processes import Child, WorkerProcess, ecgmon_argv, stack_env
from tools.procstat import children, cpu_seconds, rss_mb


def growth(samples: list[tuple[float, float]], warmup_s: float) -> dict[str, float | None]:
    """RSS after warm-up: first, last, max, and the least-squares slope in MiB per hour."""
    kept = [(t, m) for t, m in samples if t >= warmup_s]
    if len(kept) < 2:
        return {"rss_start_mb": None, "rss_end_mb": None, "rss_max_mb": None, "growth_mb": None, "slope_mb_per_h": None}
    t = np.array([x for x, _ in kept])
    m = np.array([y for _, y in kept])
    slope_per_s = float(np.polyfit(t, m, 1)[0])
    return {
        "rss_start_mb": round(float(m[0]), 1),
        "rss_end_mb": round(float(m[-1]), 1),
        "rss_max_mb": round(float(m.max()), 1),
        "growth_mb": round(float(m[-1] - m[0]), 1),
        "slope_mb_per_h": round(slope_per_s * 3600.0, 1),
    }


def soak(
    minutes: Annotated[float, typer.Option("--minutes", min=0.5, help="How long to run, wall minutes.")] = 30.0,
    patients: Annotated[int, typer.Option("--patients", min=1, help="Simulated patients.")] = 100,
    speed: Annotated[float, typer.Option("--speed", min=0.1, help="Simulator pace; 1 = real time.")] = 1.0,
    processes: Annotated[int, typer.Option("--processes", min=1, help="Worker processes.")] = 1,
    interval_s: Annotated[float, typer.Option("--interval-s", min=1.0, help="Seconds between RSS samples.")] = 10.0,
    warmup_min: Annotated[float, typer.Option("--warmup-min", min=0.0, help="Minutes left out of the fit.")] = 2.0,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Write every sample here.")] = None,  # noqa: UP045
    log_dir: Annotated[Path, typer.Option("--log-dir", help="Worker and simulator logs.")] = Path("runs/soak"),
) -> None:
    """Run a worker and a simulator for --minutes; sample the worker's memory and report its growth."""
    if sys.platform != "linux":
        raise ConfigError("ecgmon soak reads /proc for memory; run it on Linux.")
    settings = get_settings()
    from ecgmon.stack import kafka_admin

    try:
        kafka_admin(settings.bootstrap).close()
    except Exception:
        raise StackError(f"Kafka at {settings.bootstrap} does not answer; run `ecgmon up` first.") from None
    log_dir.mkdir(parents=True, exist_ok=True)
    duration_s = minutes * 60.0
    worker = WorkerProcess(settings, log_dir / "worker.log", processes=processes)
    sim = Child(
        "the simulator",
        ecgmon_argv(
            "simulate", "--patients", str(patients), "--duration", f"{duration_s * speed:.0f}",
            "--speed", f"{speed:g}", "--json", str(log_dir / "simulate.json"),
        ),
        log_dir / "simulate.log",
        stack_env(settings),
    )
    samples: list[tuple[float, float]] = []
    cpu_used_s = 0.0

    def worker_pids() -> list[int]:
        return children(worker.pid) if processes > 1 else [worker.pid]

    try:
        worker.start().wait_ready(settings.demo_worker_ready_s)
        sim.start()
        t0 = time.monotonic()
        cpu0 = {p: cpu_seconds(p) or 0.0 for p in worker_pids()}
        typer.echo(f"soak: {patients} patients at {speed:g}x for {minutes:g} min; sampling every {interval_s:g} s")
        while time.monotonic() - t0 < duration_s and worker.alive() and sim.alive():
            pids = worker_pids()
            total = sum(m for m in (rss_mb(p) for p in pids) if m is not None)
            t = time.monotonic() - t0
            samples.append((round(t, 1), round(total, 1)))
            cpu_used_s = sum((cpu_seconds(p) or 0.0) - cpu0.get(p, 0.0) for p in pids)
            typer.echo(f"  t={t:7.0f} s  worker RSS {total:8.1f} MiB  CPU {cpu_used_s:8.1f} s")
            time.sleep(interval_s)
        crashed = not worker.alive()
        sim_code = sim.proc.poll() if sim.proc is not None else None  # None: still running at the end, as it should
    finally:
        sim.signal(signal.SIGINT)  # the simulator flushes and writes its summary
        sim.stop(grace_s=60)
        worker.stop(grace_s=40)
    summary_path = log_dir / "simulate.json"
    result: dict[str, Any] = {
        "minutes": minutes,
        "patients": patients,
        "speed": speed,
        "processes": processes,
        "interval_s": interval_s,
        "warmup_min": warmup_min,
        "worker_crashed": crashed,
        **growth(samples, warmup_min * 60.0),
        "samples": samples,
    }
    if summary_path.exists():
        sim_summary = json.loads(summary_path.read_text())
        result["windows_sent"] = sim_summary.get("windows")
        result["windows_per_s"] = sim_summary.get("rate_windows_per_s")
        if sim_summary.get("windows"):
            result["cpu_ms_per_window"] = round(1000.0 * cpu_used_s / float(sim_summary["windows"]), 2)
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(result, indent=1))
    typer.echo(json.dumps({k: v for k, v in result.items() if k != "samples"}))
    if crashed:
        raise StackError(f"The worker exited during the soak; see {log_dir / 'worker.log'}.")
    if sim_code is not None and sim_code != 0:
        raise StackError(f"The simulator exited early ({sim_code}); see {log_dir / 'simulate.log'}.")
