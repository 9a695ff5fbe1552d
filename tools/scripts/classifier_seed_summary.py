"""Student against baseline over training seeds: one table from the per-seed cross-validation reports.

    .venv/bin/python -m tools.scripts.classifier_seed_summary 0=models/weights/classifier_aggregator_cv.json \
        1=models/weights/classifier_aggregator_cv_seed1.json ... [--json OUT]

Each report is what ``python -m models.classifier.fit_aggregator --weights student=... baseline=...`` wrote
for one seed's pair of networks (same data, schedule and folds). One seed's paired bootstrap only says how
the hold-out records vary; whether the method beats its baseline also depends on the training seed, whose
spread was as large as any gap seen. So the gap is summarised over seeds: its mean, its standard deviation
and a Student-t 95 % interval with n - 1 degrees of freedom (seeds are the replicates).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table
from scipy import stats

DEFAULT_REPORT = "models/weights/classifier_aggregator_cv.json"
ROWS = (
    ("student_agg", ("models", "student", "aggregator_cv", "f1_mean_nao")),
    ("baseline_agg", ("models", "baseline", "aggregator_cv", "f1_mean_nao")),
    ("gap_agg", ("student_minus_baseline", "aggregator_cv_mean")),
    ("student_agg_A", ("models", "student", "aggregator_cv", "f1", "A")),
    ("baseline_agg_A", ("models", "baseline", "aggregator_cv", "f1", "A")),
    ("student_mean", ("models", "student", "mean", "f1_mean_nao")),
    ("baseline_mean", ("models", "baseline", "mean", "f1_mean_nao")),
    ("gap_mean", ("student_minus_baseline", "mean_bootstrap", "f1_mean_nao")),
)


def _get(report: dict[str, Any], keys: tuple[str, ...]) -> float:
    node: Any = report
    for key in keys:
        node = node[key]
    return float(node)


def summarise(reports: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Per-seed figures and, per figure, the mean, sd and t-interval over seeds."""
    per_seed = {seed: {name: _get(rep, keys) for name, keys in ROWS} for seed, rep in reports.items()}
    over: dict[str, dict[str, Any]] = {}
    n = len(per_seed)
    for name, _ in ROWS:
        values = np.array([row[name] for row in per_seed.values()])
        mean = float(values.mean())
        sd = float(values.std(ddof=1)) if n > 1 else math.nan
        half = float(stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n)) if n > 1 else math.nan
        over[name] = {"mean": mean, "sd": sd, "ci95": [mean - half, mean + half]}
    return {"seeds": list(per_seed), "per_seed": per_seed, "over_seeds": over}


def _table(summary: dict[str, Any]) -> Table:
    table = Table(title="student vs baseline over training seeds (cinc2017 hold-out, mean F1 N/A/O)")
    table.add_column("seed")
    for name, _ in ROWS:
        table.add_column(name, justify="right")
    for seed, row in summary["per_seed"].items():
        cells = (f"{row[name]:+.3f}" if name.startswith("gap") else f"{row[name]:.3f}" for name, _ in ROWS)
        table.add_row(seed, *cells)
    over = summary["over_seeds"]
    table.add_row("mean", *(f"{over[name]['mean']:.3f}" for name, _ in ROWS))
    table.add_row("sd", *(f"{over[name]['sd']:.3f}" for name, _ in ROWS))
    table.add_row("95 % t", *(f"[{over[name]['ci95'][0]:+.3f}, {over[name]['ci95'][1]:+.3f}]" for name, _ in ROWS))
    return table


def main(argv: list[str] | None = None) -> None:
    """Read SEED=REPORT pairs, print the table, optionally write the JSON."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("reports", nargs="+", help="SEED=PATH of a fit_aggregator cross-validation report")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    paths: dict[str, str] = {}
    for item in args.reports:
        seed, sep, path = item.partition("=")
        if not sep or not Path(path).is_file():
            ap.error(f"{item!r}: give SEED=PATH of an existing report, e.g. 0={DEFAULT_REPORT}")
        paths[seed] = path
    summary = summarise({seed: json.loads(Path(path).read_text()) for seed, path in paths.items()})
    summary["reports"] = paths
    Console().print(_table(summary))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
