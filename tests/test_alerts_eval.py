"""Offline alert evaluation: the scoring rules on hand-made timelines, and ``eval alerts`` on real records."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from ecgmon.settings import Settings
from tools.cli.main import app
from tools.evaluation.alerts.run import EvalOptions, collect, report
from tools.evaluation.alerts.scoring import Evidence, Truth, evaluate_settings, replay_af, score_record, summarise

KEYS = {"records", "episodes", "detected", "sensitivity", "median_onset_delay_s", "false_alerts_per_hour",
        "false_alerts_per_patient_hour", "false_alerts_per_1000_patients_per_hour"}
LTAF_KEYS = KEYS | {"hours", "af_burden_error_pp", "per_record", "by_evidence", "windows_per_s"}


def test_scoring_rules_on_a_hand_made_timeline() -> None:
    truth = Truth("r", 0.0, 3600.0, np.array([[100.0, 400.0], [1000.0, 1020.0]]))
    alerts = [(130.0, 450.0), (1050.0, 1060.0), (2000.0, 2100.0)]
    s = score_record(truth, alerts, window_s=10.0, min_episode_s=30.0)
    assert (s.episodes, s.detected, s.onset_delays_s, s.fresh_delays_s) == (1, 1, [30.0], [30.0])  # 20 s: not counted
    assert (s.alerts, s.false_alerts) == (3, 1)  # 1050 is within 60 s of the short episode: not false
    assert s.true_burden == pytest.approx(320 / 3600)
    assert s.est_burden == pytest.approx((320 + 10 + 100) / 3600)
    summary = summarise([s])
    assert summary.sensitivity == 1.0 and summary.false_alerts_per_hour == pytest.approx(1.0)
    figures = summary.figures()  # one patient for one hour: 1 false alert per patient-hour, 1,000 for a centre
    assert figures["false_alerts_per_patient_hour"] == figures["false_alerts_per_hour"] == pytest.approx(1.0)
    assert figures["false_alerts_per_1000_patients_per_hour"] == pytest.approx(1000.0)
    assert summary.af_burden_error_pp == pytest.approx(100 * 110 / 3600, abs=1e-3)


def test_scoring_ignores_everything_outside_the_span() -> None:
    truth = Truth("r", 1000.0, 4600.0, np.array([[0.0, 900.0], [4500.0, 5000.0]]))
    alerts = [(200.0, 950.0), (4700.0, 4800.0)]
    s = score_record(truth, alerts, window_s=10.0, min_episode_s=30.0)
    assert (s.alerts, s.false_alerts) == (0, 0)
    assert (s.episodes, s.detected) == (1, 0)  # 4500-4600 lies inside; nothing overlaps it in the span


def test_replay_opens_and_resolves_af_from_evidence() -> None:
    n = 30
    af = np.zeros(n, dtype=bool)
    af[10:20] = True
    probs = np.where(af[:, None], [0.05, 0.9, 0.04, 0.01], [0.9, 0.05, 0.04, 0.01])
    ev = Evidence("r", 10.0, (np.arange(n) + 1) * 10.0, probs, np.full(n, 0.1), np.full(n, 80.0), np.full(n, 0.9),
                  np.full(n, 1.0), np.where(af, 0.9, 0.1), np.zeros(n, dtype=bool), np.full(n, 0.1))
    s = Settings(alert_af_k=3, alert_af_n=4, alert_af_resolve_m=3, alert_af_evidence="classifier")
    assert replay_af(ev, s) == [(130.0, 230.0)]  # opens at the 3rd AF window, resolves after the 3rd clean one
    assert replay_af(ev, s.model_copy(update={"alert_af_evidence": "rr"})) == [(130.0, 230.0)]
    summary = evaluate_settings([(ev, Truth("r", 0.0, 300.0, np.array([[100.0, 200.0]])))], s, min_episode_s=30)
    assert (summary.sensitivity, summary.median_onset_delay_s, summary.false_alerts) == (1.0, 30.0, 0)
    assert summary.af_burden_error_pp == pytest.approx(0.0)  # 10 AF windows of 30 = 100 s of 300
    assert summary.alert_burden_error_pp == pytest.approx(0.0)  # open 130-230: lagged but as long


def test_cpsc2021_records_in_place(data_dir: Path) -> None:
    settings = Settings()
    opts = EvalOptions("cpsc2021", data_dir / "cpsc2021_sample", records=["data_92_19", "data_35_4"], classifier=False)
    pairs, seconds, computed = collect(opts, settings)
    out = report(pairs, settings, opts, seconds=seconds, computed=computed)
    assert set(out) >= KEYS
    assert out["records"] == 2 and out["episodes"] == 1  # of data_92_19's 18 s and 40 s episodes
    assert computed == sum(len(e.t_end_s) for e, _ in pairs) > 0
    assert 0.0 <= out["sensitivity"] <= 1.0


def test_cli_eval_alerts_cpsc2021(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "cpsc.json"
    result = CliRunner().invoke(app, [
        "eval", "alerts", "--dataset", "cpsc2021", "--path", str(data_dir / "cpsc2021_sample"),
        "--records", "data_8_2", "--json", str(out), "--no-classifier",
    ])
    assert result.exit_code == 0, result.output
    got = json.loads(out.read_text())
    assert set(got) >= KEYS and got["episodes"] == 1


def test_cli_rejects_unknown_dataset(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["eval", "alerts", "--dataset", "mitdb", "--path", str(tmp_path),
                                      "--json", str(tmp_path / "x.json")])
    assert result.exit_code != 0


def test_cli_eval_alerts_ltafdb_slice(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "ltafdb.json"
    result = CliRunner().invoke(app, [
        "eval", "alerts", "--dataset", "ltafdb", "--path", str(data_dir / "ltafdb"), "--records", "112",
        "--hours", "0.5", "--json", str(out), "--no-classifier",
    ])
    assert result.exit_code == 0, result.output
    got = json.loads(out.read_text())
    assert set(got) >= LTAF_KEYS
    assert got["hours"] == pytest.approx(0.5, abs=0.01) and got["windows"] == 180
    assert got["episodes"] >= 1 and set(got["by_evidence"]) == {"rr"}
    row = got["per_record"][0]
    assert row["record"] == "112" and row["true_burden_pct"] > 10  # 112 is in AF much of its first half hour


def test_classifier_evidence_wiring(data_dir: Path) -> None:
    """The registry classifier's probabilities reach the evidence and every evidence mode replays."""
    from ecgmon.errors import ModelError
    from models import registry

    try:
        clf = registry.load("student", weights=True)
    except ModelError:  # weights not trained yet: the untrained network has the same interface
        clf = registry.load("student", weights=False)
    settings = Settings(alert_af_evidence="combined")
    opts = EvalOptions("cpsc2021", data_dir / "cpsc2021_sample", records=["data_92_12"], mc_samples=2)
    pairs, seconds, computed = collect(opts, settings, classifier=clf)
    ev = pairs[0][0]
    assert ev.has_classifier and np.allclose(ev.probs.sum(axis=1), 1.0, atol=1e-4)
    assert np.all((ev.uncertainty >= 0) & (ev.uncertainty <= 1))
    out = report(pairs, settings, opts, seconds=seconds, computed=computed)
    assert set(out["by_evidence"]) == {"classifier", "rr", "both", "combined"}
    assert out["configured_evidence"] == "combined"


def test_tuning_chooses_the_most_sensitive_point_within_the_limits(tmp_path: Path) -> None:
    from tools.evaluation.alerts.tune import choose, grid, plot_tradeoff

    def row(mode: str, sens: float, fph: float, delay: float) -> dict:
        return {"settings": {"alert_af_evidence": mode, "alert_af_k": 3, "alert_af_n": 4, "alert_af_resolve_m": 3},
                "records": 2, "hours": 48.0, "sensitivity": sens, "false_alerts_per_hour": fph,
                "median_onset_delay_s": delay, "af_burden_error_pp": 1.0}

    rows = [row("rr", 0.99, 0.5, 10), row("classifier", 0.95, 0.1, 30), row("both", 0.97, 0.15, 90),
            row("combined", 0.93, 0.0, 20)]
    assert choose(rows)["settings"]["alert_af_evidence"] == "classifier"  # "both" is too slow, "rr" too noisy
    png = tmp_path / "tradeoff.png"
    assert plot_tradeoff(rows, png)["sensitivity"] == 0.95 and png.stat().st_size > 10_000
    points = grid(["classifier", "rr", "both", "combined"])
    assert all(p["alert_af_k"] <= p["alert_af_n"] for p in points)
    assert {p["alert_af_evidence"] for p in points} == {"classifier", "rr", "both", "combined"}
