"""Does atrial activity tell the false AF alerts apart? A P-wave coherence check on the development streams.

``ecgmon.atrial.p_wave_coherence`` measures whether the same P wave comes before every QRS of a window
(1) or activity unrelated to the QRS (about 1/beats), as in AF. If the O records that both the
classifier and the RR evidence call AF had coherent P waves, a veto on it would remove false alerts.

    python -m tools.evaluation.alerts.atrial --dev /work/data/alerts_devset --cache DIR [--json OUT]

reads the worker's evidence for every window from the alert evaluation's cache (computed there when
missing), adds the coherence, and reports its AUC for AF windows against the rest, and what vetoing
windows above each coherence limit does to the windows that count as AF under the shipped settings.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path
from typing import Any

import numpy as np

from ecgmon.atrial import p_wave_coherence
from ecgmon.dsp import r_peaks
from ecgmon.jsonout import print_and_write
from ecgmon.settings import get_settings
from streams.preprocess import PEAK_METHOD
from streams.preprocess import _bandpass as bandpass
from tools.evaluation.alerts import cpsc2021
from tools.evaluation.alerts.run import EvalOptions, collect


def _labels(folder: Path, record: str, t_end_s: np.ndarray, window_s: float) -> list[str]:
    """The source record's class (N, A, O, ~) at each window's middle, from the build's ``pieces.csv``."""
    with (folder / "pieces.csv").open() as f:
        pieces = [p for p in csv.DictReader(f) if p["record"] == record]
    out = []
    for t in t_end_s - window_s / 2:
        out.append(next((p["label"] for p in pieces if float(p["start_s"]) <= t < float(p["end_s"])), "?"))
    return out


def windows_table(dev: Path, cache: Path) -> dict[str, np.ndarray]:
    """Per window of ``mixed`` and ``other``: label, P(A), RR score, SQI and the P-wave coherence."""
    s = get_settings()
    rows: dict[str, list[Any]] = {k: [] for k in ("label", "p_af", "rr", "sqi", "coherence")}
    for part in ("mixed", "other"):
        folder = dev / part
        pairs, _, _ = collect(EvalOptions("cpsc2021", folder, cache_dir=cache), s)
        for ev, _truth in pairs:
            windows, fs, t_end, _ = cpsc2021.load_record(folder, ev.record, window_s=s.window_s, hop_s=s.hop_s)
            filtered = bandpass(np.asarray(windows, dtype=np.float64), fs)
            for i in range(len(t_end)):
                peaks = r_peaks(filtered[i], fs, method=PEAK_METHOD, min_ratio=s.r_peak_min_ratio)
                rows["coherence"].append(p_wave_coherence(filtered[i], peaks, fs))
            rows["label"] += _labels(folder, ev.record, np.asarray(t_end), s.window_s)
            rows["p_af"] += ev.probs[:, 1].tolist()
            rows["rr"] += ev.rr_score.tolist()
            rows["sqi"] += ev.sqi.tolist()
    return {k: np.asarray(v) for k, v in rows.items()}


def summarise(t: dict[str, np.ndarray]) -> dict[str, Any]:
    """AUCs and the veto table, with the shipped fusion (``combined``) deciding which windows count as AF."""
    from sklearn.metrics import roc_auc_score

    s = get_settings()
    w = s.alert_af_combined_weight
    score = w * t["p_af"] + (1 - w) * np.nan_to_num(t["rr"])
    good = (t["sqi"] >= s.alert_min_sqi) & np.isin(t["label"], ["N", "A", "O", "~"])
    af = t["label"] == "A"
    coh = np.nan_to_num(t["coherence"], nan=0.0)
    counted = good & (score >= s.alert_af_combined_threshold)
    out: dict[str, Any] = {
        "windows": int(good.sum()),
        "auc_af_vs_rest": {
            "p_af": round(float(roc_auc_score(af[good], t["p_af"][good])), 3),
            "combined": round(float(roc_auc_score(af[good], score[good])), 3),
            "minus_coherence": round(float(roc_auc_score(af[good], -coh[good])), 3),
        },
        "coherence_quantiles_10_50_90": {
            c: np.round(np.nanpercentile(t["coherence"][good & (t["label"] == c)], [10, 50, 90]), 3).tolist()
            for c in ("N", "A", "O", "~")
        },
        "counted_as_af": {"af": int((counted & af).sum()), "not_af": int((counted & ~af).sum())},
        "veto": [],
    }
    for limit in (0.2, 0.3, 0.35, 0.4, 0.5):
        kept = counted & ~(coh > limit)
        out["veto"].append(
            {"coherence_above": limit, "af_kept": int((kept & af).sum()), "not_af_kept": int((kept & ~af).sum())}
        )
    return out


def main(argv: list[str] | None = None) -> None:
    """Print (and write) the coherence report."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dev", type=Path, required=True, help="Folder from `ecgmon eval build-devset`.")
    p.add_argument("--cache", type=Path, required=True, help="Evidence cache of `ecgmon eval alerts` (outside git).")
    p.add_argument("--json", type=Path, default=None)
    a = p.parse_args(argv)
    print_and_write(summarise(windows_table(a.dev, a.cache)), a.json)


if __name__ == "__main__":
    main()
