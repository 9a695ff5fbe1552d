"""The bench's derived figures and its figure: latency against offered load (matplotlib, Agg)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

P99_TARGET_MS = 1000.0
"""A patient is watched in real time when the p99 latency from window produced to prediction written is at most this."""


def p99_at(loads: list[dict[str, Any]], rate: float) -> float | None:
    """p99 (ms) at offered ``rate`` windows/s, interpolated linearly between the measured loads."""
    pts = sorted((ld["offered_windows_per_s"], ld["p99_ms"]) for ld in loads if ld["p99_ms"] is not None)
    if not pts or rate < pts[0][0] or rate > pts[-1][0]:
        return None
    xs, ys = zip(*pts, strict=True)
    return float(np.interp(rate, xs, ys))


def realtime_windows_per_s(loads: list[dict[str, Any]]) -> float:
    """Delivered windows/s at the highest unsaturated load whose p99 meets ``P99_TARGET_MS`` (0 if none)."""
    ok = [
        ld["delivered_windows_per_s"]
        for ld in loads
        if not ld["saturated"] and ld["p99_ms"] is not None and ld["p99_ms"] <= P99_TARGET_MS
    ]
    return max(ok, default=0.0)


def plot(loads: list[dict[str, Any]], out: Path, *, title: str, saturation: float | None) -> None:
    """Latency p50/p99 (s, log) and delivered windows/s against offered windows/s, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    loads = sorted(loads, key=lambda ld: ld["offered_windows_per_s"])
    x = [ld["offered_windows_per_s"] for ld in loads]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    for key, label, style in (("p50_ms", "p50", "o-"), ("p99_ms", "p99", "s-")):
        ax1.plot(x, [(ld[key] or np.nan) / 1000 for ld in loads], style, label=label)
    ax1.axhline(P99_TARGET_MS / 1000, color="grey", ls="--", lw=1, label="1 s target")
    if saturation:
        for ax in (ax1, ax2):
            ax.axvline(saturation, color="tab:red", ls=":", lw=1, label=f"saturation {saturation:.1f}/s")
            ax.axvline(saturation / 2, color="tab:green", ls=":", lw=1, label="half saturation")
    ax1.set_yscale("log")
    ax1.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax1.yaxis.set_minor_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}" if v < 10 else ""))
    ax1.set_xlabel("offered load, windows/s")
    ax1.set_ylabel("window produced -> prediction written, s")
    ax1.set_title("end-to-end latency")
    ax1.legend(fontsize=8)
    ax2.plot(x, [ld["delivered_windows_per_s"] for ld in loads], "o-", label="delivered")
    lim = max(x) * 1.05 if x else 1.0
    ax2.plot([0, lim], [0, lim], color="grey", lw=1, ls="--", label="delivered = offered")
    ax2.set_xlabel("offered load, windows/s")
    ax2.set_ylabel("delivered windows/s")
    ax2.set_title("throughput")
    ax2.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
