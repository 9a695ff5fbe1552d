"""``ecgmon chaos``: simulated patients through two workers while faults strike, then the delivery audit.

The run uses the embedded stack (started if it is not running) with topics, an app id and an
InfluxDB database of its own, two ``ecgmon worker`` processes of one group with the committed
weights, and ``ecgmon simulate``. While the patients stream, faults drawn from ``--seed`` strike at
random times: InfluxDB stopped and started again, a worker killed with SIGKILL or stopped with
SIGTERM (and started again), a third worker joining or leaving the group. When the simulator has
sent everything, the faults stop, both workers run, and the run waits until every window has its
prediction (or none arrives for ``drain_s``). Then ``tools.delivery`` audits what was stored:
windows lost, rows duplicated, windows whose replays disagree, alert episodes opened twice.

The same seed replays the same patients and the same faults at the same simulated moments (the
wall-clock timing of a fault against the stream is not exact); the alerts opened (patient, type,
id) are in the JSON, so two runs can be compared (``--compare``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ecgmon import stack as embedded
from ecgmon.errors import ConfigError, SinkError, StackError
from ecgmon.influx import InfluxClient
from ecgmon.settings import Settings
from tools.delivery import check_alert_episodes, conflicting_predictions, consume_all, prediction_rows
from tools.processes import Child, WorkerProcess, ecgmon_argv, stack_env, wait_until

FAULT_KINDS = ("influx_outage", "kill9", "sigterm", "join_leave")
"""What can strike: InfluxDB down for a while, a worker crash, a worker's clean stop, the group's size."""


@dataclass(frozen=True)
class ChaosOptions:
    """One chaos run; times in the units their names say."""

    minutes: float
    faults: int
    patients: int
    speed: float
    seed: int
    out_dir: Path
    outage_s: tuple[float, float] = (5.0, 15.0)
    restart_after_s: tuple[float, float] = (2.0, 8.0)
    ready_timeout_s: float = 240.0
    drain_s: float = 180.0


@dataclass(frozen=True)
class Fault:
    """A fault at ``at_s`` seconds into the run: ``kind`` on ``target`` (a worker index, or influxdb)."""

    at_s: float
    kind: str
    target: str
    hold_s: float


def plan_faults(rng: np.random.Generator, duration_s: float, n: int, opts: ChaosOptions) -> list[Fault]:
    """``n`` faults at sorted uniform times in the run's middle 90 %, each with its kind, target and hold time."""
    times = np.sort(rng.uniform(0.05 * duration_s, 0.95 * duration_s, n))
    plan = []
    for at_s in times:
        kind = str(rng.choice(FAULT_KINDS))
        target = "influxdb" if kind == "influx_outage" else ("w2" if kind == "join_leave" else f"w{rng.integers(2)}")
        lo, hi = opts.outage_s if kind == "influx_outage" else opts.restart_after_s
        plan.append(Fault(round(float(at_s), 1), kind, target, round(float(rng.uniform(lo, hi)), 1)))
    return plan


@dataclass
class ChaosRun:
    """The processes of one run and what happened to them."""

    settings: Settings
    opts: ChaosOptions
    workers: dict[str, WorkerProcess] = field(default_factory=dict)
    log: list[dict[str, Any]] = field(default_factory=list)

    def worker(self, name: str) -> WorkerProcess:
        """The worker ``w0``, ``w1`` or ``w2`` (made on first use, not started)."""
        if name not in self.workers:
            tag = f"{self.settings.app_id}-{name}"
            self.workers[name] = WorkerProcess(
                self.settings, self.opts.out_dir / f"{tag}.log", name=tag, overrides=WORKER_ENV
            )
        return self.workers[name]

    def strike(self, fault: Fault, say: Callable[[str], None]) -> None:
        """Apply ``fault``, hold it for its time, and undo it (restart, start InfluxDB, leave)."""
        say(f"fault at {fault.at_s:.0f} s: {fault.kind} {fault.target} for {fault.hold_s:g} s")
        self.log.append({**asdict(fault), "wall": round(time.time(), 1)})
        if fault.kind == "influx_outage":
            embedded.down(self.settings, only="influxdb")
            time.sleep(fault.hold_s)
            embedded.up(self.settings, only="influxdb")
            return
        w = self.worker(fault.target)
        if fault.kind == "join_leave":
            if w.alive():
                w.stop(grace_s=self.settings.stop_grace_s + 30)
            else:
                w.start()
            return
        if fault.kind == "kill9":
            w.kill()
        else:
            w.stop(grace_s=self.settings.stop_grace_s + 30)
        time.sleep(fault.hold_s)
        w.start()


WORKER_ENV = {
    "ECGMON_TORCH_THREADS": "1",
    "ECGMON_KAFKA_SESSION_TIMEOUT_S": "10",  # a killed member is noticed in 10 s, not 45
    "ECGMON_KAFKA_REBALANCE_TIMEOUT_S": "10",
    "ECGMON_INFLUX_RETRY_MAX_S": "2",
    "ECGMON_LOG_LEVEL": "info",
}
"""What the chaos workers run with beyond the stack: short group timeouts so faults heal in seconds."""

SIM_ENV = {"ECGMON_SIM_EVENT_RATE_PER_H": "30", "ECGMON_SIM_ARTEFACT_RATE_PER_H": "6"}
"""Events and artefacts often enough that a run of minutes opens and resolves alerts."""


def run_chaos(base: Settings, opts: ChaosOptions, say: Callable[[str], None] = print) -> dict[str, Any]:
    """One chaos run on the embedded stack of ``base``; returns the audit (see the module docstring)."""
    if opts.minutes <= 0 or opts.patients < 1 or opts.speed <= 0 or opts.faults < 0:
        raise ConfigError("--minutes, --patients and --speed must be positive and --faults at least 0.")
    tag = f"chaos{opts.seed}x{int(time.time()) % 100000}"
    s = base.namespaced(tag).model_copy(update={"influx_database": f"ecg_{tag}", "worker_web": False})
    opts.out_dir.mkdir(parents=True, exist_ok=True)
    started = [p for p in ("kafka", "influxdb") if embedded.read_pid(s, p) is None]  # type: ignore[arg-type]
    embedded.up(s)
    embedded.create_database(s.influx, s.influx_database)
    from streams.topics import ensure_topics

    ensure_topics(s)
    rng = np.random.default_rng(opts.seed)
    duration_s = opts.minutes * 60.0
    plan = plan_faults(rng, duration_s, opts.faults, opts)
    start_ns = 1_200_000_000 * 10**9 + opts.seed * 10**13  # the same recording clock for the same seed
    summary_path = opts.out_dir / f"{tag}-sim.json"
    sim = Child(
        "the simulator",
        ecgmon_argv(
            "simulate", "--patients", str(opts.patients), "--duration", f"{duration_s * opts.speed:.0f}",
            "--speed", f"{opts.speed:g}", "--seed", str(opts.seed), "--start-ns", str(start_ns),
            "--json", str(summary_path),
        ),
        opts.out_dir / f"{tag}-sim.log",
        stack_env(s, overrides=SIM_ENV),
    )  # fmt: skip
    run = ChaosRun(s, opts)
    influx = InfluxClient(s)
    try:
        for name in ("w0", "w1"):
            run.worker(name).start()
        for name in ("w0", "w1"):
            run.worker(name).wait_ready(opts.ready_timeout_s)
        say(f"chaos {tag}: {opts.patients} patients at {opts.speed:g}x for {opts.minutes:g} min, {len(plan)} faults")
        sim.start()
        t0 = time.monotonic()
        for fault in plan:
            time.sleep(max(0.0, fault.at_s - (time.monotonic() - t0)))
            if sim.proc is not None and sim.proc.poll() not in (None, 0):
                sim.check_alive()  # the simulator failed: stop here with its log
            run.strike(fault, say)
        wait_until(lambda: not sim.alive(), duration_s + 600, interval_s=1.0, what="the simulator to finish")
        if sim.stop() != 0 or not summary_path.exists():
            raise StackError(f"The simulator failed; see {sim.log_path}:\n{sim.tail()}")
        for name in ("w0", "w1"):
            if not run.worker(name).alive():
                run.worker(name).start()
        if "w2" in run.workers:
            run.workers["w2"].stop()
        for name in ("w0", "w1"):
            run.worker(name).wait_ready(opts.ready_timeout_s)
        sent = {pid: int(v["windows"]) for pid, v in json.loads(summary_path.read_text())["per_patient"].items()}
        end_ms = (start_ns + int((duration_s * opts.speed + 3600) * 1e9)) // 10**6
        where = f"time >= {start_ns // 10**6}ms AND time <= {end_ms}ms"
        say(f"sent {sum(sent.values())} windows; waiting for their predictions")
        rows = _drain(influx, sent, where, opts.drain_s)
        episodes = check_alert_episodes(influx, "^(" + "|".join(sorted(sent)) + ")$", where)
        conflicts = conflicting_predictions(v for _, v, _, _ in consume_all(s, s.topic_predictions))
    finally:
        sim.stop()
        for w in run.workers.values():
            w.stop(grace_s=s.stop_grace_s + 30)
        for part in started:
            embedded.down(s, only=part)  # type: ignore[arg-type]
    lost = sum(max(0, n - rows.get(p, (0, 0))[1]) for p, n in sent.items())
    duplicated = sum(r - d for r, d in rows.values())
    result: dict[str, Any] = {
        "tag": tag,
        "seed": opts.seed,
        "minutes": opts.minutes,
        "patients": opts.patients,
        "speed": opts.speed,
        "faults": len(run.log),
        "fault_log": run.log,
        "windows_sent": sum(sent.values()),
        "prediction_rows": sum(r for r, _ in rows.values()),
        "lost": lost,
        "duplicated_rows": duplicated,
        "conflicting_predictions": len(conflicts),
        "duplicated_alert_episodes": len(episodes.problems),
        "alert_problems": episodes.problems[:20],
        "alerts_opened": [list(a) for a in episodes.opened()],
    }
    return result


def _drain(influx: InfluxClient, sent: dict[str, int], where: str, idle_s: float) -> dict[str, tuple[int, int]]:
    """Wait until every window sent has a row, or no new row came for ``idle_s``; returns the rows per patient."""
    want = sum(sent.values())
    progress = [-1, time.monotonic()]  # windows with a row, when that last changed

    def done() -> bool:
        try:
            rows = prediction_rows(influx, sent, where)
        except SinkError:  # InfluxDB restarting: keep waiting
            return False
        n = sum(min(d, sent.get(p, 0)) for p, (_, d) in rows.items())
        if n != progress[0]:
            progress[:] = [n, time.monotonic()]
        return n >= want or time.monotonic() - progress[1] > idle_s

    wait_until(done, idle_s * 20, interval_s=2.0, what="the predictions of every window")
    time.sleep(3.0)  # a late replay would add rows now; it must overwrite instead
    return prediction_rows(influx, sent, where)


def compare_alerts(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """Alerts opened in one run and not the other (``(patient, type, id)``); empty when the runs agree."""
    sa = {tuple(x) for x in a["alerts_opened"]}
    sb = {tuple(x) for x in b["alerts_opened"]}
    return [f"only in first: {x}" for x in sorted(sa - sb)] + [f"only in second: {x}" for x in sorted(sb - sa)]
