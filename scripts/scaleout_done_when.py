"""Issue 13's Done-when, at full size, as a command (not in CI: it takes ~5 minutes).

    .venv/bin/python -m scripts.scaleout_done_when [--patients 24] [--duration-s 180] [--speed 3]

Runs the same simulated patients (same seed) twice on a fresh embedded stack: once through one
worker, once through two workers of one group with one of them killed with SIGKILL when 60 s of
signal have been sent. Checks that every window has exactly one prediction row in both runs, and
that every AF episode the single worker alerted on has exactly one opened AF alert in the two-worker
run (per patient, the same count of opened AF alerts, and no episode opened twice). Real weights.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ecgmon import stack
from ecgmon.influx import InfluxClient
from ecgmon.settings import Settings
from tests.conftest import wait_for
from tests.test_reliability import Worker, alert_episodes_ok, safe_count, worker_env

ROOT = Path(__file__).resolve().parents[1]
REAL = {
    "ECGMON_MODEL_WEIGHTS": "1",
    "ECGMON_MC_SAMPLES": "8",
    "ECGMON_RECONSTRUCTION_POLICY": "never",
    "ECGMON_SIM_EVENT_RATE_PER_H": "40",
    "ECGMON_SIM_ARTEFACT_RATE_PER_H": "4",
}


class RealWorker(Worker):
    """A worker with the committed weights (the test helper's default is untrained models)."""

    def launch(self) -> None:
        self.starts += 1
        self.log_path = self.log_dir / f"{self.name}-{self.starts}.log"
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "ecgmon.cli.main", "worker"],
                env={**worker_env(self.s, self.name), **REAL, "ECGMON_INFLUX_DATABASE": self.s.influx_database},
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )


def _run(
    base: Settings, tag: str, workers: int, args: argparse.Namespace, log_dir: Path, kill_at_s: float | None
) -> dict[str, object]:
    s = base.namespaced(tag).model_copy(update={"influx_database": f"ecg_{tag}"})
    stack.create_topics(s.bootstrap, s.topics(), s.partitions)
    stack.create_database(s.influx, s.influx_database)
    influx = InfluxClient(s)
    env = {**REAL, "ECGMON_INFLUX_DATABASE": s.influx_database}
    ws = [RealWorker(s, f"{tag}-w{i}", log_dir) for i in range(workers)]
    for w in ws:
        w.launch()
    for w in ws:
        w.wait_ready()
    out = log_dir / f"{tag}-sim.json"
    sim = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ecgmon.cli.main",
            "simulate",
            "--patients",
            str(args.patients),
            "--duration",
            str(args.duration_s),
            "--speed",
            str(args.speed),
            "--seed",
            "13",
            "--json",
            str(out),
        ],
        env={**worker_env(s, f"{tag}-sim"), **env},
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    started = time.monotonic()
    if kill_at_s is not None:
        time.sleep(max(0.0, kill_at_s / args.speed - (time.monotonic() - started)))
        ws[0].kill9()
        print(f"[{tag}] killed {ws[0].name} with SIGKILL after {kill_at_s:g} s of signal")
    sim.wait(timeout=3600)
    sent = json.loads(out.read_text())
    windows = int(sent["windows"])
    count = "SELECT COUNT(sqi) FROM prediction"
    wait_for(
        lambda: safe_count(influx, count) >= windows,
        timeout_s=600,
        interval_s=1,
        what=f"{windows} prediction rows for {tag}",
    )
    time.sleep(3)  # a late replay would add rows now; it must overwrite instead
    rows = influx.count(count)
    alert_episodes_ok(influx, "^sim-")  # asserts that no (patient, type) episode was opened twice
    for w in ws:
        w.stop()
    return {"windows_sent": windows, "prediction_rows": rows, "af_opened_per_patient": _af_opened(influx)}


def _af_opened(influx: InfluxClient) -> dict[str, int]:
    rows = influx.query("SELECT COUNT(severity) FROM alert WHERE type = 'af' AND state = 'opened' GROUP BY patient_id")
    return {r["tags"]["patient_id"]: int(r["values"][0][1]) for r in rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=24)
    parser.add_argument("--duration-s", type=float, default=180.0)
    parser.add_argument("--speed", type=float, default=3.0)
    parser.add_argument("--kill-at-s", type=float, default=60.0)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ecgmon-scaleout-") as tmp:
        base = Settings(
            state_dir=Path(tmp),
            kafka_port=stack.free_port(),
            influx_port=stack.free_port(),
            web_port=stack.free_port(),
            partitions=8,
        )
        stack.up(base)
        try:
            log_dir = Path(tmp) / "run-logs"
            log_dir.mkdir()
            single = _run(base, "one", 1, args, log_dir, None)
            pair = _run(base, "two", 2, args, log_dir, args.kill_at_s)
        finally:
            stack.down(base)
    result = {
        "single": single,
        "two_workers_one_killed": pair,
        "one_row_per_window": single["prediction_rows"] == single["windows_sent"]
        and pair["prediction_rows"] == pair["windows_sent"],
        "same_af_alerts": single["af_opened_per_patient"] == pair["af_opened_per_patient"],
    }
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
