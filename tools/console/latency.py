"""How soon the console shows a new alert under load: ``python -m tools.console.latency``.

Starts its own embedded stack (free ports, under ``--state-dir``), one worker with the stream's
models, the console and ``ecgmon simulate --patients N`` at real time, then polls the console's
``GET /api/alerts?state=all`` every ``--poll-ms`` as a logged-in client. For every alert it
prints and writes (JSON) two delays, both on this machine's one clock:

* worker -> console: the Kafka timestamp of the ``opened`` event (set by the worker's producer
  when it sent it) to the moment the console's reader folded it into its state;
* worker -> API: the same start to the first poll that listed it (this one includes up to one
  poll interval; the browser's queue is pushed by server-sent events, not polled);
* window end -> API: from the end of the window that opened the alert (the simulator runs at
  real time from now, so its clock is the wall clock) to that poll: device, broker, worker
  (batching, inference, alert engine) and console together.
"""

from __future__ import annotations

import argparse
import json
import secrets
import time
import urllib.parse
import urllib.request
from http.cookiejar import CookieJar
from pathlib import Path

import numpy as np

from ecgmon import stack
from ecgmon.settings import Settings
from tools.console.auth import UserStore
from tools.processes import Child, WorkerProcess, ecgmon_argv, stack_env, wait_until


def _pct(x: list[float]) -> dict[str, float]:
    if not x:
        return {}
    a = np.asarray(x)
    return {"n": len(x), "p50": float(np.percentile(a, 50)), "p95": float(np.percentile(a, 95)),
            "p99": float(np.percentile(a, 99)), "max": float(a.max())}  # fmt: skip


def main() -> None:
    """Run the measurement; see the module docstring."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patients", type=int, default=1000)
    ap.add_argument("--duration", type=float, default=300.0, help="simulated (= wall) seconds per patient")
    ap.add_argument("--poll-ms", type=int, default=200)
    ap.add_argument("--state-dir", type=Path, required=True)
    ap.add_argument("--json", type=Path, required=True)
    args = ap.parse_args()

    s = Settings(
        state_dir=args.state_dir, kafka_port=stack.free_port(), influx_port=stack.free_port(),
        web_port=stack.free_port(), console_port=stack.free_port(), console_users_file=args.state_dir / "users.json",
    )  # fmt: skip
    password = secrets.token_urlsafe(12)
    UserStore(s.console_users_path).add("bench", "technician", password, min_chars=10)
    stack.up(s)
    logs = args.state_dir / "logs"
    children: list[Child] = []
    try:
        env = stack_env(s, overrides={"ECGMON_CONSOLE_PORT": str(s.console_port),
                                      "ECGMON_CONSOLE_USERS_FILE": str(s.console_users_path)})  # fmt: skip
        console = Child("the console", ecgmon_argv("console"), logs / "console.log", env).start()
        children.append(console)
        worker = WorkerProcess(s, logs / "worker.log").start()
        children.append(worker)
        base = f"http://127.0.0.1:{s.console_port}"
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))

        def healthy() -> bool:
            console.check_alive()
            try:
                return bool(opener.open(base + "/healthz", timeout=2).status == 200)
            except OSError:
                return False

        wait_until(healthy, 120, what="the console")
        opener.open(base + "/login", urllib.parse.urlencode({"username": "bench", "password": password}).encode())
        worker.wait_ready(300)
        sim = Child(
            "the simulator",
            ecgmon_argv("simulate", "--patients", str(args.patients), "--duration", f"{args.duration:g}",
                        "--speed", "1", "--seed", "11", "--json", str(logs / "sim.json")),
            logs / "simulate.log", env,
        ).start()  # fmt: skip
        children.append(sim)
        first_listed: dict[str, float] = {}
        last: dict[str, dict[str, object]] = {}
        deadline = time.monotonic() + args.duration + 300
        drain_until: float | None = None
        while time.monotonic() < deadline and (drain_until is None or time.monotonic() < drain_until):
            t0 = time.time()
            with opener.open(base + "/api/alerts?state=all", timeout=10) as resp:
                listed = json.loads(resp.read())
            now_ms = time.time() * 1000
            for a in listed:
                first_listed.setdefault(a["alert_id"], now_ms)
                last[a["alert_id"]] = a
            if drain_until is None and not sim.alive():
                drain_until = time.monotonic() + 30  # the worker's last windows
            time.sleep(max(0.0, args.poll_ms / 1000 - (time.time() - t0)))
        reader = [float(a["seen_ms"]) - float(a["produced_ms"]) for a in last.values()]  # type: ignore[arg-type]
        api = [first_listed[k] - float(a["produced_ms"]) for k, a in last.items()]  # type: ignore[arg-type]
        # at --speed 1 from "now" the simulated clock is the wall clock: an alert's time (the end of the
        # window that opened it) is when its last sample was recorded on the device
        window_end = [first_listed[k] - float(a["opened_ns"]) / 1e6 for k, a in last.items()]  # type: ignore[arg-type]
        result = {
            "patients": args.patients, "duration_s": args.duration, "poll_ms": args.poll_ms,
            "alerts": len(last), "by_type": {t: sum(1 for a in last.values() if a["type"] == t)
                                             for t in {str(a["type"]) for a in last.values()}},
            "worker_to_console_ms": _pct(reader), "worker_to_api_ms": _pct(api),
            "window_end_to_api_ms": _pct(window_end), "over_5s": sum(1 for x in window_end if x > 5000),
        }  # fmt: skip
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1))
        print(json.dumps(result, indent=1))
    finally:
        for child in reversed(children):
            child.stop(10)
        stack.down(s)


if __name__ == "__main__":
    main()
