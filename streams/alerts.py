"""The alert engine: per-patient state machines that turn window evidence into few, trustworthy alerts.

In published ICU audits most arrhythmia alarms were false, and staff who drown in them stop
listening, so every rule here gates: a rhythm alert needs sustained evidence from windows of
acceptable signal quality, and a technical alert (poor signal or lead-off) silences rhythm alerts
while it lasts. Every threshold is a ``Settings`` field (``alert_*``).

Alert types, their rules and severities:

=========  ============================================================  =================================
type       opens / resolves                                              severity
=========  ============================================================  =================================
af         >= k of the last n good windows are AF by the configured      ``medium``; ``high`` while the heart
           evidence (classifier: P(A) >= c and uncertainty <= u;         rate exceeds ``alert_af_rvr_bpm``
           rr: COSEn score >= ``alert_af_rr_min_score``; both; or        (rapid ventricular response)
           combined, the default: w P(A) + (1-w) score >=
           threshold, so regular RR vetoes AF); a window with
           coherent P waves never counts (``alert_af_max_p_``
           ``coherence``); resolves after m good non-AF
           windows in a row
brady      heart rate < ``alert_brady_bpm`` for ``alert_rate_sustain_``  ``high``; ``critical`` below
           ``windows`` good windows in a row; resolves after             ``alert_brady_critical_bpm``
           ``alert_rate_resolve_windows`` in range
tachy      heart rate > ``alert_tachy_bpm`` likewise                     ``high``; ``critical`` above
                                                                         ``alert_tachy_critical_bpm``
pause      a good window with an RR interval > ``alert_pause_s``;        ``high``; ``critical`` above
           resolves after ``alert_pause_resolve_windows`` without        ``alert_pause_critical_s``
technical  ``alert_technical_windows`` poor windows in a row (SQI <       ``low``
           ``alert_min_sqi`` or lead-off); resolves after
           ``alert_technical_resolve_windows`` good windows in a row
=========  ============================================================  =================================

Events are ``opened`` (once per episode), ``updated`` (only when the severity escalates) and
``resolved`` (once). Each episode has a stable ``alert_id`` = ``patient:type:opening seq``, so a
replay after a crash reproduces the same ids and consumers can de-duplicate.

While a technical alert is open no rhythm alert opens, and open rhythm alerts neither count nor
resolve on the poor windows (the data says nothing); poor windows never count as rhythm evidence.

State is a JSON-able dict (stored in a Faust table keyed by patient id, so it survives a worker
restart through the changelog). A window whose ``seq`` is not above the last one seen changes
nothing and emits nothing, so duplicates and late arrivals are harmless.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any

from ecgmon.contracts import Alert, AlertState
from ecgmon.settings import Settings

AF_CLASS = "A"
"""The classifier class that stands for atrial fibrillation / flutter."""

STATE_VERSION = 1
SEVERITY_RANK = {"low": 0, "medium": 1, "high": 2, "critical": 3}
"""An open episode's severity only ever escalates, so a rate hovering at a limit cannot flood updates."""


@dataclass(frozen=True)
class Observation:
    """One window's evidence for the alert engine.

    ``t_end_ns`` is the Unix time of the window's end; ``probs`` maps the classifier's classes to
    probabilities; ``hr_bpm`` is the window's heart rate (None when no beats were found); ``sqi`` the
    signal-quality index in [0, 1]; ``max_rr_s`` the longest RR interval in s (None: fewer than 2
    beats); ``rr_irregularity`` the COSEn score in [0, 1] (None: too few beats); ``lead_off`` the
    device's or preprocessing's lead-off verdict; ``p_wave_coherence`` in [0, 1] (``ecgmon.atrial``; None:
    too few beats).
    """

    patient_id: str
    seq: int
    t_end_ns: int
    label: str
    confidence: float
    uncertainty: float
    probs: dict[str, float]
    hr_bpm: float | None
    sqi: float
    max_rr_s: float | None
    rr_irregularity: float | None
    lead_off: bool
    p_wave_coherence: float | None = None


def new_state() -> dict[str, Any]:
    """A patient's state before the first window."""
    return {
        "v": STATE_VERSION,
        "last_seq": -1,
        "af_hist": [],  # 0/1 per recent good window, newest last, at most n long
        "af_clean": 0,
        "brady_run": 0,
        "tachy_run": 0,
        "rate_ok_run": {"brady": 0, "tachy": 0},
        "pause_clean": 0,
        "poor_run": 0,
        "good_run": 0,
        "open": {},  # type -> {"alert_id", "severity", "opened_seq", "confidence"}
    }


def _finite(x: float | None) -> bool:
    return x is not None and math.isfinite(x)


class AlertEngine:
    """Applies the alert rules of ``settings`` to one patient's windows, one at a time."""

    def __init__(self, settings: Settings) -> None:
        self.s = settings
        if settings.alert_af_k > settings.alert_af_n:
            from ecgmon.errors import ConfigError

            raise ConfigError(
                f"alert_af_k ({settings.alert_af_k}) exceeds alert_af_n ({settings.alert_af_n}); "
                "set ECGMON_ALERT_AF_K <= ECGMON_ALERT_AF_N."
            )

    # --- evidence -----------------------------------------------------------------------------------
    def is_poor(self, obs: Observation) -> bool:
        """A window the rhythm rules must ignore: lead-off or signal quality below ``alert_min_sqi``."""
        return bool(obs.lead_off) or not _finite(obs.sqi) or obs.sqi < self.s.alert_min_sqi

    def af_evidence(self, obs: Observation) -> tuple[bool, float]:
        """Whether a good window counts as AF under ``alert_af_evidence``, and the evidence strength in [0, 1]."""
        s = self.s
        p_af = float(obs.probs.get(AF_CLASS, 0.0))
        certain = _finite(obs.uncertainty) and obs.uncertainty <= s.alert_af_max_uncertainty
        clf = certain and p_af >= s.alert_af_confidence
        rr = obs.rr_irregularity
        rr_ok = _finite(rr) and rr is not None and rr >= s.alert_af_rr_min_score
        mode = s.alert_af_evidence
        coherence = obs.p_wave_coherence
        if coherence is not None and _finite(coherence) and coherence > s.alert_af_max_p_coherence:
            # The same P wave before every QRS: whatever else looks irregular (ectopy, pauses), not AF.
            return False, 0.0
        if mode == "classifier":
            return clf, p_af
        if mode == "rr":
            return rr_ok, float(rr) if rr is not None and _finite(rr) else 0.0
        if mode == "both":
            return clf and rr_ok, min(p_af, float(rr) if rr is not None and _finite(rr) else 0.0)
        # combined (the default): a weighted mean; without RR (too few beats) the classifier speaks alone.
        # With w = 0.5 and threshold 0.75 a window needs RR score >= 0.5 however sure the classifier is, so
        # a fast regular rhythm (sinus tachycardia, flutter with fixed conduction) never counts as AF.
        if rr is None or not _finite(rr):
            return clf, p_af
        w = s.alert_af_combined_weight
        score = w * p_af + (1.0 - w) * float(rr)
        return certain and score >= s.alert_af_combined_threshold, score

    # --- the state machine --------------------------------------------------------------------------
    def step(self, state: dict[str, Any] | None, obs: Observation) -> tuple[dict[str, Any], list[Alert]]:
        """Advance a patient's ``state`` by one window; return the new state and the alert events.

        ``state`` is not modified (a new dict is returned). Duplicate or late windows
        (``obs.seq <= last seen seq``) return the state unchanged and no events.
        """
        state = new_state() if state is None else copy.deepcopy(state)
        return self.advance(state, obs)

    def advance(self, state: dict[str, Any], obs: Observation) -> tuple[dict[str, Any], list[Alert]]:
        """Like ``step`` but updates ``state`` in place (for offline replays of millions of windows)."""
        if obs.seq <= state["last_seq"]:
            return state, []
        state["last_seq"] = obs.seq
        events: list[Alert] = []
        poor = self.is_poor(obs)
        self._technical(state, obs, poor, events)
        if poor or "technical" in state["open"]:
            # Uninformative: rhythm evidence neither accumulates nor resolves, runs are broken.
            state["brady_run"] = state["tachy_run"] = 0
            return state, events
        self._af(state, obs, events)
        self._rate(state, obs, events)
        self._pause(state, obs, events)
        return state, events

    # --- rules --------------------------------------------------------------------------------------
    def _emit(
        self,
        state: dict[str, Any],
        obs: Observation,
        kind: str,
        event: AlertState,
        severity: str,
        confidence: float,
        message: str,
        events: list[Alert],
    ) -> None:
        if event == "opened":
            state["open"][kind] = {
                "alert_id": f"{obs.patient_id}:{kind}:{obs.seq}",
                "severity": severity,
                "opened_seq": obs.seq,
                "confidence": confidence,
            }
        entry = state["open"][kind]
        alert_id = entry["alert_id"]
        if event == "resolved":
            del state["open"][kind]
        else:
            entry["severity"] = severity
            entry["confidence"] = confidence
        events.append(
            Alert(
                patient_id=obs.patient_id,
                type=kind,
                state=event,
                severity=severity,
                confidence=float(round(confidence, 4)),
                message=message,
                t_ns=int(obs.t_end_ns),
                alert_id=alert_id,
                seq=int(obs.seq),
            )
        )

    def _open_or_update(
        self, state: dict[str, Any], obs: Observation, kind: str, severity: str, confidence: float, message: str,
        events: list[Alert],
    ) -> None:
        entry = state["open"].get(kind)
        if entry is None:
            self._emit(state, obs, kind, "opened", severity, confidence, message, events)
        elif SEVERITY_RANK[severity] > SEVERITY_RANK[entry["severity"]]:
            self._emit(state, obs, kind, "updated", severity, confidence, message, events)

    def _resolve(
        self, state: dict[str, Any], obs: Observation, kind: str, message: str, events: list[Alert]
    ) -> None:
        entry = state["open"][kind]
        self._emit(state, obs, kind, "resolved", entry["severity"], entry["confidence"], message, events)

    def _technical(self, state: dict[str, Any], obs: Observation, poor: bool, events: list[Alert]) -> None:
        s = self.s
        if poor:
            state["poor_run"] += 1
            state["good_run"] = 0
            if "technical" not in state["open"] and state["poor_run"] >= s.alert_technical_windows:
                why = "lead off" if obs.lead_off else f"signal quality {obs.sqi:.2f} < {s.alert_min_sqi:g}"
                self._emit(
                    state, obs, "technical", "opened", "low", 1.0 - min(max(obs.sqi, 0.0), 1.0),
                    f"Technical: {why} for {state['poor_run']} windows; rhythm alerts suppressed.", events,
                )
                state["af_hist"] = []  # evidence from before the gap is stale
        else:
            state["good_run"] += 1
            state["poor_run"] = 0
            if "technical" in state["open"] and state["good_run"] >= s.alert_technical_resolve_windows:
                self._resolve(state, obs, "technical", "Technical: signal restored.", events)

    def _af(self, state: dict[str, Any], obs: Observation, events: list[Alert]) -> None:
        s = self.s
        positive, strength = self.af_evidence(obs)
        hist: list[int] = state["af_hist"]
        hist.append(1 if positive else 0)
        if len(hist) > s.alert_af_n:
            del hist[: len(hist) - s.alert_af_n]
        is_open = "af" in state["open"]
        if positive:
            state["af_clean"] = 0
            if is_open or sum(hist) >= s.alert_af_k:
                rvr = _finite(obs.hr_bpm) and obs.hr_bpm is not None and obs.hr_bpm > s.alert_af_rvr_bpm
                severity = "high" if rvr else "medium"
                hr = f", {obs.hr_bpm:.0f} bpm" if _finite(obs.hr_bpm) else ""
                msg = f"Atrial fibrillation/flutter ({sum(hist)} of last {len(hist)} windows{hr})."
                self._open_or_update(state, obs, "af", severity, strength, msg, events)
        elif is_open:
            state["af_clean"] += 1
            if state["af_clean"] >= s.alert_af_resolve_m:
                state["af_clean"] = 0
                self._resolve(state, obs, "af", f"AF resolved after {s.alert_af_resolve_m} non-AF windows.", events)

    def _rate(self, state: dict[str, Any], obs: Observation, events: list[Alert]) -> None:
        s = self.s
        hr = obs.hr_bpm
        if hr is None or not _finite(hr):
            state["brady_run"] = state["tachy_run"] = 0
            return
        for kind, beyond, critical in (
            ("brady", hr < s.alert_brady_bpm, hr < s.alert_brady_critical_bpm),
            ("tachy", hr > s.alert_tachy_bpm, hr > s.alert_tachy_critical_bpm),
        ):
            run_key = f"{kind}_run"
            if beyond:
                state[run_key] += 1
                state["rate_ok_run"][kind] = 0
                if kind in state["open"] or state[run_key] >= s.alert_rate_sustain_windows:
                    limit = s.alert_brady_bpm if kind == "brady" else s.alert_tachy_bpm
                    word = "Bradycardia" if kind == "brady" else "Tachycardia"
                    self._open_or_update(
                        state, obs, kind, "critical" if critical else "high", 1.0,
                        f"{word}: {hr:.0f} bpm (limit {limit:g} bpm) for {state[run_key]} windows.", events,
                    )
            else:
                state[run_key] = 0
                if kind in state["open"]:
                    state["rate_ok_run"][kind] += 1
                    if state["rate_ok_run"][kind] >= s.alert_rate_resolve_windows:
                        state["rate_ok_run"][kind] = 0
                        self._resolve(state, obs, kind, f"{kind.capitalize()} resolved: {hr:.0f} bpm.", events)

    def _pause(self, state: dict[str, Any], obs: Observation, events: list[Alert]) -> None:
        s = self.s
        rr = obs.max_rr_s
        if rr is not None and _finite(rr) and rr > s.alert_pause_s:
            state["pause_clean"] = 0
            severity = "critical" if rr > s.alert_pause_critical_s else "high"
            self._open_or_update(
                state, obs, "pause", severity, 1.0, f"Pause: RR {rr:.1f} s (limit {s.alert_pause_s:g} s).", events
            )
        elif "pause" in state["open"]:
            state["pause_clean"] += 1
            if state["pause_clean"] >= s.alert_pause_resolve_windows:
                state["pause_clean"] = 0
                self._resolve(state, obs, "pause", "Pause resolved.", events)


def open_alerts(state: dict[str, Any] | None) -> dict[str, str]:
    """The open alert types of a patient's state and their ids (the pipeline's reconstruction policy asks this)."""
    if not state:
        return {}
    return {kind: entry["alert_id"] for kind, entry in state.get("open", {}).items()}
