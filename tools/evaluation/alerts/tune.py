"""Sweep the AF alert settings over cached evidence and plot sensitivity against false alerts per hour.

Tune on the LTAFDB development patients only. A point qualifies when it keeps false alerts at or
below ``MAX_FALSE_PER_H``, the median onset delay at or below ``MAX_DELAY_S`` and the AF-burden error
at or below ``MAX_BURDEN_PP``. Among qualifying points the most sensitive wins; sensitivities within
``SENS_TIE`` are ties, broken towards fewer false alerts, then a lower burden error (differences under
``BURDEN_TIE_PP`` are ties: a gate that drops true AF windows shows up here), then the stricter gate
(lower uncertainty limit, then larger k: gating that costs nothing on rendered patients protects
against the artefacts they lack), then the lower alert-time burden error. If nothing qualifies, the
fewest false alerts among points with sensitivity >= ``MIN_SENSITIVITY``, else the best sensitivity -
false alerts/h.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ecgmon.settings import Settings
from tools.evaluation.alerts.scoring import Evidence, Truth, evaluate_settings

MAX_FALSE_PER_H = 0.2
MAX_DELAY_S = 60.0
MIN_SENSITIVITY = 0.9
MAX_BURDEN_PP = 5.0
SENS_TIE = 0.005
BURDEN_TIE_PP = 1.0
KN = ((2, 3), (3, 4), (4, 6), (6, 8), (8, 10), (9, 12))
RESOLVE_M = (2, 4, 6)
LEVELS = (0.5, 0.7, 0.9)
UNCERTAINTY = (0.25, 0.5, 1.0)
"""Normalised predictive entropy: 0.25 already needs P(A) above ~0.93; 1.0 switches the gate off."""
FLOOR_PER_H = 0.0005


def grid(modes: Sequence[str]) -> list[dict[str, Any]]:
    """The AF settings to try, as ``Settings`` updates."""
    points: list[dict[str, Any]] = []
    for mode in modes:
        if mode == "classifier":
            extra: list[dict[str, Any]] = [
                {"alert_af_confidence": c, "alert_af_max_uncertainty": u} for c in LEVELS for u in UNCERTAINTY
            ]
        elif mode == "rr":
            extra = [{"alert_af_rr_min_score": r} for r in LEVELS]
        elif mode == "both":
            extra = [
                {"alert_af_confidence": c, "alert_af_max_uncertainty": u, "alert_af_rr_min_score": r}
                for c in (0.5, 0.7) for u in UNCERTAINTY[1:] for r in (0.5, 0.7)
            ]
        else:
            extra = [
                {"alert_af_combined_threshold": t, "alert_af_combined_weight": 0.5, "alert_af_max_uncertainty": u}
                for t in (0.5, 0.6, 0.7) for u in UNCERTAINTY[1:]
            ]
        for (k, n), m, e in itertools.product(KN, RESOLVE_M, extra):
            points.append({"alert_af_evidence": mode, "alert_af_k": k, "alert_af_n": n, "alert_af_resolve_m": m, **e})
    return points


def sweep(
    pairs: Sequence[tuple[Evidence, Truth]],
    settings: Settings,
    *,
    min_episode_s: float,
    points: Sequence[dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """Replay every grid point (``grid`` unless ``points`` are given); each row holds its settings and figures."""
    modes = ["classifier", "rr", "both", "combined"] if all(e.has_classifier for e, _ in pairs) else ["rr"]
    rows = []
    for update in grid(modes) if points is None else points:
        figs = evaluate_settings(pairs, settings.model_copy(update=update), min_episode_s=min_episode_s).figures()
        rows.append({"settings": update, **figs})
    return rows


def choose(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The chosen point (rule in the module docstring)."""
    def ok(r: dict[str, Any]) -> bool:
        delay, burden = r["median_onset_delay_s"], r["af_burden_error_pp"]
        return (
            (r["false_alerts_per_hour"] or 0) <= MAX_FALSE_PER_H
            and delay is not None and delay <= MAX_DELAY_S
            and burden is not None and burden <= MAX_BURDEN_PP
        )

    good = [r for r in rows if ok(r) and r["sensitivity"] is not None]
    if good:
        best = max(r["sensitivity"] for r in good)
        top = [r for r in good if r["sensitivity"] >= best - SENS_TIE]
        return min(top, key=lambda r: (
            r["false_alerts_per_hour"],
            round(r["af_burden_error_pp"] / BURDEN_TIE_PP),
            r["settings"].get("alert_af_max_uncertainty", 0.0),
            -r["settings"]["alert_af_k"],
            r.get("alert_burden_error_pp") or 0.0,
        ))
    sens = [r for r in rows if (r["sensitivity"] or 0) >= MIN_SENSITIVITY]
    if sens:
        return min(sens, key=lambda r: r["false_alerts_per_hour"])
    return max(rows, key=lambda r: (r["sensitivity"] or 0) - (r["false_alerts_per_hour"] or 0))


def _draw(ax: Any, rows: Sequence[dict[str, Any]], chosen: dict[str, Any], title: str) -> None:
    styles = {  # drawn in this order; hollow, shrinking markers keep overlapping points visible
        "rr": ("s", 30), "both": ("^", 60), "combined": ("D", 110), "classifier": ("o", 170),
    }
    for mode, (marker, size) in styles.items():
        pts = [r for r in rows if r["settings"]["alert_af_evidence"] == mode]
        if pts:
            ax.scatter([max(r["false_alerts_per_hour"], FLOOR_PER_H) for r in pts], [r["sensitivity"] for r in pts],
                       marker=marker, s=size, facecolors="none", edgecolors=f"C{list(styles).index(mode)}",
                       alpha=0.8, label=f"{mode} ({len(pts)})")
    ax.scatter([max(chosen["false_alerts_per_hour"], FLOOR_PER_H)], [chosen["sensitivity"]], s=420, marker="*",
               color="red", label="chosen")
    ax.axvline(MAX_FALSE_PER_H, color="grey", ls="--", lw=0.8)
    ax.axhline(MIN_SENSITIVITY, color="grey", ls="--", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel(f"false AF alerts per hour (log; 0 drawn at {FLOOR_PER_H:g})")
    ax.set_ylabel("sensitivity (AF episodes detected)")
    ax.set_title(f"{title}: {chosen['records']} records, {chosen['hours']:.0f} h, {len(rows)} points", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")


def plot_tradeoff(
    rows: Sequence[dict[str, Any]],
    out: Path,
    *,
    mark: dict[str, Any] | None = None,
    also: Sequence[tuple[str, Sequence[dict[str, Any]]]] = (),
    title: str = "sweep",
) -> dict[str, Any]:
    """Scatter sensitivity vs false alerts/h per evidence mode, mark the chosen point, save ``out``; return it.

    ``mark`` (a grid point's settings) marks that point instead of the one ``choose`` picks; ``also``
    adds panels ``(title, rows)`` of other sweeps with the same point marked (when they hold it).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    chosen = choose(rows) if mark is None else next(r for r in rows if r["settings"] == mark)
    panels = [(title, rows, chosen)]
    for name, other in also:
        hit = [r for r in other if r["settings"] == chosen["settings"]]
        if hit:
            panels.append((name, other, hit[0]))
    fig, axes = plt.subplots(1, len(panels), figsize=(7.0 * len(panels), 5.2), squeeze=False)
    for ax, (name, panel_rows, point) in zip(axes[0], panels, strict=True):
        _draw(ax, panel_rows, point, name)
    s = chosen["settings"]
    gates = ", ".join(f"{k.removeprefix('alert_af_')}={v}" for k, v in s.items() if k != "alert_af_evidence")
    fig.suptitle(f"AF alerts on LTAFDB (synthetic morphology on real timing); chosen: {s['alert_af_evidence']}, "
                 f"{gates}", fontsize=10)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return chosen
