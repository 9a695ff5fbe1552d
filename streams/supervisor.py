"""``ecgmon worker --processes N``: N worker processes of one consumer group on one machine.

One Faust worker is one Python process with one event loop, so a machine's cores are used by
running several workers with the same app id: Kafka's group protocol shares the partitions of
``ecg.windows`` between them (each patient is handled by exactly one at a time) and each has its
own inference executor. This supervisor only starts, watches and stops them; it holds no data.

* Torch threads: unless ``ECGMON_TORCH_THREADS`` is set (non-zero), each process gets
  ``max(1, cores // N)`` so N processes never oversubscribe the cores.
* Names: the ``worker`` tag of process i is ``<ECGMON_WORKER_NAME>-i`` (or ``host-pid`` when unset).
* A process that dies (crash, OOM kill, kill -9) is started again after ``restart_delay_s``;
  Kafka hands its partitions to the others meanwhile and back after it rejoins. One that fails
  within ``min_uptime_s`` of starting (missing weights, no broker) stops them all instead, with
  its exit code: restarting cannot fix a configuration error.
* SIGTERM or SIGINT to the supervisor sends SIGTERM to every process, then SIGKILL after
  ``stop_grace_s`` for any still running.
* Readiness: each process writes ``worker-<app id>.<pid>.ready`` when it has its partitions;
  once every current process has, the supervisor writes ``worker-<app id>.ready``
  (the pids, one line; removed on stop). The last process to join completed a rebalance that
  included all the others, so the group is then whole (until a process dies or joins again).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from ecgmon.settings import Settings

log = logging.getLogger(__name__)


def threads_per_process(processes: int, cores: int | None = None) -> int:
    """Torch intra-op threads for each of ``processes`` workers: the cores shared out, at least 1."""
    cores = cores if cores is not None else (os.cpu_count() or 1)
    return max(1, cores // max(1, processes))


def child_env(settings: Settings, index: int, processes: int, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of worker process ``index`` of ``processes``."""
    env = dict(os.environ if base is None else base)
    env["ECGMON_WORKER_PROCESSES"] = "1"  # a child is one worker, never a supervisor
    if settings.torch_threads == 0:
        env["ECGMON_TORCH_THREADS"] = str(threads_per_process(processes))
    if settings.worker_name:
        env["ECGMON_WORKER_NAME"] = f"{settings.worker_name}-{index}"
    if settings.worker_web:
        env["ECGMON_WEB_PORT"] = str(settings.web_port + index)
    return env


@dataclass
class _Child:
    index: int
    proc: subprocess.Popen[bytes]
    started: float = field(default_factory=time.monotonic)


class Supervisor:
    """Starts ``processes`` copies of ``argv`` and keeps them running until told to stop."""

    def __init__(
        self,
        settings: Settings,
        processes: int,
        argv: Sequence[str],
        *,
        restart_delay_s: float = 1.0,
        min_uptime_s: float = 20.0,
    ) -> None:
        self.settings = settings
        self.processes = processes
        self.argv = list(argv)
        self.restart_delay_s = restart_delay_s
        self.min_uptime_s = min_uptime_s
        self.exit_code = 0
        self.group_ready = settings.worker_ready_path()
        self.children: dict[int, _Child] = {}
        self.restarts = 0
        self._stopping = False

    def _child_ready(self, pid: int) -> bool:
        return self.settings.worker_ready_path(pid).exists()

    def _check_ready(self) -> None:
        pids = [c.proc.pid for c in self.children.values() if c.proc.poll() is None]
        if len(pids) == self.processes and all(self._child_ready(pid) for pid in pids):
            if not self.group_ready.exists():
                self.group_ready.write_text("".join(f"{pid}\n" for pid in pids))
                log.warning("All %d worker processes are ready (%s).", self.processes, self.group_ready)
        else:
            self.group_ready.unlink(missing_ok=True)

    def _start(self, index: int) -> None:
        proc = subprocess.Popen(self.argv, env=child_env(self.settings, index, self.processes))
        self.children[index] = _Child(index, proc)
        log.warning("Worker process %d of %d started (pid %d).", index + 1, self.processes, proc.pid)

    def stop(self, *_: object) -> None:
        """SIGTERM every process (a signal handler; ``run`` then waits for them)."""
        self._stopping = True
        for child in self.children.values():
            if child.proc.poll() is None:
                child.proc.send_signal(signal.SIGTERM)

    def run(self, *, install_signals: bool = True) -> int:
        """Run until SIGTERM/SIGINT (or ``stop``); returns 0 after a requested stop, else a failed start's code."""
        if install_signals:  # only possible in the main thread
            signal.signal(signal.SIGTERM, self.stop)
            signal.signal(signal.SIGINT, self.stop)
        self.group_ready.unlink(missing_ok=True)
        for index in range(self.processes):
            self._start(index)
        while not self._stopping:
            time.sleep(0.2)
            self._check_ready()
            for index, child in list(self.children.items()):
                code = child.proc.poll()
                if code is None or self._stopping:
                    continue
                if code != 0 and time.monotonic() - child.started < self.min_uptime_s:
                    log.error("Worker process %d exited with %s while starting; stopping all.", index + 1, code)
                    self.exit_code = code if code > 0 else 1
                    self.stop()
                    break
                log.error("Worker process %d (pid %d) exited with %s; restarting it.", index + 1, child.proc.pid, code)
                self.settings.worker_ready_path(child.proc.pid).unlink(missing_ok=True)
                time.sleep(self.restart_delay_s)
                if not self._stopping:
                    self.restarts += 1
                    self._start(index)
        self.group_ready.unlink(missing_ok=True)
        deadline = time.monotonic() + self.settings.stop_grace_s + 30.0
        for child in self.children.values():
            try:
                child.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.proc.kill()
                child.proc.wait()
            self.settings.worker_ready_path(child.proc.pid).unlink(missing_ok=True)
        return self.exit_code


def worker_argv(log_level: str) -> list[str]:
    """The command line of one worker process (this interpreter, ``ecgmon worker``)."""
    return [sys.executable, "-m", "tools.cli.main", "worker", "--log-level", log_level]
