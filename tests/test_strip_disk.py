"""``tools.scripts.strip_disk`` on a tiny size against its own real influxd: what it wrote is what InfluxDB holds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ecgmon.settings import Settings
from tests.conftest import DATA
from tools.scripts.strip_disk import main

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]


def test_tiny_run_counts_its_windows_in_influxdb_and_measures_their_bytes(tmp_path: Path) -> None:
    out = tmp_path / "strip_disk.json"
    main(["--patients", "1", "--hours", "0.2", "--live", "--data", str(DATA / "cinc2017"), "--json", str(out)])
    r = json.loads(out.read_text())
    windows = r["windows"]
    assert windows == 72 == r["alert_windows"] == r["reconstructed_windows"]  # one patient, in alert throughout
    live_points = round(r["window_s"] * Settings().display_hz)
    assert r["influx_counts"] == {  # COUNT queries against the influxd the tool wrote to
        "prediction": windows,
        "strip_lead_i": windows,
        "strip_reconstructed": 11 * windows,
        "live_lead_i": live_points * windows,
    }
    assert r["points_written"] == sum(r["influx_counts"].values())
    assert r["settled"] and r["disk_bytes"]["allocated"]["wal"] == 0  # the cache was snapshotted to TSM
    assert r["tsm_bytes_parsed"] == r["tsm_bytes_files"] > 0  # the TSM index read accounts for every byte
    per_window = r["bytes_per_window"]
    assert all(per_window[k] > 0 for k in ("prediction", "strip_lead_i", "live_lead_i_per_alert_window"))
    assert per_window["prediction"] < per_window["strip_lead_i"]  # a dozen numbers against 2,500 samples
    assert r["mb_per_patient_day"]["in_alert"] > r["mb_per_patient_day"]["every_window"] > 0
