"""``ecgmon bench`` end to end on a tiny configuration, and its derived figures on hand-made loads.

The integration test runs the real command: its own embedded broker and influxd on free ports, one
real ``ecgmon worker`` with untrained models (``ECGMON_MODEL_WEIGHTS=0``, one MC pass), one short
load. It checks the JSON's keys and shape and the PNG, never the timings.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from ecgmon.errors import ConfigError
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
}


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
