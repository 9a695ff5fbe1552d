"""Offline alert evaluation: replay recorded or rendered lead I through the worker's own steps, score AF alerts.

The same code as the worker, minus Kafka: ``streams.preprocess.prepare_batch`` (resampling, R peaks,
heart rate, signal quality, lead-off), the registry classifier, ``ecgmon.rr.rr_irregularity`` and
``streams.alerts.AlertEngine``. The expensive part (rendering, preprocessing, classifier, RR) runs once
per window into an ``Evidence`` table per record; the engine then replays cheaply for each evidence mode
and for every point of a tuning grid.

Scoring rules (per record, inside its scored span only):

* An AF **episode** counts towards sensitivity when it lasts at least ``min_episode_s`` inside the span.
  It is **detected** when an AF alert's span overlaps it; an alert's span runs from the start of the
  window that opened it to the end of the window that resolved it (or the end of the span).
  **Onset delay** = alert open time (end of the opening window) - episode onset, floored at 0 when the
  alert was already open; the **fresh onset delay** counts only episodes whose alert opened at or after
  the onset (no alert carried over from a neighbouring episode), the latency of a new detection.
* An AF alert is **false** when no annotated AF (of any length) lies within its span widened by
  ``tolerance_s`` (60 s) on both sides. Alerts opened outside the span are not judged.
* **AF burden** = share of the span with AF annotated (truth), estimated as the share of the span's
  windows whose evidence counts as AF under the configured mode and gates (good signal, confidence,
  uncertainty, RR score): what a Holter report's burden figure is. ``af_burden_error_pp`` is the mean
  over records of the absolute difference in percentage points; ``alert_burden_error_pp`` the same
  with the time an AF alert was open as the estimate (lagged by k windows at onset and m at offset).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args

import numpy as np

from ecgmon.rr import rr_irregularity
from ecgmon.settings import AfEvidence, Settings, get_settings
from models.interfaces import CLASSES
from streams.alerts import AlertEngine, Observation, new_state
from streams.preprocess import prepare_batch

EVIDENCE_MODES: tuple[str, ...] = get_args(AfEvidence)
EVIDENCE_VERSION = 2
"""Part of every evidence cache key: 2 added the P-wave coherence, so older caches are computed again."""
TOLERANCE_S = 60.0
"""An AF alert with annotated AF within its span +- this many seconds is not false."""
PATIENTS_PER_CENTRE = 1000
"""``false_alerts_per_1000_patients_per_hour``: what a centre of this many patients hears each hour.

Every record is one patient's recording, so the pooled hours are patient-hours and
``false_alerts_per_hour`` (= ``false_alerts_per_patient_hour``) is the per-patient rate."""


@dataclass
class Evidence:
    """Per-window evidence of one record, computed once: all arrays are ``[w]`` (``probs [w, 4]``).

    Times are seconds from the record's start (``t_end_s`` = end of each window). ``probs`` and
    ``uncertainty`` are NaN when the classifier was not run; ``rr_score`` is NaN where
    ``rr_irregularity`` gave no verdict; ``max_rr_s`` and ``hr_bpm`` NaN without beats;
    ``p_coherence`` (``ecgmon.atrial``) NaN with too few beats.
    """

    record: str
    window_s: float
    t_end_s: np.ndarray
    probs: np.ndarray
    uncertainty: np.ndarray
    hr_bpm: np.ndarray
    sqi: np.ndarray
    max_rr_s: np.ndarray
    rr_score: np.ndarray
    lead_off: np.ndarray
    p_coherence: np.ndarray

    @property
    def has_classifier(self) -> bool:
        """Whether the classifier ran on these windows."""
        return bool(len(self.probs)) and bool(np.isfinite(self.probs).all())

    def save(self, path: Path) -> None:
        """Write an ``.npz`` cache (outside git), so tuning can replay without recomputing."""
        np.savez_compressed(
            path, record=self.record, window_s=self.window_s, t_end_s=self.t_end_s, probs=self.probs,
            uncertainty=self.uncertainty, hr_bpm=self.hr_bpm, sqi=self.sqi, max_rr_s=self.max_rr_s,
            rr_score=self.rr_score, lead_off=self.lead_off, p_coherence=self.p_coherence,
        )

    @classmethod
    def load(cls, path: Path) -> Evidence:
        """Read a cache written by ``save``."""
        with np.load(path) as z:
            return cls(
                record=str(z["record"]), window_s=float(z["window_s"]), t_end_s=z["t_end_s"], probs=z["probs"],
                uncertainty=z["uncertainty"], hr_bpm=z["hr_bpm"], sqi=z["sqi"], max_rr_s=z["max_rr_s"],
                rr_score=z["rr_score"], lead_off=z["lead_off"], p_coherence=z["p_coherence"],
            )

    @classmethod
    def concat(cls, parts: Sequence[Evidence]) -> Evidence:
        """Join the evidence of consecutive chunks of one record."""
        first = parts[0]
        return cls(
            record=first.record, window_s=first.window_s,
            **{
                name: np.concatenate([getattr(p, name) for p in parts])
                for name in ("t_end_s", "probs", "uncertainty", "hr_bpm", "sqi", "max_rr_s", "rr_score", "lead_off",
                             "p_coherence")
            },
        )


@dataclass
class Truth:
    """What an expert annotated: the scored span ``[span_from_s, span_to_s]`` and AF episodes ``[e, 2]`` (s)."""

    record: str
    span_from_s: float
    span_to_s: float
    episodes: np.ndarray


@dataclass
class RecordScore:
    """One record's figures (a row of ``per_record``)."""

    record: str
    hours: float
    episodes: int
    detected: int
    onset_delays_s: list[float]
    fresh_delays_s: list[float]
    alerts: int
    false_alerts: int
    true_burden: float
    est_burden: float
    alert_burden: float

    def row(self) -> dict[str, Any]:
        """JSON row for ``per_record``."""
        return {
            "record": self.record,
            "hours": round(self.hours, 4),
            "episodes": self.episodes,
            "detected": self.detected,
            "median_onset_delay_s": _median(self.onset_delays_s),
            "median_fresh_onset_delay_s": _median(self.fresh_delays_s),
            "alerts": self.alerts,
            "false_alerts": self.false_alerts,
            "true_burden_pct": round(100 * self.true_burden, 3),
            "est_burden_pct": round(100 * self.est_burden, 3),
            "alert_burden_pct": round(100 * self.alert_burden, 3),
        }


@dataclass
class Summary:
    """Figures over all records."""

    records: int
    episodes: int
    detected: int
    sensitivity: float | None
    median_onset_delay_s: float | None
    median_fresh_onset_delay_s: float | None
    fresh_onsets: int
    false_alerts: int
    false_alerts_per_hour: float | None
    hours: float
    af_burden_error_pp: float | None
    alert_burden_error_pp: float | None
    per_record: list[dict[str, Any]] = field(default_factory=list)

    def figures(self) -> dict[str, Any]:
        """The headline keys (no per-record rows)."""
        return {
            "records": self.records, "episodes": self.episodes, "detected": self.detected,
            "sensitivity": self.sensitivity, "median_onset_delay_s": self.median_onset_delay_s,
            "median_fresh_onset_delay_s": self.median_fresh_onset_delay_s, "fresh_onsets": self.fresh_onsets,
            "false_alerts": self.false_alerts, "false_alerts_per_hour": self.false_alerts_per_hour,
            "false_alerts_per_patient_hour": self.false_alerts_per_hour,
            "false_alerts_per_1000_patients_per_hour": (
                None if self.false_alerts_per_hour is None
                else round(PATIENTS_PER_CENTRE * self.false_alerts / self.hours, 2)
            ),
            "hours": round(self.hours, 3), "af_burden_error_pp": self.af_burden_error_pp,
            "alert_burden_error_pp": self.alert_burden_error_pp,
        }


def _median(values: Sequence[float]) -> float | None:
    return round(float(statistics.median(values)), 2) if values else None


# --- evidence ----------------------------------------------------------------------------------------


def compute_evidence(
    record: str,
    windows: np.ndarray,
    fs_hz: float,
    t_end_s: np.ndarray,
    classifier: Any | None,
    *,
    window_s: float,
    mc_samples: int = 0,
    batch: int = 512,
    settings: Settings | None = None,
) -> Evidence:
    """Run the worker's per-window steps on ``windows [w, k]`` (lead I, mV at ``fs_hz``).

    ``settings`` (default: the environment's, as the worker reads them) gives the lead-off thresholds.

    ``classifier`` is a registry classifier (``fs_hz``, ``window_samples``, ``predict``) or None to
    skip it (RR evidence only; ``probs`` become NaN).
    """
    s = settings or get_settings()
    n = windows.shape[0]
    model_fs = float(classifier.fs_hz) if classifier is not None else float(fs_hz)
    model_len = int(classifier.window_samples) if classifier is not None else windows.shape[1]
    probs = np.full((n, len(CLASSES)), np.nan)
    unc = np.full(n, np.nan)
    hr, sqi, max_rr, rr_score, coherence = (np.full(n, np.nan) for _ in range(5))
    off = np.zeros(n, dtype=bool)
    for lo in range(0, n, batch):
        hi = min(n, lo + batch)
        prep = prepare_batch(
            list(windows[lo:hi]), [fs_hz] * (hi - lo), model_fs_hz=model_fs, model_window_samples=model_len,
            flat_mv=s.lead_off_flat_mv, clip_fraction=s.lead_off_clip_fraction, min_peak_ratio=s.r_peak_min_ratio,
        )  # fmt: skip
        hr[lo:hi], sqi[lo:hi], max_rr[lo:hi], off[lo:hi] = prep.hr_bpm, prep.sqi, prep.max_rr_s, prep.lead_off
        coherence[lo:hi] = prep.p_wave_coherence
        rr_score[lo:hi] = [np.nan if (v := rr_irregularity(rr)) is None else v for rr in prep.rr_s]
        if classifier is not None:
            out = classifier.predict(prep.x, mc_samples=mc_samples)
            probs[lo:hi], unc[lo:hi] = out.probs, out.uncertainty
    return Evidence(record, window_s, np.asarray(t_end_s, dtype=np.float64), probs, unc, hr, sqi, max_rr,
                    rr_score, off, coherence)


# --- replay and scoring --------------------------------------------------------------------------------


def _opt(v: float) -> float | None:
    return None if not math.isfinite(v) else float(v)


@dataclass
class Replay:
    """The engine's AF alerts ``(open_s, close_s)`` and, per window, whether its evidence counted as AF."""

    intervals: list[tuple[float, float]]
    af_windows: np.ndarray


def replay_af(evidence: Evidence, settings: Settings, *, t0_ns: int = 0) -> list[tuple[float, float]]:
    """Replay the alert engine over a record's windows; return its AF alerts as ``(open_s, close_s)``.

    ``open_s`` is the end of the opening window, ``close_s`` the end of the resolving window (or of the
    last window when still open).
    """
    return replay(evidence, settings, t0_ns=t0_ns).intervals


def replay(evidence: Evidence, settings: Settings, *, t0_ns: int = 0) -> Replay:
    """``replay_af`` plus the per-window AF verdict (good signal and the configured evidence says AF)."""
    engine = AlertEngine(settings)
    positive = np.zeros(len(evidence.t_end_s), dtype=bool)
    state = new_state()
    intervals: list[tuple[float, float]] = []
    opened: float | None = None
    has_probs = evidence.has_classifier
    p_list = evidence.probs.tolist()
    unc = evidence.uncertainty.tolist()
    cols = [evidence.t_end_s.tolist(), evidence.hr_bpm.tolist(), evidence.sqi.tolist(),
            evidence.max_rr_s.tolist(), evidence.rr_score.tolist(), evidence.lead_off.tolist(),
            evidence.p_coherence.tolist()]
    for i, (t_end, hr, sqi, max_rr, rr, off, coh) in enumerate(zip(*cols, strict=True)):
        if has_probs:
            row = p_list[i]
            probs = dict(zip(CLASSES, row, strict=True))
            best = max(range(len(row)), key=row.__getitem__)
            label, conf, u = CLASSES[best], row[best], unc[i]
        else:
            probs, label, conf, u = {}, "", 0.0, 0.0
        obs = Observation(
            patient_id=evidence.record, seq=i,
            t_end_ns=t0_ns + int(t_end * 1e9), label=label, confidence=conf, uncertainty=u, probs=probs,
            hr_bpm=_opt(hr), sqi=sqi, max_rr_s=_opt(max_rr), rr_irregularity=_opt(rr), lead_off=bool(off),
            p_wave_coherence=_opt(coh),
        )
        _, events = engine.advance(state, obs)
        positive[i] = not engine.is_poor(obs) and engine.af_evidence(obs)[0]
        for e in events:
            if e.type != "af":
                continue
            if e.state == "opened":
                opened = t_end
            elif e.state == "resolved" and opened is not None:
                intervals.append((opened, t_end))
                opened = None
    if opened is not None:
        intervals.append((opened, float(evidence.t_end_s[-1])))
    return Replay(intervals, positive)


def _overlap(a0: float, a1: float, b0: float, b1: float) -> float:
    return max(0.0, min(a1, b1) - max(a0, b0))


def score_record(
    truth: Truth,
    alerts: Iterable[tuple[float, float]],
    *,
    window_s: float,
    min_episode_s: float,
    tolerance_s: float = TOLERANCE_S,
    window_t_end_s: np.ndarray | None = None,
    window_af: np.ndarray | None = None,
) -> RecordScore:
    """Score one record's AF alerts against its annotated episodes (rules in the module docstring)."""
    lo, hi = truth.span_from_s, truth.span_to_s
    span = max(hi - lo, 1e-9)
    eps = np.asarray(truth.episodes, dtype=np.float64).reshape(-1, 2)
    spans = [(max(o - window_s, lo), min(c, hi), o) for o, c in alerts if c >= lo and o - window_s <= hi]
    inside = [(a0, a1, o) for a0, a1, o in spans if lo <= o <= hi]
    clipped = [(max(o, lo), min(c, hi)) for o, c in eps if c > lo and o < hi]
    countable = [(o, c) for o, c in clipped if c - o >= min_episode_s]
    detected, delays, fresh = 0, [], []
    for on, off in countable:
        hits = [o for a0, a1, o in spans if a0 <= off and a1 >= on]
        if hits:
            detected += 1
            delays.append(max(0.0, min(hits) - on))
            if min(hits) >= on:
                fresh.append(min(hits) - on)
    false = sum(
        1 for a0, a1, _ in inside
        if not any(o <= a1 + tolerance_s and c >= a0 - tolerance_s for o, c in eps)
    )
    true_time = sum(c - o for o, c in clipped)
    est_time = sum(_overlap(o, c, lo, hi) for o, c in alerts)
    window_burden = est_time / span
    if window_t_end_s is not None and window_af is not None:
        in_span = (window_t_end_s - window_s >= lo - 1e-6) & (window_t_end_s <= hi + 1e-6)
        window_burden = float(window_af[in_span].mean()) if in_span.any() else 0.0
    return RecordScore(
        record=truth.record, hours=span / 3600.0, episodes=len(countable), detected=detected, onset_delays_s=delays,
        fresh_delays_s=fresh,
        alerts=len(inside), false_alerts=false, true_burden=true_time / span, est_burden=window_burden,
        alert_burden=est_time / span,
    )


def summarise(scores: Sequence[RecordScore]) -> Summary:
    """Pool per-record scores into the headline figures."""
    episodes = sum(s.episodes for s in scores)
    detected = sum(s.detected for s in scores)
    hours = sum(s.hours for s in scores)
    false = sum(s.false_alerts for s in scores)
    delays = [d for s in scores for d in s.onset_delays_s]
    fresh = [d for s in scores for d in s.fresh_delays_s]
    burden = [abs(s.est_burden - s.true_burden) * 100 for s in scores]
    alert_burden = [abs(s.alert_burden - s.true_burden) * 100 for s in scores]
    return Summary(
        records=len(scores), episodes=episodes, detected=detected,
        sensitivity=round(detected / episodes, 4) if episodes else None,
        median_onset_delay_s=_median(delays), median_fresh_onset_delay_s=_median(fresh), fresh_onsets=len(fresh),
        false_alerts=false,
        false_alerts_per_hour=round(false / hours, 4) if hours > 0 else None, hours=hours,
        af_burden_error_pp=round(float(np.mean(burden)), 3) if burden else None,
        alert_burden_error_pp=round(float(np.mean(alert_burden)), 3) if alert_burden else None,
        per_record=[s.row() for s in scores],
    )


def evaluate_settings(
    pairs: Sequence[tuple[Evidence, Truth]], settings: Settings, *, min_episode_s: float
) -> Summary:
    """Replay the engine with ``settings`` on every record's cached evidence and score it."""
    scores = []
    for e, t in pairs:
        r = replay(e, settings)
        scores.append(score_record(t, r.intervals, window_s=e.window_s, min_episode_s=min_episode_s,
                                   window_t_end_s=e.t_end_s, window_af=r.af_windows))
    return summarise(scores)


def by_evidence(
    pairs: Sequence[tuple[Evidence, Truth]], settings: Settings, *, min_episode_s: float
) -> dict[str, dict[str, Any]]:
    """The headline figures for classifier only, RR only and their combinations, each with ``settings``'s gates.

    Every mode is replayed (one cheap replay each), so the configured one is always among them.
    """
    has_clf = all(e.has_classifier for e, _ in pairs)
    modes = list(EVIDENCE_MODES) if has_clf else ["rr"]
    out: dict[str, dict[str, Any]] = {}
    for mode in dict.fromkeys(modes):
        s = settings.model_copy(update={"alert_af_evidence": mode})
        out[mode] = evaluate_settings(pairs, s, min_episode_s=min_episode_s).figures()
    return out

