"""Per-patient rhythm episodes and the beats they produce: sinus, AF, flutter, brady, tachy, pauses, PVCs, VT.

A ``RhythmGenerator`` writes a patient's heart lazily: ``extend(until_s)`` appends episodes
and their beats up to a time, so a simulator never holds more than a few minutes of beats
(``forget(before_s)`` drops the past). Episodes alternate: sinus for an exponential time
(mean ``1 / event_rate_per_h``), then one event drawn by ``event_weights``, then sinus again.
A fixed schedule (for tests and demos) can be given instead.

RR models (all vectorised per episode):

- sinus (``N``, ``BRADY`` 30-38 bpm, ``TACHY`` 155-170 bpm): respiratory sinus arrhythmia plus a little
  noise (RR coefficient of variation about 3-5 %);
- ``AF``: independent RR intervals, log-normal with a coefficient of variation of 18-30 %,
  the irregularly irregular ventricular response; beats carry ``af`` (no P, f-waves);
- ``AFL``: regular RR at an atrial rate of 250-330 /min with 2:1 or 4:1 block; ``flutter``;
- ``PAUSE``: sinus arrest, one RR of 3-6 s;
- ``PVC``: sinus with premature ventricular beats (coupling 55-70 % of RR, compensatory pause);
- ``VT``: a run of 4-30 ventricular beats at 140-220 /min.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

SINUS = ("N", "BRADY", "TACHY")
EVENTS = ("AF", "AFL", "BRADY", "TACHY", "PAUSE", "PVC", "VT")
DEFAULT_EVENT_WEIGHTS: dict[str, float] = {
    "AF": 0.3,
    "AFL": 0.08,
    "BRADY": 0.12,
    "TACHY": 0.12,
    "PAUSE": 0.13,
    "PVC": 0.17,
    "VT": 0.08,
}


BRADY_BPM = (30.0, 38.0)
TACHY_BPM = (155.0, 170.0)
"""Rates of the BRADY and TACHY (sinus) episodes: beyond the default alert limits (40 and 150 bpm), so
every such event is one a centre should hear about (and the demo shows its alert)."""

_MEAN_EVENT_S = {"AF": 960.0, "AFL": 480.0, "PAUSE": 4.6, "VT": 5.6}  # others: uniform(60, 600) -> 330


@dataclass(frozen=True)
class Episode:
    """A rhythm ``label`` in force over ``[start_s, end_s)`` of the patient's clock."""

    start_s: float
    end_s: float
    label: str


@dataclass(frozen=True)
class RhythmProfile:
    """How one patient's heart behaves; ``draw`` makes a random adult."""

    hr_bpm: float = 70.0
    rsa_frac: float = 0.03
    hrv_frac: float = 0.015
    resp_hz: float = 0.25
    event_rate_per_h: float = 2.0
    event_weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_EVENT_WEIGHTS))

    @classmethod
    def draw(cls, rng: np.random.Generator, *, event_rate_per_h: float = 2.0) -> RhythmProfile:
        """Resting heart rate 55-95 bpm, individual variability and breathing rate."""
        return cls(
            hr_bpm=float(rng.uniform(55, 95)),
            rsa_frac=float(rng.uniform(0.015, 0.045)),
            hrv_frac=float(rng.uniform(0.008, 0.02)),
            resp_hz=float(rng.uniform(0.15, 0.35)),
            event_rate_per_h=event_rate_per_h,
        )


@dataclass
class Beats:
    """Beat arrays of equal length: R times (s), types (N, A, V) and atrial state flags."""

    times_s: np.ndarray = field(default_factory=lambda: np.zeros(0))
    types: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype="U1"))
    af: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    flutter: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))

    def append(self, times_s: np.ndarray, types: np.ndarray, af: bool = False, flutter: bool = False) -> None:
        """Add beats of one episode (all with the same atrial state)."""
        self.times_s = np.concatenate((self.times_s, times_s))
        self.types = np.concatenate((self.types, types.astype("U1")))
        self.af = np.concatenate((self.af, np.full(times_s.size, af)))
        self.flutter = np.concatenate((self.flutter, np.full(times_s.size, flutter)))

    def between(self, start_s: float, end_s: float) -> Beats:
        """The beats with ``start_s <= t < end_s`` (a view-sized copy)."""
        a, b = np.searchsorted(self.times_s, [start_s, end_s])
        return Beats(self.times_s[a:b], self.types[a:b], self.af[a:b], self.flutter[a:b])

    def drop_before(self, t_s: float) -> None:
        """Forget beats before ``t_s``."""
        a = int(np.searchsorted(self.times_s, t_s))
        if a:
            self.times_s, self.types = self.times_s[a:], self.types[a:]
            self.af, self.flutter = self.af[a:], self.flutter[a:]


class RhythmGenerator:
    """A patient's rhythm over time, generated on demand from ``rng``.

    ``schedule`` (optional) fixes the episodes: a list of ``Episode`` that tile time from 0;
    after its end the patient stays in sinus rhythm.
    """

    def __init__(
        self, profile: RhythmProfile, rng: np.random.Generator, *, schedule: list[Episode] | None = None
    ) -> None:
        self.profile = profile
        self.rng = rng
        self.beats = Beats()
        self.episodes: list[Episode] = []
        self._fixed = list(schedule) if schedule is not None else None
        self._t_s = 0.0  # time of the last beat written
        self._episode_end_s = 0.0
        # Start where a long-running patient would be: in an event with its stationary probability.
        self._last_label = "N" if rng.random() < self._event_share() else "START"
        self._params: dict[str, float] = {}
        self._sinus_phase = float(rng.uniform(0, 2 * np.pi))

    # --- public -------------------------------------------------------------------------------

    def extend(self, until_s: float) -> None:
        """Generate episodes and beats until the last beat is at or after ``until_s``."""
        while self._t_s < until_s:
            if self._t_s >= self._episode_end_s - 1e-9 or not self.episodes:
                self._next_episode()
            self._fill_episode(self.episodes[-1])

    def forget(self, before_s: float) -> None:
        """Drop beats and episodes that ended before ``before_s`` (bounded memory)."""
        self.beats.drop_before(before_s)
        self.episodes = [e for e in self.episodes if e.end_s > before_s] or self.episodes[-1:]

    def labels_over(self, start_s: float, end_s: float) -> dict[str, float]:
        """Seconds of each label within ``[start_s, end_s)``."""
        out: dict[str, float] = {}
        for e in self.episodes:
            overlap = min(e.end_s, end_s) - max(e.start_s, start_s)
            if overlap > 0:
                out[e.label] = out.get(e.label, 0.0) + overlap
        return out

    def events_within(self, start_s: float, end_s: float) -> list[tuple[str, float]]:
        """Brief events (``PAUSE``, ``VT``) overlapping the span, with the fraction of each inside it."""
        out = []
        for e in self.episodes:
            if e.label in ("PAUSE", "VT") and e.end_s > start_s and e.start_s < end_s:
                inside = min(e.end_s, end_s) - max(e.start_s, start_s)
                out.append((e.label, inside / max(e.end_s - e.start_s, 1e-9)))
        return out

    # --- episodes -----------------------------------------------------------------------------

    def _event_share(self) -> float:
        """Long-run fraction of time spent in events: mean event length / (mean event + mean sinus)."""
        if self.profile.event_rate_per_h <= 0:
            return 0.0
        w = self.profile.event_weights
        total = sum(w.values()) or 1.0
        mean_event_s = sum(w[k] * _MEAN_EVENT_S.get(k, 330.0) for k in w) / total
        return mean_event_s / (mean_event_s + 3600.0 / self.profile.event_rate_per_h)

    def _next_episode(self) -> None:
        start = self._episode_end_s if self.episodes else 0.0
        if self._fixed is not None:
            label, end = self._fixed_at(start)
            self._params = self._draw_params(label)
        else:
            if self._last_label != "N":
                label = "N"
            else:
                weights = self.profile.event_weights
                names = list(weights)
                p = np.array([weights[k] for k in names], dtype=float)
                label = str(self.rng.choice(names, p=p / p.sum()))
            self._params = self._draw_params(label)
            end = start + self._duration_s(label)
        if label == "PAUSE":  # the pause starts at the last beat; the episode before ends there
            end, start = self._t_s + (end - start), self._t_s
            if self.episodes:
                prev = self.episodes[-1]
                self.episodes[-1] = Episode(prev.start_s, start, prev.label)
        self._last_label = label
        self._episode_end_s = end
        self.episodes.append(Episode(start, end, label))

    def _draw_params(self, label: str) -> dict[str, float]:
        """Rates that hold for a whole episode (drawn once, not per chunk)."""
        u = self.rng.uniform
        p = self.profile
        if label in SINUS:
            return {"rr_s": 60.0 / {"N": p.hr_bpm, "BRADY": u(*BRADY_BPM), "TACHY": u(*TACHY_BPM)}[label]}
        if label == "AF":
            return {"rr_s": 60.0 / u(75, 150), "cv": u(0.18, 0.3)}
        if label == "AFL":
            return {"rr_s": float(self.rng.choice([2, 2, 3, 4])) * 60.0 / u(250, 330)}
        if label == "PVC":
            return {"rr_s": 60.0 / p.hr_bpm, "prob": u(0.08, 0.25)}
        if label == "VT":
            return {"rr_s": 60.0 / u(140, 220), "beats": float(self.rng.integers(4, 31))}
        return {}

    def _fixed_at(self, t_s: float) -> tuple[str, float]:
        assert self._fixed is not None
        for e in self._fixed:
            if e.start_s - 1e-9 <= t_s < e.end_s:
                return e.label, e.end_s
        later = [e.start_s for e in self._fixed if e.start_s > t_s]
        return "N", (min(later) if later else np.inf)

    def _duration_s(self, label: str) -> float:
        """Seconds an episode lasts: sinus between events is exponential, VT is its run of beats."""
        if label == "N":
            return float(self.rng.exponential(3600.0 / max(self.profile.event_rate_per_h, 1e-6)))
        if label == "VT":
            return self._params["beats"] * self._params["rr_s"]
        lo, hi = {"AF": (120, 1800), "AFL": (60, 900), "PAUSE": (3.2, 6.0)}.get(label, (60, 600))
        return float(self.rng.uniform(lo, hi))

    # --- beats --------------------------------------------------------------------------------

    def _fill_episode(self, e: Episode) -> None:
        """Write beats for episode ``e`` up to its end (or a bounded chunk of it)."""
        chunk_end = min(e.end_s, self._t_s + 120.0)
        rng = self.rng
        par = self._params
        if e.label in SINUS:
            times = self._sinus(par["rr_s"], chunk_end)
            self.beats.append(times, np.full(times.size, "N"))
        elif e.label == "AF":
            mean_rr, cv = par["rr_s"], par["cv"]
            n = int((chunk_end - self._t_s) / (mean_rr * 0.8)) + 2
            sigma = np.sqrt(np.log1p(cv**2))
            rr = np.clip(mean_rr * rng.lognormal(-0.5 * sigma**2, sigma, n), 0.28, 2.0)
            times = self._take(rr, chunk_end)
            self.beats.append(times, np.full(times.size, "N"), af=True)
        elif e.label == "AFL":
            rr_mean = par["rr_s"]
            n = int((chunk_end - self._t_s) / rr_mean) + 2
            rr = rr_mean * (1 + 0.01 * rng.standard_normal(n))
            times = self._take(rr, chunk_end)
            self.beats.append(times, np.full(times.size, "N"), af=True, flutter=True)
        elif e.label == "PAUSE":
            self.beats.append(np.array([e.end_s]), np.array(["N"]))
        elif e.label == "PVC":
            self._pvc_chunk(par["rr_s"], par["prob"], chunk_end)
        elif e.label == "VT":
            n = int((chunk_end - self._t_s) / par["rr_s"]) + 2
            times = self._take(par["rr_s"] * (1 + 0.03 * rng.standard_normal(n)), chunk_end)
            self.beats.append(times, np.full(times.size, "V"))
        self._t_s = float(self.beats.times_s[-1])

    def _sinus(self, rr_mean: float, end_s: float) -> np.ndarray:
        """Sinus beats from the last beat until ``end_s``: RSA plus noise on ``rr_mean``."""
        p = self.profile
        n = int((end_s - self._t_s) / (rr_mean * 0.85)) + 2
        approx_t = self._t_s + rr_mean * np.arange(1, n + 1)
        rsa = p.rsa_frac * np.sin(2 * np.pi * p.resp_hz * approx_t + self._sinus_phase)
        rr = rr_mean * (1 + rsa + p.hrv_frac * self.rng.standard_normal(n))
        return self._take(rr, end_s)

    def _take(self, rr: np.ndarray, end_s: float) -> np.ndarray:
        """Beat times from cumulative ``rr`` after the last beat, keeping those before ``end_s``."""
        times = self._t_s + np.cumsum(rr)
        return times[times < end_s] if times[0] < end_s else times[:1]

    def _pvc_chunk(self, rr_mean: float, prob: float, end_s: float) -> None:
        """Sinus beats where a fraction ``prob`` (8-25 %) become PVCs with a compensatory pause."""
        times = self._sinus(rr_mean, end_s)
        types = np.full(times.size, "N")
        if times.size > 2:
            pick = np.flatnonzero(self.rng.random(times.size - 2) < prob) + 1
            pick = pick[np.diff(pick, prepend=-5) > 1]  # no two PVCs in a row here (that is VT)
            prev = times[pick - 1]
            times[pick] = prev + (times[pick] - prev) * self.rng.uniform(0.55, 0.7, pick.size)
            types[pick] = "V"
        self.beats.append(times, types)
