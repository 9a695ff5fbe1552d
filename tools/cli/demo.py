"""``ecgmon demo``: the whole system in one command, on the embedded stack.

Starts the embedded broker and InfluxDB if they are not running, one ``ecgmon worker`` and one
``ecgmon simulate`` (synthetic patients, some with AF and other episodes) as subprocesses, shows
the live view (``dashboards.live``) unless ``--no-live``, waits until every window the simulator
sent has its prediction in InfluxDB, writes the HTML report (``dashboards.report``) and prints
its path. It stops what it started (the worker, the simulator, and the stack parts it started)
and leaves alone a stack it found running.

It also starts the technician's console (``ecgmon console``, unless ``--no-console``) with a
user ``demo`` whose random password it prints with the console's address: the only place a
console user is made without ``ecgmon console adduser``. With ``--hold`` (the default when run
from a terminal) the console, worker and stack stay up after the report until Ctrl-C.

The simulated recording ends "now": its clock starts ``duration + window`` seconds in the past
(or just after the last stored prediction, if that is later), so its points are in Grafana's
default "last N minutes" and never overlap an earlier run's, and the report's range is exact.
Unless set in the environment, the worker reconstructs every k-th window
(``ECGMON_RECONSTRUCTION_POLICY=every_k``) so the report has a 12-lead, and the simulator draws
``ECGMON_DEMO_EVENT_RATE_PER_H`` events per hour so a short run has episodes.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from ecgmon import stack as embedded
from ecgmon.errors import ConfigError, StackError
from ecgmon.settings import Settings, get_settings
from tools.processes import Child, WorkerProcess, ecgmon_argv, stack_env, wait_until


def start_stack(settings: Settings) -> list[embedded.Part]:
    """Start the embedded parts that are needed and not running; returns the ones started here."""
    needed: list[embedded.Part] = []
    if not settings.kafka_bootstrap:
        needed.append("kafka")
    if not settings.influx_url:
        needed.append("influxdb")
    before = embedded.status(settings)
    started = [part for part in needed if before[part].pid is None]
    try:
        for part in needed:
            embedded.up(settings, part)
    except Exception:
        for part in started:
            embedded.down(settings, part)
        raise
    return started


def predictions_per_patient(client: Any, t_from_ms: int, t_to_ms: int) -> dict[str, int]:
    """Stored predictions of each patient in the range."""
    query = (
        f'SELECT count("confidence") FROM "prediction" WHERE time >= {t_from_ms}ms and time <= {t_to_ms}ms '
        'GROUP BY "patient_id"'
    )
    return {s["tags"]["patient_id"]: int(s["values"][0][1]) for s in client.query(query)}


def recording_start_ns(client: Any, now_ns: int, span_s: float) -> int:
    """Start the simulated clock ``span_s`` before now, but after any stored prediction.

    So the recording ends about now (Grafana's "last N minutes" shows it) and never overlaps an
    earlier run's points, which keeps this run's live view and report to its own windows.
    """
    start_ns = now_ns - int(span_s * 1e9)
    series = client.query('SELECT last("seq") FROM "prediction"')
    if series and series[0].get("values"):
        start_ns = max(start_ns, int(series[0]["values"][0][0]) * 1_000_000 + 1_000_000_000)
    return start_ns


def watching(done: Callable[[], bool], tick: Callable[[], None], children: list[Child]) -> Callable[[], bool]:
    """``done`` for ``wait_until`` that also refreshes the view and ends the wait if a child died."""

    def condition() -> bool:
        tick()
        for child in children:
            if isinstance(child, WorkerProcess):
                child.check_alive()
        return done()

    return condition


def start_console(settings: Settings, run_dir: Path, env: dict[str, str]) -> tuple[Child, str, str]:
    """Start ``ecgmon console`` with a fresh ``demo`` user; returns the child, its address and the password.

    The configured port (``ECGMON_CONSOLE_PORT``) is used when free, else any free port, so a
    console already running elsewhere never stops the demo.
    """
    import secrets
    import urllib.request

    from tools.console.auth import UserStore

    users_file = run_dir / "console-users.json"
    users_file.unlink(missing_ok=True)
    password = secrets.token_urlsafe(12)
    UserStore(users_file).add("demo", "technician", password, min_chars=settings.console_password_min_chars)
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        taken = probe.connect_ex((settings.console_host, settings.console_port)) == 0
    port = embedded.free_port(settings.console_host) if taken else settings.console_port
    url = f"http://{settings.console_host}:{port}"
    child = Child(
        "the console", ecgmon_argv("console"), run_dir / "console.log",
        {**env, "ECGMON_CONSOLE_USERS_FILE": str(users_file), "ECGMON_CONSOLE_PORT": str(port)},
    ).start()  # fmt: skip

    def healthy() -> bool:
        child.check_alive()
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=2) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    wait_until(healthy, settings.start_timeout_s, what="the console")
    return child, url, password


def demo(
    patients: Annotated[int, typer.Option("--patients", min=1, help="Simulated patients.")] = 8,
    duration: Annotated[
        float, typer.Option("--duration", min=10, help="Simulated seconds of ECG per patient.")
    ] = 120.0,
    speed: Annotated[
        float, typer.Option("--speed", min=0.1, help="Pace: 1 = real time, 10 = ten times faster.")
    ] = 10.0,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the simulated patients.")] = 7,
    live: Annotated[bool, typer.Option("--live/--no-live", help="Show the live terminal view.")] = True,
    report: Annotated[
        Optional[Path],  # noqa: UP045 - typer needs Optional
        typer.Option("--report", help="Report directory; default ECGMON_DEMO_REPORT_DIR."),
    ] = None,
    with_console: Annotated[
        bool, typer.Option("--console/--no-console", help="Start the technician's console and print its address.")
    ] = True,
    hold: Annotated[
        Optional[bool],  # noqa: UP045 - typer needs Optional
        typer.Option("--hold/--no-hold", help="Keep everything up after the report until Ctrl-C; default: on a TTY."),
    ] = None,
) -> None:
    """Run the whole system on simulated patients: stack, worker, simulator, live view, HTML report."""
    settings = get_settings()
    report_dir = (report or settings.demo_report_dir).resolve()
    if duration < settings.window_s:
        raise ConfigError(f"--duration {duration:g} is shorter than one {settings.window_s:g} s window.")
    from dashboards.live import Snapshot, render, snapshot
    from dashboards.report import write_report
    from ecgmon.influx import InfluxClient

    run_dir = report_dir / "logs"
    summary_path = run_dir / "simulate.json"
    summary_path.unlink(missing_ok=True)
    client = InfluxClient(settings)
    span = {"from_ms": 0, "to_ms": 0}  # this run's recording, set when the simulator starts
    status = {"text": "starting the worker"}
    children: list[Child] = []
    started = start_stack(settings)
    try:
        from rich.console import Console
        from rich.live import Live

        console = Console(stderr=True)
        view = Live(console=console, refresh_per_second=4, transient=False) if live else None
        last_print = [0.0]

        def tick() -> None:
            if view is not None:
                snap = (
                    snapshot(client, span["from_ms"], span["to_ms"]) if span["to_ms"] else Snapshot(0, [], 0, None, 0)
                )
                view.update(render(snap, status=status["text"]))
            elif time.monotonic() - last_print[0] > 10:
                last_print[0] = time.monotonic()
                console.print(f"[dim]{time.strftime('%H:%M:%S')} {status['text']}[/dim]")

        demo_defaults = {
            "ECGMON_RECONSTRUCTION_POLICY": "every_k",
            "ECGMON_SIM_EVENT_RATE_PER_H": f"{settings.demo_event_rate_per_h:g}",
        }
        env = stack_env(settings, overrides={k: os.environ.get(k, v) for k, v in demo_defaults.items()})
        if with_console:
            try:
                console_child, console_url, console_password = start_console(settings, run_dir, env)
                children.append(console_child)
                console.print(
                    f"[bold]Technician's console: {console_url}[/bold]  (user [bold]demo[/bold], "
                    f"password [bold]{console_password}[/bold]; log {run_dir / 'console.log'})"
                )
            except (StackError, TimeoutError) as exc:
                console.print(f"[yellow]The console did not start ({exc}); the demo goes on without it.[/yellow]")
        with view if view is not None else contextlib.nullcontext():
            worker = WorkerProcess(settings, run_dir / "worker.log", overrides={k: env[k] for k in demo_defaults})
            children.append(worker.start())
            status["text"] = "the worker is loading its models and joining its consumer group"
            try:
                wait_until(
                    watching(worker.ready, tick, children), settings.demo_worker_ready_s,
                    interval_s=settings.live_refresh_s, what="the worker",
                )  # fmt: skip
            except TimeoutError:
                raise StackError(
                    f"The worker was not ready after {settings.demo_worker_ready_s:g} s; see {run_dir / 'worker.log'} "
                    "(raise ECGMON_DEMO_WORKER_READY_S on a slow machine)."
                ) from None
            now_ns = time.time_ns()
            start_ns = recording_start_ns(client, now_ns, duration + settings.window_s)
            t_from_ms = start_ns // 1_000_000 - 1_000
            t_to_ms = max(now_ns, start_ns + int((duration + settings.window_s) * 1e9)) // 1_000_000 + 60_000
            sim_argv = ecgmon_argv(
                "simulate", "--patients", str(patients), "--duration", f"{duration:g}", "--speed", f"{speed:g}",
                "--seed", str(seed), "--start-ns", str(start_ns), "--json", str(summary_path), "--cast",
            )  # fmt: skip
            simulator = Child("the simulator", sim_argv, run_dir / "simulate.log", env)
            children.append(simulator.start())
            span.update(from_ms=t_from_ms, to_ms=t_to_ms)
            status["text"] = f"simulating {patients} patients at {speed:g}x real time"
            wait_until(
                watching(lambda: not simulator.alive(), tick, children), duration / speed + 600,
                interval_s=settings.live_refresh_s, what="the simulator",
            )  # fmt: skip
            if simulator.stop() != 0 or not summary_path.exists():
                raise StackError(f"The simulator failed: {simulator.tail()} (log {simulator.log_path}).")
            sent = {pid: int(s["windows"]) for pid, s in json.loads(summary_path.read_text())["per_patient"].items()}
            status["text"] = f"waiting for the predictions of {sum(sent.values())} windows"
            progress = {"count": -1, "at": time.monotonic()}

            def drained() -> bool:
                got = predictions_per_patient(client, t_from_ms, t_to_ms)
                count = sum(min(got.get(pid, 0), n) for pid, n in sent.items())
                if count != progress["count"]:
                    progress.update(count=count, at=time.monotonic())
                return count >= sum(sent.values()) or time.monotonic() - progress["at"] > settings.demo_drain_s

            wait_until(watching(drained, tick, children), 3600, interval_s=settings.live_refresh_s, what="predictions")
            got = predictions_per_patient(client, t_from_ms, t_to_ms)
            ok = all(got.get(pid, 0) >= n for pid, n in sent.items())
            status["text"] = "done" if ok else "stopped waiting: no new prediction for ECGMON_DEMO_DRAIN_S"
            tick()
        got = predictions_per_patient(client, t_from_ms, t_to_ms)
        predicted = sum(min(got.get(pid, 0), n) for pid, n in sent.items())
        if predicted == 0:
            raise StackError(f"The worker stored no prediction; see {run_dir / 'worker.log'}.")
        notes = [
            f"{patients} synthetic patients, {duration:g} s of ECG each at {speed:g}x real time, seed {seed}.",
            f"{predicted} of {sum(sent.values())} windows sent have a stored prediction.",
            f"Worker log: {run_dir / 'worker.log'}; simulator log and summary: {run_dir}.",
        ]
        path = write_report(
            client, report_dir, t_from_ms=t_from_ms, t_to_ms=t_to_ms, patients=set(sent), notes=notes,
            window_s=settings.window_s,
        )  # fmt: skip
        if not ok:
            console.print(f"[yellow]Only {predicted} of {sum(sent.values())} windows were predicted in time.[/yellow]")
        print(path)
        if hold if hold is not None else sys.stdin.isatty():
            console.print("[bold]Everything stays up (console, worker, stack); Ctrl-C stops it.[/bold]")

            def interrupt(_signum: int, _frame: object) -> None:
                raise KeyboardInterrupt  # SIGTERM ends the hold as Ctrl-C does: the finally below stops it all

            signal.signal(signal.SIGTERM, interrupt)
            with contextlib.suppress(KeyboardInterrupt):
                while all(child.alive() for child in children if child.name == "the console"):
                    time.sleep(1.0)
    finally:
        for child in reversed(children):
            child.stop(settings.stop_grace_s)
        for part in started:
            embedded.down(settings, part)
