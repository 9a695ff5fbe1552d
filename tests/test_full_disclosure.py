"""Full disclosure (``ecgmon.full_disclosure``): packed windows in the real InfluxDB, one continuous strip out.

The strip is checked sample for sample against what was packed (the quantised counts), across
several windows, a missing window (NaN), a window longer than one point holds, a reconstructed lead
with its SD, and through ``ecgmon strip`` (CSV, PNG, HTML) and the report's drawing.
"""

from __future__ import annotations

import csv
from pathlib import Path

import neurokit2 as nk
import numpy as np
import pytest
from typer.testing import CliRunner

from ecgmon.full_disclosure import StripPoint, assemble, parse_time_ms, read_strip, read_strips
from ecgmon.influx import InfluxClient
from ecgmon.points import MEASURED_LEAD, STRIP_MAX_S, strip_lines
from ecgmon.settings import Settings, get_settings
from ecgmon.waveform_codec import waveform_decode, waveform_encode

FS = 250.0
WINDOW = int(10 * FS)
T0_MS = 1_100_000_000_000  # 2004-11-09: far from other tests' points


def _quantised(x: np.ndarray) -> np.ndarray:
    packed = waveform_encode(x)
    return waveform_decode(packed.data, n=packed.n, scale=packed.scale)


def _ecg(seconds: float, seed: int) -> np.ndarray:
    return nk.ecg_simulate(duration=seconds, sampling_rate=int(FS), heart_rate=70, random_state=seed)


# --- assembling (no InfluxDB) ---------------------------------------------------------------------


def test_assemble_lays_windows_on_one_grid_with_gaps_and_overlaps() -> None:
    a, b, late = np.arange(10.0), np.arange(10.0) + 100, np.full(5, -1.0)
    pts = [StripPoint(0, 100.0, a), StripPoint(200, 100.0, b), StripPoint(150, 100.0, late)]
    strip = assemble("p", "I", pts, 0, 299)
    assert strip.fs_hz == 100.0 and strip.t0_ms == 0.0 and len(strip.values) == 30 and strip.points == 3
    assert np.array_equal(strip.values[:10], a) and np.array_equal(strip.values[20:30], b)
    assert np.all(np.isnan(strip.values[10:15])) and np.array_equal(strip.values[15:20], late)
    inside = assemble("p", "I", pts, 35, 125)  # a range inside the first window: grid on its samples
    assert inside.t0_ms == 40.0 and len(inside.values) == 9  # samples at 40, 50, ... 120 ms
    assert np.array_equal(inside.values[:6], np.arange(4.0, 10.0)) and np.all(np.isnan(inside.values[6:]))


def test_assemble_resamples_other_rates_and_empty_is_empty() -> None:
    pts = [StripPoint(0, 250.0, np.zeros(2500)), StripPoint(10_000, 500.0, np.ones(5000))]
    strip = assemble("p", "I", pts, 0, 19_999)
    assert strip.fs_hz == 250.0 and len(strip.values) == 5000  # the rate most points have
    assert np.allclose(strip.values[2600:4900], 1.0, atol=1e-6)
    assert assemble("p", "I", [], 0, 1000).empty


def test_times_parse_in_every_documented_form() -> None:
    now = 1_700_000_000_000
    assert parse_time_ms("now", now_ms=now) == now
    assert parse_time_ms("-24h", now_ms=now) == now - 86_400_000
    assert parse_time_ms("-90s", now_ms=now) == now - 90_000
    assert parse_time_ms("1699999999999", now_ms=now) == 1_699_999_999_999
    assert parse_time_ms("2023-11-14T22:13:20Z", now_ms=0) == now
    assert parse_time_ms("2023-11-14T23:13:20+01:00", now_ms=0) == now
    with pytest.raises(ValueError, match="ISO 8601"):
        parse_time_ms("yesterday", now_ms=now)


def test_long_windows_are_split_into_points_that_fit() -> None:
    x = _ecg(90, 1)
    lines = strip_lines(patient_id="p", lead="I", t_start_ns=T0_MS * 1_000_000, fs_hz=FS, samples=x)
    assert len(lines) == 2 and lines[1].endswith(f" {T0_MS + int(STRIP_MAX_S * 1000)}")
    assert all(len(line) < 65_000 for line in lines)


# --- against the real InfluxDB ------------------------------------------------------------------


@pytest.fixture(scope="module")
def stored(stack_settings: Settings) -> dict[str, np.ndarray]:
    """Six 10 s windows of patient fd-1 with the fourth missing, a 90 s window after them, and a
    reconstructed V1 (with SD) for the second window; returns what a perfect strip holds."""
    client = InfluxClient(stack_settings)
    x = _ecg(60, 2)
    lines: list[str] = []
    truth = np.full(int(160 * FS), np.nan)
    for k in range(6):
        if k == 3:
            continue
        w = x[k * WINDOW : (k + 1) * WINDOW]
        lines += strip_lines(
            patient_id="fd-1", lead=MEASURED_LEAD, t_start_ns=(T0_MS + 10_000 * k) * 1_000_000, fs_hz=FS, samples=w
        )
        truth[k * WINDOW : (k + 1) * WINDOW] = _quantised(w)
    long = _ecg(90, 3)
    lines += strip_lines(patient_id="fd-1", lead="I", t_start_ns=(T0_MS + 70_000) * 1_000_000, fs_hz=FS, samples=long)
    truth[int(70 * FS) :] = np.concatenate([_quantised(long[: int(60 * FS)]), _quantised(long[int(60 * FS) :])])
    v1 = np.sin(np.linspace(0, 30, 1000))
    sd = np.abs(np.cos(np.linspace(0, 3, 1000))) * 0.1
    lines += strip_lines(
        patient_id="fd-1", lead="V1", t_start_ns=(T0_MS + 10_000) * 1_000_000, fs_hz=100.0, samples=v1, sd=sd,
        model="dual_branch:1",
    )  # fmt: skip
    client.write_lines(lines)
    return {"I": truth, "V1": _quantised(v1), "V1_sd": _quantised(sd)}


@pytest.mark.integration
def test_a_range_of_several_windows_reads_back_bit_exact(stack_settings: Settings, stored: dict) -> None:
    client = InfluxClient(stack_settings)
    strip = read_strip(client, "fd-1", T0_MS, T0_MS + 160_000 - 1)
    assert strip.fs_hz == FS and strip.t0_ms == T0_MS and strip.points == 5 + 2
    assert len(strip.values) == len(stored["I"])
    assert np.array_equal(np.isnan(strip.values), np.isnan(stored["I"]))  # the missing window is a gap
    assert np.array_equal(strip.values[~np.isnan(strip.values)], stored["I"][~np.isnan(stored["I"])])
    assert strip.covered_s == pytest.approx(5 * 10 + 90)
    # a range starting inside a window: its earlier start is found, samples line up
    mid = read_strip(client, "fd-1", T0_MS + 12_002, T0_MS + 25_000)
    k0 = int(round(12_004 * FS / 1000))
    assert mid.t0_ms == T0_MS + 12_004 and np.array_equal(mid.values[:100], stored["I"][k0 : k0 + 100])
    assert read_strip(client, "fd-1", T0_MS - 100_000, T0_MS - 50_000).empty


@pytest.mark.integration
def test_reconstructed_leads_come_back_with_their_sd(stack_settings: Settings, stored: dict) -> None:
    strips = read_strips(InfluxClient(stack_settings), "fd-1", T0_MS, T0_MS + 60_000)
    assert set(strips) == {"I", "V1"}
    v1 = strips["V1"]
    assert v1.fs_hz == 100.0 and v1.sd is not None and v1.points == 1
    k0 = int(round((10_000 - (v1.t0_ms - T0_MS)) * v1.fs_hz / 1000))
    assert np.array_equal(v1.values[k0 : k0 + 1000], stored["V1"])
    assert np.array_equal(v1.sd[k0 : k0 + 1000], stored["V1_sd"])
    assert np.all(np.isnan(v1.values[:k0]))
    assert strips["I"].sd is None


@pytest.mark.integration
def test_the_command_writes_csv_png_and_html(
    stack_settings: Settings, stored: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tools.cli.main import app

    monkeypatch.setenv("ECGMON_INFLUX_PORT", str(stack_settings.influx_port))
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        rng = ["--patient", "fd-1", "--start", str(T0_MS), "--end", str(T0_MS + 59_999)]
        result = runner.invoke(app, ["strip", *rng, "--out", str(tmp_path / "s.csv")])
        assert result.exit_code == 0, result.output
        with (tmp_path / "s.csv").open() as f:
            rows = list(csv.reader(f))
        assert rows[0] == ["t_ms", "mv"] and len(rows) == 1 + int(60 * FS)
        got = np.array([float(r[1]) if r[1] else np.nan for r in rows[1:]])
        want = stored["I"][: int(60 * FS)]
        assert np.array_equal(np.isnan(got), np.isnan(want))
        assert np.nanmax(np.abs(got - want)) <= 5e-5 and float(rows[1][0]) == T0_MS
        result = runner.invoke(app, ["strip", *rng, "--lead", "V1", "--out", str(tmp_path / "v1.csv")])
        assert result.exit_code == 0 and (tmp_path / "v1.csv").read_text().startswith("t_ms,mv,sd_mv\n")
        for suffix in ("png", "html"):
            result = runner.invoke(app, ["strip", *rng, "--out", str(tmp_path / f"s.{suffix}")])
            assert result.exit_code == 0, result.output
        assert (tmp_path / "s.png").read_bytes()[:4] == b"\x89PNG"
        assert (tmp_path / "s.html").read_text().count("data:image/png;base64,") == 1
        nothing = runner.invoke(app, ["strip", "--patient", "nobody", "--out", str(tmp_path / "n.csv")])
        assert nothing.exit_code == 1 and "Nothing is stored for nobody" in str(nothing.exception)
        bad = runner.invoke(app, ["strip", "--patient", "fd-1", "--start", "noon", "--out", str(tmp_path / "b.csv")])
        assert bad.exit_code == 1 and "ISO 8601" in str(bad.exception)
    finally:
        get_settings.cache_clear()
