"""``ecgmon worker --processes N``: thread shares, child environments, restarts and fail-fast, on real processes."""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path

import yaml

from ecgmon.settings import Settings
from streams.supervisor import Supervisor, child_env, threads_per_process
from tools.processes import wait_until

ROOT = Path(__file__).resolve().parents[1]


def test_threads_share_the_cores_without_oversubscribing() -> None:
    assert threads_per_process(1, cores=2) == 2
    assert threads_per_process(2, cores=2) == 1
    assert threads_per_process(3, cores=2) == 1  # never zero
    assert threads_per_process(4, cores=16) == 4


def test_child_env_names_and_threads(tmp_path: Path) -> None:
    s = Settings(state_dir=tmp_path, worker_name="edge", worker_web=True, web_port=7000, torch_threads=0)
    env = child_env(s, 1, 2, base={"PATH": "/bin"})
    assert env["ECGMON_WORKER_NAME"] == "edge-1" and env["ECGMON_WEB_PORT"] == "7001"
    assert env["ECGMON_WORKER_PROCESSES"] == "1" and env["ECGMON_TORCH_THREADS"] == str(threads_per_process(2))
    pinned = child_env(Settings(state_dir=tmp_path, torch_threads=3), 0, 2, base={})
    assert "ECGMON_TORCH_THREADS" not in pinned and "ECGMON_WORKER_NAME" not in pinned  # the child's own host-pid


def test_a_killed_process_is_restarted_and_stop_ends_all(tmp_path: Path) -> None:
    """Processes that write their readiness file like workers do: the group file follows them."""
    code = (
        "import os, sys, time, pathlib; "
        "pathlib.Path(sys.argv[1], f'worker-grp.{os.getpid()}.ready').write_text('x'); time.sleep(120)"
    )
    s = Settings(state_dir=tmp_path, stop_grace_s=1, app_id="grp")
    sup = Supervisor(s, 2, [sys.executable, "-c", code, str(tmp_path)], restart_delay_s=0.1, min_uptime_s=0)
    group = s.worker_ready_path()
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(sup.run(install_signals=False)))
    thread.start()
    try:
        wait_until(group.exists, timeout_s=20, what="the group readiness file")
        first = sup.children[0].proc
        assert set(group.read_text().split()) == {str(c.proc.pid) for c in sup.children.values()}
        os.kill(first.pid, signal.SIGKILL)
        wait_until(lambda: sup.restarts == 1 and sup.children[0].proc is not first, timeout_s=10, what="a restart")
        wait_until(
            lambda: group.exists() and str(first.pid) not in group.read_text(),
            timeout_s=20,
            what="the group file naming the restarted process",
        )
    finally:
        sup.stop()
        thread.join(timeout=30)
    assert result == [0] and not group.exists()
    assert all(c.proc.poll() is not None for c in sup.children.values())


def test_a_process_failing_at_start_stops_all_with_its_code(tmp_path: Path) -> None:
    code = "import os, sys, time; sys.exit(3) if os.environ['ECGMON_WORKER_NAME'].endswith('-1') else time.sleep(120)"
    argv = [sys.executable, "-c", code]
    sup = Supervisor(Settings(state_dir=tmp_path, worker_name="w", stop_grace_s=1), 2, argv, min_uptime_s=60)
    assert sup.run(install_signals=False) == 3
    assert all(c.proc.poll() is not None for c in sup.children.values())


def test_compose_worker_can_scale() -> None:
    """`docker compose up --scale worker=3` needs a worker with no fixed name, host port or shared state."""
    worker = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["worker"]
    assert "container_name" not in worker and "ports" not in worker
    assert not any(str(v).endswith(":/var/lib/ecgmon") for v in worker.get("volumes", []))
