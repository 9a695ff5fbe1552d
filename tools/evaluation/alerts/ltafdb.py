"""LTAFDB patients for alert evaluation: synthetic morphology rendered on real beat times.

The Long-Term AF Database has expert beat times, beat types and rhythm changes but no waveform, so
each record's lead I is rendered by ``simulators.render.render_beats`` (one drawn morphology per
record, seeded noise and baseline wander) on its real beats, AF beats without P waves and with
f-waves. Only the labelled span (``labelled_from_s`` to ``labelled_to_s``) is rendered and scored.
Everything measured here is "synthetic morphology on real timing".
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any

import numpy as np

from ecgmon.settings import Settings
from tools.evaluation.alerts.scoring import Evidence, Truth, compute_evidence

CHUNK_WINDOWS = 512
"""Windows rendered and pushed through preprocessing and the classifier together."""
_EDGE_S = 1.0


def list_records(path: Path) -> list[str]:
    """Record names of an LTAFDB-like folder (the simulator's reader)."""
    from simulators.ltafdb import list_records as _list

    return list(_list(Path(path)))


def load(path: Path, record: str) -> Any:
    """The record's ``BeatTimeline`` (real beat times, types and rhythm)."""
    from simulators.ltafdb import load_timeline

    return load_timeline(Path(path), record)


def _episodes(timeline: Any) -> np.ndarray:
    eps = timeline.af_episodes()
    rows = [(float(e[0]), float(e[1])) if not hasattr(e, "onset_s") else (float(e.onset_s), float(e.offset_s))
            for e in eps]
    return np.asarray(rows, dtype=np.float64).reshape(-1, 2)


def truth_for(timeline: Any, *, hours: float | None = None) -> Truth:
    """Scored span = the labelled span, cut to its first ``hours`` when given; AF episodes from the timeline."""
    lo = float(timeline.labelled_from_s)
    hi = float(timeline.labelled_to_s)
    if hours is not None:
        hi = min(hi, lo + hours * 3600.0)
    return Truth(str(timeline.record), lo, hi, _episodes(timeline))


def af_mask(beat_times_s: np.ndarray, episodes: np.ndarray) -> np.ndarray:
    """``[k]`` True for beats inside an AF episode ``[e, 2]`` (s)."""
    if not len(episodes):
        return np.zeros(beat_times_s.shape, dtype=bool)
    i = np.searchsorted(episodes[:, 0], beat_times_s, side="right") - 1
    ok = i >= 0
    out = np.zeros(beat_times_s.shape, dtype=bool)
    out[ok] = beat_times_s[ok] < episodes[i[ok], 1]
    return out


def record_seed(seed: int, record: str) -> int:
    """A stable per-record seed, so every run renders the same patient."""
    return (seed * 1_000_003 + zlib.crc32(record.encode())) & 0x7FFFFFFF


def render_windows(
    timeline: Any, truth: Truth, *, fs_hz: float, window_s: float, hop_s: float, seed: int
) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Window start times ``[w]`` (s) over the scored span and chunk index ranges; rendering happens per chunk."""
    starts = np.arange(truth.span_from_s, truth.span_to_s - window_s + 1e-9, hop_s)
    chunks = [(lo, min(lo + CHUNK_WINDOWS, len(starts))) for lo in range(0, len(starts), CHUNK_WINDOWS)]
    return starts, chunks


def evidence(
    timeline: Any,
    truth: Truth,
    classifier: Any | None,
    *,
    settings: Settings,
    fs_hz: float,
    seed: int,
    mc_samples: int,
    progress: Any | None = None,
) -> Evidence:
    """Render the scored span chunk by chunk at ``fs_hz`` and compute every window's evidence."""
    from simulators.render import Morphology, beat_templates, render_beats

    window_s, hop_s = settings.window_s, settings.hop_s
    rng = np.random.default_rng(record_seed(seed, truth.record))
    morphology = Morphology.draw(rng)
    templates = beat_templates(morphology, float(fs_hz))
    times = np.asarray(timeline.beat_times_s, dtype=np.float64)
    types = np.asarray(timeline.beat_types).astype("U1")
    af = np.asarray(timeline.af_mask(), dtype=bool)
    starts, chunks = render_windows(timeline, truth, fs_hz=fs_hz, window_s=window_s, hop_s=hop_s, seed=seed)
    k = int(round(window_s * fs_hz))
    hop = int(round(hop_s * fs_hz))
    parts: list[Evidence] = []
    for lo, hi in chunks:
        t0 = float(starts[lo])
        duration = float(starts[hi - 1] - t0 + window_s)
        a, b = np.searchsorted(times, [t0 - _EDGE_S, t0 + duration + _EDGE_S])
        signal = render_beats(
            times[a:b], types[a:b], af[a:b], fs_hz=fs_hz, t0_s=t0, duration_s=duration, morphology=morphology,
            rng=rng, templates=templates,
        )
        idx = np.arange(hi - lo)[:, None] * hop + np.arange(k)[None, :]
        idx = np.minimum(idx, signal.shape[0] - 1)
        windows = signal[idx]
        parts.append(compute_evidence(
            truth.record, windows, fs_hz, starts[lo:hi] + window_s, classifier, window_s=window_s,
            mc_samples=mc_samples, batch=CHUNK_WINDOWS,
        ))
        if progress:
            progress(truth.record, hi, len(starts))
    if not parts:
        return compute_evidence(truth.record, np.zeros((0, k)), fs_hz, np.zeros(0), None, window_s=window_s)
    return Evidence.concat(parts)
