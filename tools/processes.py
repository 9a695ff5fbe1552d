"""Start, watch and stop ``ecgmon`` subprocesses: the one way the demo, soak, chaos, bench and tests do it.

A child runs in its own session (so stopping it stops its children too) with its output in a log
file. A worker is ready when its readiness file (``Settings.worker_ready_path``) exists: the
process's own file for a single worker, the group's for ``--processes N``. Waiting never sleeps a
fixed time: it polls a condition until a deadline, and a worker that dies while being waited on
ends the wait at once with the end of its log.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Self

from ecgmon.errors import StackError
from ecgmon.settings import Settings


def ecgmon_argv(*args: str) -> list[str]:
    """The ``ecgmon`` command of this interpreter, as a subprocess argv."""
    return [sys.executable, "-m", "tools.cli.main", *args]


def stack_env(
    settings: Settings, name: str | None = None, *, inherit: bool = True, overrides: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment of an ``ecgmon`` subprocess that uses ``settings``' stack, app id and topics.

    With ``inherit`` the child keeps this process's other ``ECGMON_*`` variables (the user's choices
    for the demo and soak); without it, it gets only these (tests, so a developer's shell never
    leaks into them). ``name`` tags a worker; ``overrides`` (``ECGMON_...=value``) come last.
    """
    env = {k: v for k, v in os.environ.items() if inherit or not k.startswith("ECGMON_")}
    env.update(
        {
            "ECGMON_STATE_DIR": str(settings.state_dir),
            "ECGMON_KAFKA_PORT": str(settings.kafka_port),
            "ECGMON_INFLUX_PORT": str(settings.influx_port),
            "ECGMON_WEB_PORT": str(settings.web_port),
            "ECGMON_PARTITIONS": str(settings.partitions),
            "ECGMON_APP_ID": settings.app_id,
            "ECGMON_INFLUX_DATABASE": settings.influx_database,
            "ECGMON_TOPIC_WINDOWS": settings.topic_windows,
            "ECGMON_TOPIC_PREDICTIONS": settings.topic_predictions,
            "ECGMON_TOPIC_RECONSTRUCTIONS": settings.topic_reconstructions,
            "ECGMON_TOPIC_ALERTS": settings.topic_alerts,
            "ECGMON_TOPIC_DEADLETTER": settings.topic_deadletter,
            "ECGMON_TOPIC_ACTIONS": settings.topic_actions,
        }
    )
    for key in ("kafka_bootstrap", "influx_url"):
        value = getattr(settings, key)
        if value:
            env[f"ECGMON_{key.upper()}"] = str(value)
    if name:
        env["ECGMON_WORKER_NAME"] = name
    env.update(overrides or {})
    return env


def wait_until(condition: Callable[[], bool], timeout_s: float, *, interval_s: float = 0.2, what: str) -> None:
    """Poll ``condition`` until it is true; ``TimeoutError`` naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        if condition():
            return
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(interval_s)


class Child:
    """A subprocess in its own session with its output in ``log_path``; ``stop`` ends its whole group."""

    def __init__(self, name: str, argv: list[str], log_path: Path, env: Mapping[str, str]) -> None:
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self.env = dict(env)
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self) -> Self:
        """Start the process (appending to its log); returns self."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            self.argv,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=self.env,
            start_new_session=True,
        )
        return self

    @property
    def pid(self) -> int:
        """The process id (the child must have been started)."""
        if self.proc is None:
            raise StackError(f"{self.name} was never started.")
        return self.proc.pid

    def alive(self) -> bool:
        """True while the process runs."""
        return self.proc is not None and self.proc.poll() is None

    def tail(self, chars: int = 3000) -> str:
        """The end of its log, for an error message."""
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def check_alive(self) -> None:
        """Raise ``StackError`` with the end of its log if the process has exited."""
        if self.proc is not None and self.proc.poll() is not None:
            raise StackError(
                f"{self.name} exited with {self.proc.returncode} (log {self.log_path}):\n{self.tail()}"
            )

    def signal(self, sig: int) -> None:
        """Send ``sig`` to the child's whole process group (nothing if it has exited)."""
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, sig)

    def kill(self) -> None:
        """SIGKILL the process group and reap it: a crash, as the kernel's OOM killer would do it."""
        self.signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait()

    def stop(self, grace_s: float = 30.0) -> int | None:
        """SIGTERM the process group, SIGKILL after ``grace_s``; returns the exit code."""
        if self.alive():
            assert self.proc is not None
            self.signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                self.kill()
        if self._log is not None:
            self._log.close()
            self._log = None
        return None if self.proc is None else self.proc.returncode


class WorkerProcess(Child):
    """One ``ecgmon worker`` (``processes`` > 1: a supervised group) for ``settings``."""

    def __init__(
        self,
        settings: Settings,
        log_path: Path,
        *,
        name: str | None = None,
        processes: int = 1,
        inherit: bool = True,
        overrides: Mapping[str, str] | None = None,
    ) -> None:
        argv = ecgmon_argv("worker", *(["--processes", str(processes)] if processes > 1 else []))
        env = stack_env(settings, name, inherit=inherit, overrides=overrides)
        super().__init__(f"worker {name}" if name else "the worker", argv, log_path, env)
        self.tag = name or ""
        """The ``worker`` tag of its ``pipeline`` points (empty: the worker's own host-pid)."""
        self.settings = settings
        self.processes = processes

    def ready_path(self) -> Path:
        """The readiness file this worker (or its supervisor) writes."""
        return self.settings.worker_ready_path(None if self.processes > 1 else self.pid)

    def ready(self) -> bool:
        """True once the worker has its partitions; a dead worker raises ``StackError``."""
        self.check_alive()
        return self.ready_path().exists()

    def wait_ready(self, timeout_s: float) -> None:
        """Wait until the worker is ready; ``StackError`` if it dies, ``TimeoutError`` after ``timeout_s``."""
        wait_until(self.ready, timeout_s, interval_s=0.5, what=f"{self.name} to be ready (log {self.log_path})")
