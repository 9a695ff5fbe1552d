"""The alert engine's state machine: gating, no duplicates, stable ids, JSON state."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from ecgmon.contracts import Alert
from ecgmon.errors import ConfigError
from ecgmon.settings import Settings
from streams.alerts import AlertEngine, Observation, open_alerts

S = Settings(
    alert_af_k=3, alert_af_n=4, alert_af_confidence=0.6, alert_af_max_uncertainty=0.25, alert_af_resolve_m=3,
    alert_af_evidence="classifier", alert_technical_windows=2, alert_technical_resolve_windows=2,
    alert_rate_sustain_windows=2, alert_rate_resolve_windows=2, alert_min_sqi=0.5, alert_af_combined_weight=0.5,
    alert_af_combined_threshold=0.6,
)

SINUS = {"N": 0.9, "A": 0.05, "O": 0.04, "~": 0.01}
AF = {"N": 0.05, "A": 0.9, "O": 0.04, "~": 0.01}


def obs(seq: int, probs: dict[str, float] = SINUS, **kw: Any) -> Observation:
    base = dict(
        patient_id="p1", seq=seq, t_end_ns=(seq + 1) * 10_000_000_000, label=max(probs, key=probs.__getitem__),
        confidence=max(probs.values()), uncertainty=0.05, probs=probs, hr_bpm=72.0, sqi=0.9, max_rr_s=0.9,
        rr_irregularity=0.1, lead_off=False,
    )
    base.update(kw)
    return Observation(**base)  # type: ignore[arg-type]


def tss(events: list[Alert]) -> list[tuple[str, str, str]]:
    return [(e.type, e.state, e.severity) for e in events]


def run(engine: AlertEngine, observations: list[Observation], state: dict | None = None) -> tuple[dict, list[Alert]]:
    out: list[Alert] = []
    for o in observations:
        state, events = engine.step(state, o)
        out.extend(events)
    assert state is not None
    return state, out


def test_af_opens_at_k_of_n_not_before() -> None:
    eng = AlertEngine(S)
    state, events = run(eng, [obs(0, AF), obs(1), obs(2, AF)])
    assert events == []  # 2 of 3: below k
    state, events = eng.step(state, obs(3, AF))  # 3 of the last 4
    assert [(e.type, e.state) for e in events] == [("af", "opened")]
    assert events[0].alert_id == "p1:af:3" and events[0].severity == "medium" and events[0].seq == 3
    state, events = run(eng, [obs(4, AF), obs(5, AF)], state)
    assert events == []  # no duplicate opened


def test_af_needs_confidence_and_certainty() -> None:
    eng = AlertEngine(S)
    weak = {"N": 0.45, "A": 0.55, "O": 0.0, "~": 0.0}
    _, events = run(eng, [obs(i, weak) for i in range(6)])
    assert events == []
    _, events = run(eng, [obs(i, AF, uncertainty=0.4) for i in range(6)])
    assert events == []


def test_af_resolves_after_m_clean_windows_once() -> None:
    eng = AlertEngine(S)
    state, events = run(eng, [obs(i, AF) for i in range(3)])
    assert [e.state for e in events] == ["opened"]
    state, events = run(eng, [obs(3), obs(4), obs(5, AF), obs(6), obs(7)], state)
    assert events == []  # the AF window in between restarts the clean count
    state, events = eng.step(state, obs(8))
    assert [(e.type, e.state, e.alert_id) for e in events] == [("af", "resolved", "p1:af:2")]
    _, events = run(eng, [obs(9), obs(10)], state)
    assert events == []


def test_duplicate_and_late_windows_change_nothing() -> None:
    eng = AlertEngine(S)
    state, _ = run(eng, [obs(i, AF) for i in range(3)])
    for late in (obs(2, AF), obs(1), obs(0, lead_off=True)):
        new, events = eng.step(state, late)
        assert events == [] and new == state
    # a replay of the same windows from scratch gives the same ids (consumers de-duplicate on them)
    _, again = run(eng, [obs(i, AF) for i in range(3)])
    assert again[0].alert_id == "p1:af:2"


def test_step_does_not_modify_its_input() -> None:
    eng = AlertEngine(S)
    state, _ = run(eng, [obs(0, AF), obs(1, AF)])
    before = json.dumps(state, sort_keys=True)
    eng.step(state, obs(2, AF))
    assert json.dumps(state, sort_keys=True) == before


def test_technical_alert_suppresses_rhythm_alerts() -> None:
    eng = AlertEngine(S)
    state, events = run(eng, [obs(0, AF, sqi=0.2), obs(1, AF, lead_off=True)])
    assert tss(events) == [("technical", "opened", "low")]
    state, events = run(eng, [obs(i, AF, sqi=0.1, hr_bpm=200.0) for i in range(2, 8)], state)
    assert events == []  # no AF, no tachy while the signal is poor
    state, events = run(eng, [obs(8, AF), obs(9, AF)], state)
    assert [(e.type, e.state) for e in events] == [("technical", "resolved")]
    assert "af" not in open_alerts(state)
    state, events = run(eng, [obs(10, AF)], state)
    assert events == []  # evidence from before the gap was dropped: windows 9 and 10 are 2 of k = 3
    state, events = run(eng, [obs(11, AF)], state)
    assert [(e.type, e.state, e.alert_id) for e in events] == [("af", "opened", "p1:af:11")]


def test_one_poor_window_is_not_technical() -> None:
    eng = AlertEngine(S)
    _, events = run(eng, [obs(0, sqi=0.1), obs(1), obs(2, sqi=0.1), obs(3)])
    assert events == []


def test_brady_and_tachy_must_be_sustained() -> None:
    eng = AlertEngine(S)
    _, events = run(eng, [obs(0, hr_bpm=35.0), obs(1, hr_bpm=60.0), obs(2, hr_bpm=35.0), obs(3, hr_bpm=60.0)])
    assert events == []
    state, events = run(eng, [obs(4, hr_bpm=35.0), obs(5, hr_bpm=36.0), obs(6, hr_bpm=28.0)])
    assert tss(events) == [("brady", "opened", "high"), ("brady", "updated", "critical")]
    rates = [(7, 60.0), (8, 35.0), (9, 60.0), (10, 61.0)]
    state, events = run(eng, [obs(i, hr_bpm=hr) for i, hr in rates], state)
    assert tss(events) == [("brady", "resolved", "critical")]
    _, events = run(eng, [obs(20 + i, hr_bpm=165.0) for i in range(3)])
    assert tss(events) == [("tachy", "opened", "high")]


def test_pause_opens_on_one_long_rr_and_resolves() -> None:
    eng = AlertEngine(S)
    state, events = run(eng, [obs(0), obs(1, max_rr_s=3.4), obs(2, max_rr_s=3.6)])
    assert tss(events) == [("pause", "opened", "high")]
    state, events = run(eng, [obs(3, max_rr_s=6.0), obs(4)], state)
    assert tss(events) == [("pause", "updated", "critical"), ("pause", "resolved", "critical")]
    _, events = run(eng, [obs(5, max_rr_s=2.9)], state)
    assert events == []


def test_af_with_rapid_rate_escalates_once() -> None:
    eng = AlertEngine(S)
    rates = [90.0, 95.0, 100.0, 130.0, 100.0, 130.0]
    _, events = run(eng, [obs(i, AF, hr_bpm=hr) for i, hr in enumerate(rates)])
    assert [(e.state, e.severity) for e in events] == [("opened", "medium"), ("updated", "high")]


@pytest.mark.parametrize(
    ("mode", "p_af", "rr", "opens"),
    [
        ("classifier", 0.9, 0.1, True),
        ("rr", 0.1, 0.9, True),
        ("rr", 0.9, 0.1, False),
        ("both", 0.9, 0.1, False),
        ("both", 0.9, 0.9, True),
        ("combined", 0.7, 0.7, True),
        ("combined", 0.9, 0.1, False),
        ("combined", 0.9, None, True),  # too few beats: the classifier speaks alone
    ],
)
def test_evidence_modes(mode: str, p_af: float, rr: float | None, opens: bool) -> None:
    eng = AlertEngine(S.model_copy(update={"alert_af_evidence": mode}))
    probs = {"N": 1 - p_af, "A": p_af, "O": 0.0, "~": 0.0}
    _, events = run(eng, [obs(i, probs, rr_irregularity=rr) for i in range(5)])
    assert (("af", "opened") in [(e.type, e.state) for e in events]) is opens


@pytest.mark.parametrize("mode", ["classifier", "rr", "both", "combined"])
def test_coherent_p_waves_veto_af_in_every_mode(mode: str) -> None:
    eng = AlertEngine(S.model_copy(update={"alert_af_evidence": mode, "alert_af_max_p_coherence": 0.4}))
    irregular = [obs(i, AF, rr_irregularity=0.95, p_wave_coherence=0.7) for i in range(6)]
    _, events = run(eng, irregular)
    assert not [e for e in events if e.type == "af"]  # ectopy or pauses over sinus P waves: no AF
    fibrillating = [obs(i, AF, rr_irregularity=0.95, p_wave_coherence=0.1) for i in range(6)]
    _, events = run(AlertEngine(eng.s), fibrillating)
    assert ("af", "opened") in [(e.type, e.state) for e in events]
    unknown = [obs(i, AF, rr_irregularity=0.95, p_wave_coherence=None) for i in range(6)]  # too few beats
    _, events = run(AlertEngine(eng.s.model_copy(update={"alert_af_max_p_coherence": 1.0})), unknown)
    assert ("af", "opened") in [(e.type, e.state) for e in events]


def test_state_round_trips_through_json() -> None:
    eng = AlertEngine(S)
    seq = [obs(0, AF), obs(1, AF, hr_bpm=35.0), obs(2, AF, hr_bpm=35.0), obs(3, max_rr_s=4.0), obs(4), obs(5, sqi=0.0)]
    direct, expected = run(eng, [*seq, obs(6), obs(7), obs(8)])
    state: dict | None = None
    got: list[Alert] = []
    for o in [*seq, obs(6), obs(7), obs(8)]:
        state = json.loads(json.dumps(state)) if state is not None else None
        state, events = eng.step(state, o)
        got.extend(Alert.from_bytes(e.to_bytes()) for e in events)
    assert got == expected and state == direct
    assert {e.type for e in expected} >= {"af", "brady", "pause"}


def test_patient_ids_and_windows_keep_alert_ids_apart() -> None:
    eng = AlertEngine(S)
    _, a = run(eng, [replace(obs(i, AF), patient_id="a") for i in range(3)])
    _, b = run(eng, [replace(obs(i, AF), patient_id="b") for i in range(3)])
    assert a[0].alert_id == "a:af:2" and b[0].alert_id == "b:af:2"


def test_k_above_n_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="ALERT_AF_K"):
        AlertEngine(S.model_copy(update={"alert_af_k": 5}))


def test_shipped_defaults_tell_a_fast_regular_rhythm_from_af() -> None:
    """Sinus tachycardia or flutter with fixed conduction that the classifier calls AF: regular RR vetoes it."""
    eng = AlertEngine(Settings())
    fast = {"hr_bpm": 165.0, "uncertainty": 0.05}
    _, events = run(eng, [obs(i, AF, rr_irregularity=0.2, **fast) for i in range(8)])
    assert "af" not in {e.type for e in events} and {e.type for e in events} == {"tachy"}
    _, events = run(AlertEngine(Settings()), [obs(i, AF, rr_irregularity=0.9, **fast) for i in range(4)])
    assert ("af", "opened") in [(e.type, e.state) for e in events]  # irregular: AF with rapid response
