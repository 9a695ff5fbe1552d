"""A synthetic patient: per-patient morphology and rhythm, artefacts, and windows with ground truth.

Everything random about a patient comes from the ``np.random.Generator`` it is given, so the
same seed gives the same patient, beat for beat. Windows are rendered on demand by
``simulators.render`` (vectorised, with the patient's templates computed once), so a window
costs a fraction of a millisecond and a patient keeps only a few seconds of beats in memory.

Truth of a window (``Window.truth``), first rule that applies:

1. ``LEAD_OFF`` or ``NOISE`` when that artefact covers at least half the window;
2. ``PAUSE`` or ``VT`` when at least half of such an event lies inside the window;
3. otherwise the rhythm in force for most of the window: ``N``, ``AF``, ``AFL``, ``BRADY``,
   ``TACHY`` or ``PVC`` (sinus rhythm with frequent premature ventricular beats).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulators.render import Morphology, beat_templates, render_beats
from simulators.rhythms import Episode, RhythmGenerator, RhythmProfile

_MARGIN_BEFORE_S = 0.8  # beats this far before a window still reach into it (T waves)
_MARGIN_AFTER_S = 0.4  # beats this far after a window still reach into it (P waves)


@dataclass(frozen=True)
class WindowData:
    """What a device measured for window ``seq``: lead-I samples [n] in mV from ``t0_s`` and the truth."""

    seq: int
    t0_s: float
    samples: np.ndarray
    truth: str | None


CAST_HOURS = 24.0
"""How long a cast patient's script lasts; after it the patient stays in sinus rhythm."""


def cast_schedule(index: int) -> list[Episode] | None:
    """The scripted rhythm of cast patient ``index`` (None past the cast), so a demo shows every alert.

    0: paroxysmal AF from 10 s; 1: sinus tachycardia (never AF; a tachycardia alert); 2: bradycardia;
    3: sinus rhythm with a pause every minute from 25 s. Rates come from ``simulators.rhythms``.
    """
    end = CAST_HOURS * 3600.0
    if index == 0:
        return [Episode(0.0, 10.0, "N"), Episode(10.0, end, "AF")]
    if index == 1:
        return [Episode(0.0, end, "TACHY")]
    if index == 2:
        return [Episode(0.0, end, "BRADY")]
    if index == 3:
        pauses = np.arange(25.0, min(end, 3600.0), 60.0)
        return [e for t in pauses for e in (Episode(t - 25.0 if t == 25.0 else t - 55.5, t, "N"),
                                             Episode(t, t + 4.5, "PAUSE"))]
    return None
CAST = ("AF", "TACHY", "BRADY", "PAUSE")
"""What each cast patient shows, in order."""


class SyntheticPatient:
    """One simulated wearer: ``window(seq)`` renders window ``seq`` (windows must be asked in order).

    ``schedule`` fixes the rhythm episodes (see ``RhythmGenerator``); ``artefacts`` fixes
    the artefact spans as ``(start_s, end_s, "NOISE" | "LEAD_OFF")`` instead of drawing them.
    """

    def __init__(
        self,
        patient_id: str,
        rng: np.random.Generator,
        *,
        fs_hz: float,
        window_s: float,
        hop_s: float,
        event_rate_per_h: float = 2.0,
        artefact_rate_per_h: float = 2.0,
        noise_mv: float = 0.02,
        schedule: list[Episode] | None = None,
        artefacts: list[tuple[float, float, str]] | None = None,
        morphology: Morphology | None = None,
    ) -> None:
        self.patient_id = patient_id
        self.device_id = f"sim-{patient_id}"
        self.fs_hz = float(fs_hz)
        self.lead = "I"
        self.rng = rng
        self.window_n = round(window_s * fs_hz)
        self.hop_n = round(hop_s * fs_hz)
        self.noise_mv = noise_mv
        self.morphology = morphology if morphology is not None else Morphology.draw(rng)
        self.templates = beat_templates(self.morphology, self.fs_hz)
        self.rhythm = RhythmGenerator(
            RhythmProfile.draw(rng, event_rate_per_h=event_rate_per_h), rng, schedule=schedule
        )
        self.age: float | None = float(round(rng.uniform(25, 90)))
        self.sex: int | None = int(rng.integers(0, 2))
        self._artefact_rate_per_h = artefact_rate_per_h
        self._fixed_artefacts = artefacts is not None
        self._artefacts: list[tuple[float, float, str]] = list(artefacts or [])
        self._artefacts_until_s = np.inf if artefacts is not None else 0.0

    def window(self, seq: int) -> WindowData:
        """Render window ``seq`` (starting at ``seq * hop`` on the patient's clock)."""
        t0_s = seq * self.hop_n / self.fs_hz
        duration_s = self.window_n / self.fs_hz
        t1_s = t0_s + duration_s
        self.rhythm.extend(t1_s + _MARGIN_AFTER_S)
        self._extend_artefacts(t1_s)
        all_beats = self.rhythm.beats
        a, b = np.searchsorted(all_beats.times_s, [t0_s - _MARGIN_BEFORE_S, t1_s + _MARGIN_AFTER_S])
        beats = all_beats.between(t0_s - _MARGIN_BEFORE_S, t1_s + _MARGIN_AFTER_S)
        first_rr_s = float(all_beats.times_s[a] - all_beats.times_s[a - 1]) if 0 < a < b else None
        spans = [a for a in self._artefacts if a[1] > t0_s and a[0] < t1_s]
        samples = render_beats(
            beats.times_s,
            beats.types,
            beats.af,
            fs_hz=self.fs_hz,
            t0_s=t0_s,
            duration_s=duration_s,
            morphology=self.morphology,
            rng=self.rng,
            noise_mv=self.noise_mv,
            flutter_mask=beats.flutter,
            motion_spans_s=[(a, b) for a, b, kind in spans if kind == "NOISE"],
            lead_off_spans_s=[(a, b) for a, b, kind in spans if kind == "LEAD_OFF"],
            templates=self.templates,
            first_rr_s=first_rr_s,
        )
        truth = self._truth(t0_s, t1_s, spans)
        self.rhythm.forget(t0_s - 10.0)  # keeps the beat before the next window's first (pauses up to ~9 s)
        if not self._fixed_artefacts:
            self._artefacts = [a for a in self._artefacts if a[1] > t0_s]
        return WindowData(seq=seq, t0_s=t0_s, samples=samples.astype(np.float32), truth=truth)

    def _truth(self, t0_s: float, t1_s: float, spans: list[tuple[float, float, str]]) -> str:
        span_s = t1_s - t0_s
        cover: dict[str, float] = {}
        for a, b, kind in spans:
            cover[kind] = cover.get(kind, 0.0) + min(b, t1_s) - max(a, t0_s)
        for kind in ("LEAD_OFF", "NOISE"):
            if cover.get(kind, 0.0) >= 0.5 * span_s:
                return kind
        events = [(label, frac) for label, frac in self.rhythm.events_within(t0_s, t1_s) if frac >= 0.5]
        if events:
            return max(events, key=lambda e: e[1])[0]
        labels = self.rhythm.labels_over(t0_s, t1_s)
        labels.pop("PAUSE", None)
        labels.pop("VT", None)
        return max(labels, key=lambda k: labels[k]) if labels else "N"

    def _extend_artefacts(self, until_s: float) -> None:
        """Draw motion bursts (70 %, 3-20 s) and electrode-off spans (30 %, 5-60 s) up to ``until_s``."""
        if self._artefact_rate_per_h <= 0:
            return
        while self._artefacts_until_s < until_s:
            start = self._artefacts_until_s + self.rng.exponential(3600.0 / self._artefact_rate_per_h)
            if self.rng.random() < 0.7:
                span = (start, start + self.rng.uniform(3, 20), "NOISE")
            else:
                span = (start, start + self.rng.uniform(5, 60), "LEAD_OFF")
            self._artefacts.append(span)
            self._artefacts_until_s = span[1]
