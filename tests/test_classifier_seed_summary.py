"""The over-seeds summary reads the committed per-seed cross-validation reports correctly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tools.scripts.classifier_seed_summary import main, summarise

WEIGHTS = Path(__file__).resolve().parents[1] / "models" / "weights"
REPORTS = {"0": WEIGHTS / "classifier_aggregator_cv.json", "1": WEIGHTS / "classifier_aggregator_cv_seed1.json"}


def test_summary_matches_the_reports_and_its_interval_holds_the_mean() -> None:
    reports = {seed: json.loads(path.read_text()) for seed, path in REPORTS.items()}
    summary = summarise(reports)
    gaps = [rep["student_minus_baseline"]["aggregator_cv_mean"] for rep in reports.values()]
    assert summary["per_seed"]["1"]["gap_agg"] == pytest.approx(gaps[1])
    over = summary["over_seeds"]["gap_agg"]
    assert over["mean"] == pytest.approx(sum(gaps) / 2)
    assert over["ci95"][0] < over["mean"] < over["ci95"][1]
    student = summary["per_seed"]["0"]["student_agg"]
    assert student == pytest.approx(reports["0"]["models"]["student"]["aggregator_cv"]["f1_mean_nao"])


def test_cli_writes_json_and_refuses_a_missing_report(tmp_path: Path) -> None:
    out = tmp_path / "seeds.json"
    main([f"{seed}={path}" for seed, path in REPORTS.items()] + ["--json", str(out)])
    assert json.loads(out.read_text())["seeds"] == ["0", "1"]
    with pytest.raises(SystemExit) as err:
        main(["0=" + str(tmp_path / "missing.json")])
    assert err.value.code == 2
