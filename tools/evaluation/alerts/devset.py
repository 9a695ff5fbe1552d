"""Long real-wearable streams for tuning and judging AF alerts, spliced from CinC 2017 records.

CinC 2017 records are 9-61 s AliveCor recordings, one rhythm label each (N normal, A AF, O other
rhythm, ``~`` noisy). A centre watches hours, not seconds, so this module splices them into long
streams that ``ecgmon eval alerts --dataset cpsc2021`` reads like any CPSC 2021 folder:

* an AF episode is a run of 2-4 ``A`` records back to back (``AF_RUN``); the N, O and ``~`` records
  lie between the episodes in random order, and every episode has at least one non-AF record on
  either side, so episodes never merge;
* each piece has its median removed and neighbouring pieces are joined by a linear cross-fade of
  ``CROSSFADE_S`` seconds; a piece's boundary (an episode's onset or offset) is the middle of the
  cross-fade;
* the records are dealt to ``streams`` streams without repetition, so the streams are record-disjoint
  and a subset of them can be held out from tuning.

Two folders are written under ``out``: ``mixed/`` (every AF, N, O and ``~`` record of the list) and
``other/`` (only the O and ``~`` records, no AF: what false alerts look like on the rhythms and noise
most often mistaken for AF). Each holds WFDB records ``devNN`` (lead I, mV, at the source rate),
``RECORDS``, ``labels.csv`` (``record, patient, fs, seconds, class, n_af_episodes, af_seconds``),
``episodes.csv`` (``record, onset_s, offset_s``) and ``pieces.csv`` (``record, source, label, start_s,
end_s``: which source record lies where). Everything random comes from one seeded generator.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ecgmon.errors import ConfigError, DataError

AF_RUN = (2, 4)
"""An AF episode is this many ``A`` records back to back (inclusive range)."""
CROSSFADE_S = 0.3
"""Linear cross-fade at each junction, seconds."""
NON_AF = ("N", "O", "~")


@dataclass(frozen=True)
class Piece:
    """One source record placed in a stream."""

    source: str
    label: str
    signal: np.ndarray


@dataclass(frozen=True)
class Built:
    """What ``build`` wrote: the folder, its streams and their AF episodes and hours."""

    folder: Path
    streams: int
    episodes: int
    hours: float


def read_list(path: Path) -> list[str]:
    """Record names from a list file (one a line; ``#`` comments and blank lines skipped)."""
    if not Path(path).is_file():
        raise DataError(f"{path} is not a file; pass the record list, e.g. "
                        "models/weights/classifier_cinc2017_val_records.txt.")
    return [ln.strip() for ln in Path(path).read_text().splitlines() if ln.strip() and not ln.startswith("#")]


def read_labels(source: Path) -> dict[str, str]:
    """``REFERENCE.csv`` of a CinC 2017 folder as ``{record: label}``."""
    f = Path(source) / "REFERENCE.csv"
    if not f.is_file():
        raise DataError(f"{f} is missing; --source must be a CinC 2017 folder with REFERENCE.csv.")
    ref = pd.read_csv(f, header=None, names=["record", "label"], dtype=str)
    return dict(zip(ref["record"].str.strip(), ref["label"].str.strip(), strict=True))


def load_piece(source: Path, record: str, label: str) -> tuple[Piece, float]:
    """Lead I of a CinC 2017 record in mV with its median removed, and its rate in Hz."""
    import wfdb

    try:
        rec = wfdb.rdrecord(str(Path(source) / record), channels=[0], physical=True)
    except (OSError, ValueError) as exc:
        raise DataError(f"Cannot read WFDB record {record} in {source}: {exc}.") from None
    sig = np.nan_to_num(np.asarray(rec.p_signal[:, 0], dtype=np.float64))
    return Piece(record, label, sig - np.median(sig)), float(rec.fs)


def splice(pieces: Sequence[Piece], fs_hz: float, crossfade_s: float = CROSSFADE_S) -> tuple[np.ndarray, np.ndarray]:
    """Join ``pieces`` with linear cross-fades of ``crossfade_s``: ``(signal [k] mV, bounds [p, 2] s)``.

    ``bounds`` gives each piece's span in the joined signal; a boundary between two pieces is the
    middle of their cross-fade (the first starts at 0, the last ends at the signal's end).
    """
    fade = int(round(crossfade_s * fs_hz))
    out = np.asarray(pieces[0].signal, dtype=np.float64).copy()
    starts = [0.0]
    for p in pieces[1:]:
        nxt = np.asarray(p.signal, dtype=np.float64)
        f = min(fade, len(out), len(nxt))
        if f:
            w = np.linspace(0.0, 1.0, f + 2)[1:-1]
            blended = out[-f:] * (1.0 - w) + nxt[:f] * w
            starts.append((len(out) - f / 2.0) / fs_hz)
            out = np.concatenate([out[:-f], blended, nxt[f:]])
        else:
            starts.append(len(out) / fs_hz)
            out = np.concatenate([out, nxt])
    ends = [*starts[1:], len(out) / fs_hz]
    return out, np.column_stack([starts, ends])


def plan_streams(
    labels: dict[str, str], records: Sequence[str], *, streams: int, rng: np.random.Generator, with_af: bool
) -> list[list[tuple[str, str]]]:
    """Deal ``records`` into ``streams`` orders of ``(record, label)`` (rules in the module docstring).

    With ``with_af`` the A records become episodes of ``AF_RUN`` records placed between non-AF
    records; without, only O and ``~`` records are used.
    """
    known = [r for r in records if r in labels]
    if with_af:
        af = [r for r in known if labels[r] == "A"]
        rest = [r for r in known if labels[r] in NON_AF]
    else:
        af = []
        rest = [r for r in known if labels[r] in ("O", "~")]
    if not rest:
        raise DataError("The record list holds no non-AF records of CinC 2017 (N, O or ~); nothing to build.")
    rng.shuffle(af)
    runs: list[list[str]] = []
    i = 0
    while i < len(af):
        n = int(rng.integers(AF_RUN[0], AF_RUN[1] + 1))
        if len(af) - i - n == 1:  # never leave a single A record for the last run
            n += 1 if n < AF_RUN[1] else -1
        runs.append(af[i : i + n])
        i += n
    rest = list(rest)
    rng.shuffle(rest)
    n_streams = max(1, min(streams, len(rest)))
    fillers = [rest[k::n_streams] for k in range(n_streams)]
    episodes: list[list[list[str]]] = [[] for _ in range(n_streams)]
    for j, run in enumerate(runs):
        episodes[j % n_streams].append(run)
    plans = []
    for fill, eps in zip(fillers, episodes, strict=True):
        if len(eps) > len(fill) - 1:
            raise DataError(f"{len(eps)} AF episodes need at least {len(eps) + 1} non-AF records per stream; "
                            f"a stream has {len(fill)}: use fewer --streams.")
        # Gaps are the spaces between filler records (never before the first or after the last), one
        # episode per gap, so every episode has non-AF on either side.
        gaps = sorted(rng.choice(np.arange(1, len(fill)), size=min(len(eps), len(fill) - 1), replace=False).tolist())
        order: list[tuple[str, str]] = []
        it = iter(zip(gaps, eps, strict=True))
        nxt = next(it, None)
        for k, r in enumerate(fill):
            while nxt is not None and nxt[0] == k:
                order += [(a, "A") for a in nxt[1]]
                nxt = next(it, None)
            order.append((r, labels[r]))
        plans.append(order)
    return plans


def build(
    source: Path,
    records: Sequence[str],
    out: Path,
    *,
    streams: int,
    seed: int,
    with_af: bool,
    crossfade_s: float = CROSSFADE_S,
) -> Built:
    """Write one folder of spliced streams (``mixed`` when ``with_af``, else ``other``) under ``out``."""
    if streams < 1:
        raise ConfigError(f"--streams {streams} must be at least 1.")
    import wfdb

    labels = read_labels(source)
    missing = [r for r in records if r not in labels]
    if missing:
        raise DataError(f"{len(missing)} listed records are not in {source}/REFERENCE.csv (first: {missing[0]}).")
    rng = np.random.default_rng([seed, 1 if with_af else 0])
    plans = plan_streams(labels, records, streams=streams, rng=rng, with_af=with_af)
    folder = Path(out) / ("mixed" if with_af else "other")
    folder.mkdir(parents=True, exist_ok=True)
    names, label_rows, episode_rows, piece_rows = [], [], [], []
    total_s = 0.0
    fs_seen: float | None = None
    for k, plan in enumerate(plans):
        name = f"dev{k:02d}"
        pieces = []
        for rec, lab in plan:
            piece, fs = load_piece(source, rec, lab)
            if fs_seen is None:
                fs_seen = fs
            elif fs != fs_seen:
                raise DataError(f"Record {rec} is at {fs:g} Hz, the others at {fs_seen:g} Hz; one rate per set.")
            pieces.append(piece)
        assert fs_seen is not None
        signal, bounds = splice(pieces, fs_seen, crossfade_s)
        eps = _episodes([p.label for p in pieces], bounds)
        seconds = len(signal) / fs_seen
        total_s += seconds
        wfdb.wrsamp(
            name, fs=fs_seen, units=["mV"], sig_name=["I"], p_signal=signal[:, None], fmt=["16"],
            adc_gain=[1000.0], baseline=[0], write_dir=str(folder),
            comments=[f"spliced from {len(pieces)} CinC 2017 records by tools.evaluation.alerts.devset, seed {seed}"],
        )  # fmt: skip
        names.append(name)
        af_s = float(sum(b - a for a, b in eps))
        label_rows.append({"record": name, "patient": name, "fs": fs_seen, "seconds": round(seconds, 3),
                           "class": "AFp" if eps else "N", "n_af_episodes": len(eps), "af_seconds": round(af_s, 3)})
        episode_rows += [{"record": name, "onset_s": round(a, 3), "offset_s": round(b, 3)} for a, b in eps]
        piece_rows += [{"record": name, "source": p.source, "label": p.label, "start_s": round(b0, 3),
                        "end_s": round(b1, 3)} for p, (b0, b1) in zip(pieces, bounds, strict=True)]
    (folder / "RECORDS").write_text("\n".join(names) + "\n")
    pd.DataFrame(label_rows).to_csv(folder / "labels.csv", index=False)
    pd.DataFrame(episode_rows, columns=["record", "onset_s", "offset_s"]).to_csv(folder / "episodes.csv", index=False)
    pd.DataFrame(piece_rows).to_csv(folder / "pieces.csv", index=False)
    return Built(folder, len(names), len(episode_rows), total_s / 3600.0)


def _episodes(labels: Sequence[str], bounds: np.ndarray) -> list[tuple[float, float]]:
    """AF episodes ``(onset_s, offset_s)``: maximal runs of ``A`` pieces."""
    out: list[tuple[float, float]] = []
    start: float | None = None
    for lab, (b0, b1) in zip(labels, bounds, strict=True):
        if lab == "A" and start is None:
            start = float(b0)
        if lab != "A" and start is not None:
            out.append((start, float(b0)))
            start = None
        if lab == "A":
            end = float(b1)
    if start is not None:
        out.append((start, end))
    return out
