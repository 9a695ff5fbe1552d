"""``ecgmon bench`` end to end on a tiny configuration, and its derived figures on hand-made loads.

The integration test runs the real command: its own embedded broker and influxd on free ports, one
real ``ecgmon worker`` with untrained models (``ECGMON_MODEL_WEIGHTS=0``, one MC pass), one short
load. It checks the JSON's keys and shape and the PNG, never the timings.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from ecgmon.errors import ConfigError
from tools.bench import AUTO_LOAD_START, default_loads, saturating_load
from tools.bench.pipeline import Counters, cpu_totals, models_share
from tools.bench.report import p99_at, realtime_windows_per_s
from tools.cli.bench import _numbers

ROOT = Path(__file__).resolve().parents[1]
KEYS = {
    "device",
    "pipeline_windows_per_s",
    "model_windows_per_s",
    "efficiency",
    "unbatched_windows_per_s",
    "batching_speedup",
    "latency_ms",
    "loads",
    "patients_realtime_per_worker",
    "patients_realtime_per_machine",
    "cpu_ms_per_window",
    "influx_points_per_window",
}
CPU_KEYS = {"worker", "models", "influxdb", "broker", "total"}


def _load(rate: float, p99: float | None, delivered: float, saturated: bool) -> dict[str, object]:
    return {"offered_windows_per_s": rate, "p99_ms": p99, "delivered_windows_per_s": delivered, "saturated": saturated}


def test_p99_is_interpolated_between_loads_and_none_outside() -> None:
    loads = [_load(10, 400.0, 10, False), _load(20, 800.0, 20, False), _load(40, 9000.0, 30, True)]
    assert p99_at(loads, 15) == pytest.approx(600.0)
    assert p99_at(loads, 5) is None
    assert p99_at(loads, 50) is None


def test_realtime_rate_is_the_highest_unsaturated_load_within_one_second() -> None:
    loads = [_load(10, 400.0, 10, False), _load(20, 1200.0, 19.5, False), _load(40, 900.0, 30, True)]
    assert realtime_windows_per_s(loads) == 10
    assert realtime_windows_per_s([_load(10, 2000.0, 10, False)]) == 0.0


def test_default_loads_climb_from_below_saturation_past_the_model_rate() -> None:
    loads = default_loads(1100.0)
    assert loads[0] == AUTO_LOAD_START == 20.0
    assert all(b > a for a, b in itertools.pairwise(loads))
    assert loads[-1] >= 1.3 * 1100.0 > loads[-2]
    assert default_loads(5.0) == [AUTO_LOAD_START]


def test_top_level_figures_come_from_the_first_saturated_load_else_the_highest() -> None:
    loads = [_load(10, 400.0, 10, False), _load(20, 900.0, 19, False)]
    loads += [_load(40, 9e3, 30, True), _load(80, 9e3, 31, True)]
    assert saturating_load(loads)["offered_windows_per_s"] == 40
    assert saturating_load(loads[:2])["offered_windows_per_s"] == 20


def test_cpu_total_is_worker_influxdb_and_broker_and_models_their_measured_share() -> None:
    cpu = {"worker": 3.0, "influxdb": 1.5, "broker": 0.5, "bench": 2.0, "cores_busy": 1.0}
    before, after = Counters(100.0, 40.0, 10), Counters(130.0, 50.0, 20)  # 30 s of worker CPU, 10 in the models
    assert models_share(before, after) == pytest.approx(1 / 3)
    assert cpu_totals(cpu, models_share(before, after)) == {"total": 5.0, "models": 1.0}
    assert models_share(Counters(None, None, 10), after) is None
    assert cpu_totals(cpu, None) == {"total": 5.0}


@pytest.mark.parametrize("text", ["", "a,b", "0", "5,-1"])
def test_bad_lists_are_config_errors(text: str) -> None:
    with pytest.raises(ConfigError):
        _numbers(text, "--loads", float)


def _stack_dirs() -> set[Path]:
    return set(Path(tempfile.gettempdir()).glob("ecgmon-bench-*"))


@pytest.mark.integration
@pytest.mark.timeout(180)
def test_bench_writes_json_and_png(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ECGMON_")}
    env.update(
        {
            "ECGMON_MODEL_WEIGHTS": "0",
            "ECGMON_MC_SAMPLES": "1",
            "ECGMON_PARTITIONS": "2",
            "ECGMON_RECONSTRUCTION_POLICY": "never",
            "ECGMON_STATE_DIR": str(tmp_path / "state"),
        }
    )
    out, png = tmp_path / "bench.json", tmp_path / "latency.png"
    before = _stack_dirs()
    argv = [sys.executable, "-m", "tools.cli.main", "bench", "--loads", "6", "--duration-s", "4"]
    argv += ["--torch-threads", "1", "--speed", "40", "--model-min-s", "0.2", "--json", str(out), "--png", str(png)]
    proc = subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, text=True, timeout=170)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert set(result) >= KEYS
    assert set(result["latency_ms"]) == {"p50", "p99"}
    assert result["device"] == "cpu"
    [load] = result["loads"]
    assert load["sent"] == 24 and load["delivered"] == 24 and load["influx_rows"] == 24
    assert load["patients"] == 2  # 6 windows/s x 10 s hop / speed 40, rounded
    assert load["p50_ms"] is not None and load["p99_ms"] >= load["p50_ms"] > 0
    assert result["model_windows_per_s"] > 0 and result["unbatched_windows_per_s"] > 0
    ratio = result["pipeline_windows_per_s"] / result["model_windows_per_s"]
    assert result["efficiency"] == pytest.approx(ratio, abs=0.001)
    cpu = load["cpu_ms_per_window"]
    assert set(cpu) >= CPU_KEYS
    assert cpu["total"] == pytest.approx(cpu["worker"] + cpu["influxdb"] + cpu["broker"], abs=0.01)
    assert 0 < cpu["models"] < cpu["worker"]  # the models' share, measured in the worker
    assert load["influx_points_per_window"] >= 1  # at least the prediction point, as InfluxDB counted them
    assert result["cpu_ms_per_window"] == cpu and result["influx_points_per_window"] == load["influx_points_per_window"]
    assert result["patients_realtime_per_machine"] == result["patients_realtime_per_worker"]  # one worker
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert _stack_dirs() == before  # the bench removed the state dir of the stack it started


def test_bench_payloads_keep_windows_beyond_the_int16_range() -> None:
    """A motion burst past ±32.767 mV once stopped a bench run; such windows go as float32, unclipped."""
    import numpy as np

    from ecgmon.contracts import Window, decode_window
    from tools.bench.pipeline import prepare_payloads

    calm = Window("p-1", "d-1", 0, 0, 250.0, np.full(2500, 0.5, dtype=np.float32))
    burst = Window("p-1", "d-1", 1, 10**10, 250.0, np.linspace(-40.0, 40.0, 2500, dtype=np.float32))
    (_, _, calm_bytes), (_, seq, burst_bytes) = prepare_payloads([calm, burst])
    assert seq == 1
    assert decode_window(burst_bytes) == burst
    assert len(burst_bytes) > len(calm_bytes)  # float32 where needed, int16 elsewhere
