"""Tune the AF alert settings on the real-wearable development streams, with a held-out half.

The streams come from ``ecgmon eval build-devset`` (``mixed/``: AF episodes among N, O and noisy
records; ``other/``: O and noisy records only). Evidence is computed once per stream (cached) and
the engine replayed for every grid point on four sets: the even streams (fold A), the odd streams
(fold B; the streams are record-disjoint), all mixed streams, and the other-rhythm set.

Guarding against overfitting: ``choose_on`` picks a point on one fold (sensitivity >= ``MIN_SENS``
and median onset delay <= ``MAX_DELAY_S`` there, then the fewest false alerts, then the most
sensitive, then the fewest false alerts on the other-rhythm set) and the report gives its figures on
the other fold, both ways round: that is what the selection rule is worth on streams it never saw.
The shipped point is ``choose_robust``: it must qualify on both folds and has the fewest false
alerts on its worse fold (ties: all streams, the other-rhythm set, the delay, then the fewest changes
from the previous defaults).

A short cross-check grid is replayed on LTAFDB and CPSC 2021 evidence too, and the trade-off plot
(sensitivity against false AF alerts per patient-hour) draws the development streams, LTAFDB and
CPSC 2021 side by side, the chosen point starred and the previous defaults marked.

    python -m tools.evaluation.alerts.devtune --dev /work/data/alerts_devset \\
        --cache /work/runs/alerts/cache --ltafdb-cache /work/runs/alerts/ltafdb-cache \\
        --json /work/runs/alerts/devtune.json --plot docs/alert_tradeoff_dev.png
"""

from __future__ import annotations

import argparse
import itertools
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ecgmon.settings import Settings, get_settings
from tools.evaluation.alerts.run import EvalOptions, collect
from tools.evaluation.alerts.scoring import Evidence, Truth, evaluate_settings

MIN_SENS = 0.95
MAX_DELAY_S = 60.0
MIN_EPISODE_S = 60.0
PREVIOUS = {  # the defaults before issue 23 (tuned on LTAFDB)
    "alert_af_evidence": "classifier", "alert_af_k": 3, "alert_af_n": 4, "alert_af_resolve_m": 6,
    "alert_af_confidence": 0.5, "alert_af_max_uncertainty": 0.5, "alert_min_sqi": 0.5,
}
Pairs = Sequence[tuple[Evidence, Truth]]


def grid() -> list[dict[str, Any]]:
    """The development grid: combined fusion, classifier alone, both, RR alone; k-of-n, m, SQI gate."""
    kn, ms, sqis = ((3, 4), (4, 5), (5, 7)), (4, 6), (0.3, 0.4, 0.5)
    points: list[dict[str, Any]] = []
    for w, t, (k, n), u, m, q in itertools.product(
        (0.4, 0.5, 0.6), (0.6, 0.7, 0.75, 0.8, 0.85), kn, (0.7, 1.0), ms, sqis
    ):
        points.append({"alert_af_evidence": "combined", "alert_af_combined_weight": w,
                       "alert_af_combined_threshold": t, "alert_af_k": k, "alert_af_n": n,
                       "alert_af_max_uncertainty": u, "alert_af_resolve_m": m, "alert_min_sqi": q})
    for (k, n), c, u, m, q in itertools.product(kn, (0.5, 0.7, 0.9), (0.5, 0.7, 1.0), ms, sqis):
        points.append({"alert_af_evidence": "classifier", "alert_af_confidence": c, "alert_af_k": k, "alert_af_n": n,
                       "alert_af_max_uncertainty": u, "alert_af_resolve_m": m, "alert_min_sqi": q})
    for (k, n), r, m in itertools.product(kn, (0.5, 0.7, 0.9), ms):
        points.append({"alert_af_evidence": "both", "alert_af_rr_min_score": r, "alert_af_k": k, "alert_af_n": n,
                       "alert_af_resolve_m": m, "alert_af_max_uncertainty": 0.7, "alert_min_sqi": 0.4})
        points.append({"alert_af_evidence": "rr", "alert_af_rr_min_score": r, "alert_af_k": k, "alert_af_n": n,
                       "alert_af_resolve_m": m, "alert_min_sqi": 0.4})
    if PREVIOUS not in points:
        points.append(dict(PREVIOUS))
    return points


def cross_grid(chosen: dict[str, Any]) -> list[dict[str, Any]]:
    """A short grid for LTAFDB and CPSC 2021: the chosen point, its fusion neighbours and the previous defaults."""
    points = [dict(PREVIOUS), dict(chosen)]
    for w, t in itertools.product((0.4, 0.5, 0.6), (0.6, 0.7, 0.75, 0.8, 0.85)):
        points.append({**chosen, "alert_af_evidence": "combined", "alert_af_combined_weight": w,
                       "alert_af_combined_threshold": t})
    for mode in ("classifier", "rr", "both"):
        points.append({**chosen, "alert_af_evidence": mode})
    out: list[dict[str, Any]] = []
    for p in points:
        if p not in out:
            out.append(p)
    return out


def sweep(sets: dict[str, Pairs], settings: Settings, points: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every point's headline figures on every named set: ``{"settings": ..., set name: figures}``."""
    rows = []
    for update in points:
        s = settings.model_copy(update=update)
        rows.append({"settings": update, **{
            name: evaluate_settings(pairs, s, min_episode_s=MIN_EPISODE_S).figures() for name, pairs in sets.items()
        }})
    return rows


def _qualifies(f: dict[str, Any]) -> bool:
    delay = f["median_onset_delay_s"]
    return (f["sensitivity"] or 0.0) >= MIN_SENS and delay is not None and delay <= MAX_DELAY_S


def choose_on(rows: Sequence[dict[str, Any]], fold: str) -> dict[str, Any]:
    """The point a tuner would pick seeing only ``fold`` (rule in the module docstring)."""
    return min(rows, key=lambda r: (
        not _qualifies(r[fold]), r[fold]["false_alerts"], -(r[fold]["sensitivity"] or 0.0),
        r["other"]["false_alerts"], r[fold]["median_onset_delay_s"] or 1e9,
    ))


def _changes(settings: dict[str, Any]) -> int:
    """How many of the previous defaults' values a point changes (ties go to the fewest changes)."""
    return sum(1 for k, v in PREVIOUS.items() if k in settings and settings[k] != v)


def choose_robust(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The shipped point: qualifies on both folds, fewest false alerts on the worse fold (module docstring)."""
    return min(rows, key=lambda r: (
        not (_qualifies(r["A"]) and _qualifies(r["B"])), max(r["A"]["false_alerts"], r["B"]["false_alerts"]),
        r["all"]["false_alerts"], r["other"]["false_alerts"], r["all"]["median_onset_delay_s"] or 1e9,
        _changes(r["settings"]),
    ))


def _load(dataset: str, path: Path, cache: Path | None, settings: Settings, records: Sequence[str] | None = None,
          mc_samples: int | None = None) -> list[tuple[Evidence, Truth]]:
    opts = EvalOptions(dataset, path, min_episode_s=MIN_EPISODE_S, cache_dir=cache, records=records,  # type: ignore[arg-type]
                       mc_samples=mc_samples)
    pairs, _, _ = collect(opts, settings)
    return pairs


def plot(panels: Sequence[tuple[str, Sequence[dict[str, Any]], str]], chosen: dict[str, Any], out: Path) -> None:
    """One panel per ``(title, rows, set name)``: sensitivity vs false alerts/h, chosen starred, previous ringed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from tools.evaluation.alerts.tune import FLOOR_PER_H

    styles = {"rr": "s", "both": "^", "combined": "D", "classifier": "o"}
    fig, axes = plt.subplots(1, len(panels), figsize=(6.2 * len(panels), 5.0), squeeze=False)
    for ax, (title, rows, key) in zip(axes[0], panels, strict=True):
        for i, (mode, marker) in enumerate(styles.items()):
            pts = [r[key] for r in rows if r["settings"]["alert_af_evidence"] == mode]
            if pts:
                ax.scatter([max(f["false_alerts_per_hour"], FLOOR_PER_H) for f in pts],
                           [f["sensitivity"] for f in pts], marker=marker, s=40, facecolors="none",
                           edgecolors=f"C{i}", alpha=0.7, label=f"{mode} ({len(pts)})")
        for settings, mark, label in ((PREVIOUS, "X", "previous defaults"), (chosen, "*", "chosen")):
            hit = [r[key] for r in rows if r["settings"] == settings]
            if hit:
                ax.scatter([max(hit[0]["false_alerts_per_hour"], FLOOR_PER_H)], [hit[0]["sensitivity"]], marker=mark,
                           s=300 if mark == "*" else 150, color="red" if mark == "*" else "black", label=label,
                           zorder=5)
        ax.axhline(MIN_SENS, color="grey", ls="--", lw=0.8)
        ax.axvline(0.05, color="grey", ls=":", lw=0.8)
        ax.set_xscale("log")
        ax.set_xlabel(f"false AF alerts per patient-hour (log; 0 drawn at {FLOOR_PER_H:g})")
        ax.set_ylabel(f"sensitivity (AF episodes >= {MIN_EPISODE_S:g} s)")
        first = rows[0][key]
        ax.set_title(f"{title}: {first['records']} records, {first['hours']:.1f} h, {first['episodes']} episodes",
                     fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    gates = ", ".join(f"{k.removeprefix('alert_')}={v}" for k, v in chosen.items())
    fig.suptitle(f"AF alert trade-off; chosen: {gates}", fontsize=9)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> None:
    """Sweep, select (two-fold and robust), cross-check on LTAFDB and CPSC 2021, write JSON and the plot."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dev", type=Path, required=True, help="Folder written by `ecgmon eval build-devset`.")
    ap.add_argument("--cache", type=Path, default=None, help="Evidence cache (outside git).")
    ap.add_argument("--ltafdb", type=Path, default=Path("../shared/data/ltafdb"))
    ap.add_argument("--ltafdb-cache", type=Path, default=None,
                    help="Cache of `ecgmon eval alerts --dataset ltafdb --mc-samples 0 --cache DIR`; "
                    "its records are used.")
    ap.add_argument("--cpsc2021", type=Path, default=Path("../shared/data/cpsc2021_sample"))
    ap.add_argument("--json", type=Path, required=True)
    ap.add_argument("--plot", type=Path, required=True)
    args = ap.parse_args(argv)
    settings = get_settings()
    mixed = _load("cpsc2021", args.dev / "mixed", args.cache, settings)
    other = _load("cpsc2021", args.dev / "other", args.cache, settings)
    sets: dict[str, Pairs] = {"A": mixed[0::2], "B": mixed[1::2], "all": mixed, "other": other}
    rows = sweep(sets, settings, grid())
    on_a, on_b, robust = choose_on(rows, "A"), choose_on(rows, "B"), choose_robust(rows)
    chosen = robust["settings"]
    cross: dict[str, Pairs] = {"cpsc2021": _load("cpsc2021", args.cpsc2021, args.cache, settings)}
    if args.ltafdb_cache is not None:
        from tools.evaluation.alerts import ltafdb

        tag = {p.name.split("-")[2] for p in args.ltafdb_cache.glob("ltafdb-*-mc0-*.npz")}
        names = [n for n in ltafdb.list_records(args.ltafdb) if n in tag]
        if names:
            cross["ltafdb"] = _load("ltafdb", args.ltafdb, args.ltafdb_cache, settings, names, mc_samples=0)
    cross_rows = sweep(cross, settings, cross_grid(chosen))
    out = {
        "rule": __doc__,
        "points": len(rows),
        "selected_on_A": {"settings": on_a["settings"], "A": on_a["A"], "B (held out)": on_a["B"],
                          "other": on_a["other"]},
        "selected_on_B": {"settings": on_b["settings"], "B": on_b["B"], "A (held out)": on_b["A"],
                          "other": on_b["other"]},
        "chosen": robust,
        "previous": next(r for r in rows if r["settings"] == PREVIOUS),
        "cross": cross_rows,
        "ltafdb_records": [e.record for e, _ in cross.get("ltafdb", [])],
        "grid": rows,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=1))
    panels: list[tuple[str, Sequence[dict[str, Any]], str]] = [("development streams (real wearable)", rows, "all")]
    if "ltafdb" in cross:
        panels.append(("LTAFDB (synthetic morphology, real timing)", cross_rows, "ltafdb"))
    panels.append(("CPSC 2021 sample (real Holter)", cross_rows, "cpsc2021"))
    plot(panels, chosen, args.plot)
    for name, r in (("selected on A", on_a), ("selected on B", on_b), ("chosen (robust)", robust)):
        figs = {k: (r[k]["sensitivity"], r[k]["false_alerts"], r[k]["false_alerts_per_hour"],
                    r[k]["median_onset_delay_s"]) for k in ("A", "B", "all", "other")}
        print(name, json.dumps(r["settings"]), figs)


if __name__ == "__main__":
    main()
