"""Patients that beat on the Long-Term AF Database's real beat times: synthetic morphology on real timing.

``../shared/data/ltafdb`` has no waveform, only expert annotations: every beat (N, A, V, Q) and
rhythm changes as ``+`` notes (``(AFIB``, ``(N``, ``(SBR``, ...). ``load_timeline`` reads them
with ``wfdb.rdann``/``wfdb.rdheader`` (never ``rdrecord``: the ``.dat`` is absent) and the
labelled span from ``labels.csv``; ``LtafdbDevice`` renders windows around those beats with
``simulators.render``. Everything rendered this way is **synthetic morphology on real timing**:
the RR intervals, ectopy and rhythm changes are the patient's, the wave shapes are drawn.

Truth of a window: the annotated rhythm in force for most of it, mapped by ``RHYTHM_TRUTH``
(``(AFIB`` -> ``AF``, ``(SBR`` -> ``BRADY``, ...); ``UNLABELLED`` when most of the window lies
outside the record's labelled span (``rhythm_from_s`` to ``rhythm_to_s``).
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ecgmon.errors import DataError
from ecgmon.records import record_names
from simulators.render import Morphology, beat_templates, render_beats
from simulators.synthetic import WindowData

RHYTHM_TRUTH: dict[str, str] = {
    "(N": "N",
    "(AFIB": "AF",
    "(AFL": "AFL",
    "(SBR": "BRADY",
    "(SVTA": "SVTA",
    "(AB": "AB",  # atrial bigeminy
    "(B": "BIGEMINY",  # ventricular bigeminy
    "(T": "TRIGEMINY",  # ventricular trigeminy
    "(VT": "VT",
    "(IVR": "IVR",
}
AF_RHYTHMS = ("(AFIB", "(AFL")
UNLABELLED = "UNLABELLED"
BEAT_SYMBOLS = ("N", "A", "V", "Q")
MORPHOLOGY_NOTE = "synthetic morphology on real timing (ltafdb)"


@dataclass(frozen=True)
class BeatTimeline:
    """One ltafdb record's annotated beats and rhythm changes; times in s from the record start."""

    record: str
    fs_hz: float
    duration_s: float
    beat_times_s: np.ndarray
    beat_types: np.ndarray
    rhythm_changes: list[tuple[float, str]]
    labelled_from_s: float
    labelled_to_s: float
    _change_times: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_change_times", np.array([t for t, _ in self.rhythm_changes], dtype=np.float64))

    def rhythm_at(self, t_s: np.ndarray) -> np.ndarray:
        """Rhythm note in force at each time (``(AFIB``, ``(N``, ...); ``""`` before the first note.

        Outside the labelled span the note is what the annotation file says but is not
        reliable (``labelled`` tells where it is).
        """
        t = np.asarray(t_s, dtype=np.float64)
        notes = np.array([""] + [r for _, r in self.rhythm_changes], dtype=object)
        return notes[np.searchsorted(self._change_times, t, side="right")]

    def labelled(self, t_s: np.ndarray) -> np.ndarray:
        """True where ``t_s`` lies inside the labelled span."""
        t = np.asarray(t_s, dtype=np.float64)
        return (t >= self.labelled_from_s) & (t < self.labelled_to_s)

    def af_episodes(self) -> list[tuple[float, float]]:
        """(onset_s, offset_s) of every AFIB or AFL span (a run of such notes is one episode)."""
        out: list[tuple[float, float]] = []
        onset: float | None = None
        for t, note in self.rhythm_changes:
            if note in AF_RHYTHMS and onset is None:
                onset = t
            elif note not in AF_RHYTHMS and onset is not None:
                out.append((onset, t))
                onset = None
        if onset is not None:
            out.append((onset, min(self.duration_s, self.labelled_to_s)))
        return out

    def af_mask(self) -> np.ndarray:
        """Per beat: True when the beat falls in AF or flutter."""
        return np.isin(self.rhythm_at(self.beat_times_s), AF_RHYTHMS)

    def truth_over(self, start_s: float, end_s: float) -> str:
        """The window truth: the mapped rhythm covering most of ``[start_s, end_s)``."""
        inside = max(0.0, min(end_s, self.labelled_to_s) - max(start_s, self.labelled_from_s))
        if inside < 0.5 * (end_s - start_s):
            return UNLABELLED
        a = max(start_s, self.labelled_from_s)
        b = min(end_s, self.labelled_to_s)
        i0 = int(np.searchsorted(self._change_times, a, side="right"))
        i1 = int(np.searchsorted(self._change_times, b, side="left"))
        bounds = [a, *self._change_times[i0:i1].tolist(), b]
        notes = self.rhythm_at(np.array(bounds[:-1]))
        cover: dict[str, float] = {}
        for note, lo, hi in zip(notes, bounds[:-1], bounds[1:], strict=True):
            label = RHYTHM_TRUTH.get(str(note), UNLABELLED)
            cover[label] = cover.get(label, 0.0) + hi - lo
        return max(cover, key=lambda k: cover[k])


def list_records(path: Path) -> list[str]:
    """Record names of an ltafdb-like folder (``RECORDS``, else every ``*.atr``)."""
    names = record_names(path, ".atr")
    if not names:
        raise DataError(f"{path} holds no ltafdb records (RECORDS or *.atr).")
    return names


def _labelled_span(path: Path, record: str, duration_s: float) -> tuple[float, float]:
    labels = path / "labels.csv"
    if labels.exists():
        with labels.open(newline="") as f:
            for row in csv.DictReader(f):
                if row.get("record") == record:
                    return float(row["rhythm_from_s"]), float(row["rhythm_to_s"])
    return 0.0, duration_s


def load_timeline(path: Path, record: str) -> BeatTimeline:
    """Read ``record``'s ``.atr`` beats and rhythm notes and its labelled span from ``labels.csv``."""
    import wfdb

    path = Path(path)
    base = str(path / record)
    try:
        header = wfdb.rdheader(base)
        ann = wfdb.rdann(base, "atr")
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read ltafdb record {record} in {path}: {exc}; check --path and --records.") from None
    fs_hz = float(ann.fs or header.fs)
    samples = np.asarray(ann.sample, dtype=np.float64)
    symbols = np.asarray(ann.symbol)
    aux = list(ann.aux_note or [""] * symbols.size)
    beats = np.isin(symbols, BEAT_SYMBOLS)
    changes = [
        (float(samples[i] / fs_hz), aux[i].strip("\x00").strip())
        for i in np.flatnonzero(symbols == "+")
        if aux[i].strip("\x00").strip().startswith("(")
    ]
    duration_s = float(header.sig_len or samples[-1] + fs_hz) / fs_hz
    start_s, end_s = _labelled_span(path, record, duration_s)
    return BeatTimeline(
        record=record,
        fs_hz=fs_hz,
        duration_s=duration_s,
        beat_times_s=samples[beats] / fs_hz,
        beat_types=symbols[beats].astype("U1"),
        rhythm_changes=changes,
        labelled_from_s=start_s,
        labelled_to_s=end_s,
    )


def render_span(
    timeline: BeatTimeline,
    *,
    t0_s: float,
    duration_s: float,
    fs_hz: float,
    morphology: Morphology,
    rng: np.random.Generator,
    noise_mv: float = 0.02,
    wander: bool = True,
    af_mask: np.ndarray | None = None,
) -> np.ndarray:
    """Lead I in mV [round(duration_s * fs_hz)] for ``[t0_s, t0_s + duration_s)`` of the record.

    Pass ``af_mask`` (``timeline.af_mask()``) when rendering many spans, to compute it once.
    """
    mask = timeline.af_mask() if af_mask is None else af_mask
    times = timeline.beat_times_s
    a, b = np.searchsorted(times, [t0_s - 0.8, t0_s + duration_s + 0.4])
    return render_beats(
        timeline.beat_times_s[a:b],
        timeline.beat_types[a:b],
        mask[a:b],
        fs_hz=fs_hz,
        t0_s=t0_s,
        duration_s=duration_s,
        morphology=morphology,
        rng=rng,
        noise_mv=noise_mv,
        wander=wander,
        templates=beat_templates(morphology, float(fs_hz)),
        first_rr_s=float(times[a] - times[a - 1]) if 0 < a < b else None,
    )


def iter_windows(
    timeline: BeatTimeline,
    *,
    fs_hz: float,
    window_s: float,
    hop_s: float,
    morphology: Morphology,
    rng: np.random.Generator,
    start_s: float = 0.0,
    end_s: float | None = None,
    chunk_windows: int = 60,
    noise_mv: float = 0.02,
) -> Iterator[WindowData]:
    """Windows from ``start_s`` to ``end_s`` (default the record end), rendered ``chunk_windows`` at a time.

    Rendering a chunk at once and slicing it keeps the per-window cost low for long evaluations.
    """
    end = timeline.duration_s if end_s is None else min(end_s, timeline.duration_s)
    win_n, hop_n = round(window_s * fs_hz), round(hop_s * fs_hz)
    n_windows = max(0, int((end - start_s - win_n / fs_hz) * fs_hz) // hop_n + 1)
    mask = timeline.af_mask()
    for c0 in range(0, n_windows, chunk_windows):
        k = min(chunk_windows, n_windows - c0)
        t0 = start_s + c0 * hop_n / fs_hz
        span_n = (k - 1) * hop_n + win_n
        x = render_span(
            timeline, t0_s=t0, duration_s=span_n / fs_hz, fs_hz=fs_hz, morphology=morphology, rng=rng,
            noise_mv=noise_mv, af_mask=mask,
        ).astype(np.float32)
        for j in range(k):
            w0 = t0 + j * hop_n / fs_hz
            yield WindowData(
                seq=c0 + j,
                t0_s=w0,
                samples=x[j * hop_n : j * hop_n + win_n],
                truth=timeline.truth_over(w0, w0 + win_n / fs_hz),
            )


class LtafdbDevice:
    """A simulated wearable on one ltafdb record's real beats; windows from ``start_s`` on.

    ``max_windows`` limits the stream; otherwise it runs to the record end. Windows must be
    asked in order of ``seq``; ``t0_s`` of the windows is the time into the record.
    """

    def __init__(
        self,
        patient_id: str,
        timeline: BeatTimeline,
        rng: np.random.Generator,
        *,
        fs_hz: float,
        window_s: float,
        hop_s: float,
        start_s: float = 0.0,
        max_windows: int | None = None,
        noise_mv: float = 0.02,
    ) -> None:
        self.patient_id = patient_id
        self.device_id = f"synthmorph-{patient_id}"[:64]
        self.lead = "I"
        self.fs_hz = float(fs_hz)
        self.age: float | None = None
        self.sex: int | None = None
        self.timeline = timeline
        self.morphology = Morphology.draw(rng)
        end_s = None
        if max_windows is not None:
            end_s = start_s + (max_windows - 1) * round(hop_s * fs_hz) / fs_hz + round(window_s * fs_hz) / fs_hz
        self._windows = iter_windows(
            timeline, fs_hz=fs_hz, window_s=window_s, hop_s=hop_s, morphology=self.morphology, rng=rng,
            start_s=start_s, end_s=end_s, chunk_windows=6, noise_mv=noise_mv,
        )

    def window(self, seq: int) -> WindowData | None:
        """The next window (its ``seq`` counts from 0 at ``start_s``), or None at the end."""
        w = next(self._windows, None)
        if w is None:
            return None
        if w.seq != seq:
            raise ValueError(f"windows must be asked in order: expected seq {w.seq}, got {seq}.")
        return w
