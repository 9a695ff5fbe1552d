"""Training arrays for the classifier, built once from ../shared/data and cached under ``.cache/``.

cinc2017 records are kept whole (resampled to the canonical rate, concatenated with offsets) so training
can draw a fresh random 10 s crop each epoch; 12-lead records (PTB-XL, exactly 10 s) are resampled and
preprocessed once. The held-out cinc2017 records are chosen by a seeded, class-stratified, record-wise
split and written to a file so evaluation can be restricted to them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ecgmon.dsp import resample
from ecgmon.errors import DataError
from models.classifier.preprocess import preprocess_windows
from models.datasets.cinc2017 import load_cinc2017, read_reference
from models.datasets.labels import class_index, ptbxl_label


@dataclass
class RecordBank:
    """Whole single-lead records: ``flat`` holds them end to end, record i is ``flat[start[i]:stop[i]]``."""

    flat: np.ndarray
    start: np.ndarray
    stop: np.ndarray
    y: np.ndarray
    names: list[str]

    def signal(self, i: int) -> np.ndarray:
        """Record ``i`` in mV at the bank's rate."""
        return self.flat[self.start[i] : self.stop[i]]

    def subset(self, names: list[str]) -> RecordBank:
        """The records named in ``names`` (order of ``names``)."""
        where = {n: i for i, n in enumerate(self.names)}
        idx = [where[n] for n in names]
        sigs = [self.signal(i) for i in idx]
        lens = np.array([len(s) for s in sigs], dtype=np.int64)
        stop = np.cumsum(lens)
        return RecordBank(np.concatenate(sigs), stop - lens, stop, self.y[idx], names)


def _key(*parts: object) -> str:
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:12]


def cinc_bank(path: Path, fs_hz: float, cache_dir: Path) -> RecordBank:
    """All records of a cinc2017-style folder at ``fs_hz``, cached by folder, listing and rate."""
    path = Path(path)
    ref = read_reference(path)
    cache = Path(cache_dir) / f"cinc2017_{_key(str(path.resolve()), sorted(ref.items()), fs_hz)}.npz"
    if cache.is_file():
        z = np.load(cache)
        return RecordBank(z["flat"], z["start"], z["stop"], z["y"], [str(n) for n in z["names"]])
    data = load_cinc2017(path, fs_hz)
    lens = np.array([len(s) for s in data.signals], dtype=np.int64)
    stop = np.cumsum(lens)
    bank = RecordBank(
        np.concatenate(data.signals).astype(np.float32),
        stop - lens,
        stop,
        np.array([class_index(c) for c in data.labels], dtype=np.int64),
        data.record_ids,
    )
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, flat=bank.flat, start=bank.start, stop=bank.stop, y=bank.y, names=np.array(bank.names))
    return bank


def stratified_holdout(names: list[str], y: np.ndarray, fraction: float, seed: int) -> list[str]:
    """A seeded, class-stratified, record-wise ``fraction`` of ``names`` (sorted)."""
    if not 0.0 < fraction < 1.0:
        raise DataError(f"The validation fraction must be between 0 and 1, got {fraction}.")
    rng = np.random.default_rng(seed)
    held: list[str] = []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        take = rng.permutation(idx)[: max(1, round(fraction * len(idx)))]
        held += [names[i] for i in take]
    return sorted(held)


def read_record_list(path: Path) -> list[str]:
    """One record name per line; blank lines and ``#`` comments skipped."""
    if not Path(path).is_file():
        raise DataError(f"Record list {path} does not exist.")
    lines = [ln.split("#", 1)[0].strip() for ln in Path(path).read_text().splitlines()]
    return [ln for ln in lines if ln]


@dataclass
class TwelveLeadSet:
    """Preprocessed 12-lead windows ``x [n, 12, samples]`` with classes ``y [n]``, their source and
    each record's SCP statement codes (PTB-XL's diagnostic, form and rhythm statements)."""

    x: np.ndarray
    y: np.ndarray
    source: list[str]
    codes: list[tuple[str, ...]]


def code_vocabulary(codes: list[tuple[str, ...]], min_count: int) -> list[str]:
    """SCP codes named on at least ``min_count`` records, most frequent first (ties by name).

    Rare statements give the teacher's diagnostic head too few positives to learn from; the cut keeps
    the vocabulary a property of the training split, saved with the weights.
    """
    counts: dict[str, int] = {}
    for rec in codes:
        for c in rec:
            counts[c] = counts.get(c, 0) + 1
    return sorted((c for c, n in counts.items() if n >= min_count), key=lambda c: (-counts[c], c))


def code_targets(codes: list[tuple[str, ...]], vocabulary: list[str]) -> np.ndarray:
    """Multi-hot ``[n, len(vocabulary)]`` float32 targets; codes outside the vocabulary are dropped."""
    where = {c: j for j, c in enumerate(vocabulary)}
    out = np.zeros((len(codes), len(vocabulary)), dtype=np.float32)
    for i, rec in enumerate(codes):
        for c in rec:
            if c in where:
                out[i, where[c]] = 1.0
    return out


def twelve_lead_set(
    ptbxl_z: Path | None, ptbxl100: Path | None, split: str, fs_hz: float, samples: int, cache_dir: Path
) -> TwelveLeadSet:
    """PTB-XL records of ``split`` from both folders at ``fs_hz``, preprocessed, cached."""
    from models.datasets.ptbxl import load_ptbxl100, load_ptbxl_z, read_scp_codes

    parts = [(p, str(Path(p).resolve())) for p in (ptbxl_z, ptbxl100) if p is not None]
    if not parts:
        raise DataError("No 12-lead folder given; pass --ptbxl-z and/or --ptbxl100.")
    key = _key([s for _, s in parts], split, fs_hz, samples, "scp_codes")
    cache = Path(cache_dir) / f"twelve_{split}_{key}.npz"
    if cache.is_file():
        z = np.load(cache)
        codes = [tuple(c.split(";")) if c else () for c in (str(s) for s in z["codes"])]
        return TwelveLeadSet(z["x"], z["y"], [str(s) for s in z["source"]], codes)
    xs, ys, src, all_codes = [], [], [], []
    for folder, loader, tag in ((ptbxl_z, load_ptbxl_z, "ptbxl_z"), (ptbxl100, load_ptbxl100, "ptbxl100")):
        if folder is None:
            continue
        tl = loader(Path(folder), split)
        sig = resample(tl.signals, tl.fs_hz, fs_hz)
        if sig.shape[-1] < samples:
            sig = np.pad(sig, ((0, 0), (0, 0), (0, samples - sig.shape[-1])), mode="edge")
        xs.append(preprocess_windows(sig[..., :samples], fs_hz))
        ys.append(np.array([class_index(ptbxl_label(r)) for r in tl.rhythm], dtype=np.int64))
        src += [f"{tag}:{r}" for r in tl.record_ids]
        all_codes += read_scp_codes(Path(folder) / f"{split}.csv")
    out = TwelveLeadSet(np.concatenate(xs), np.concatenate(ys), src, all_codes)
    cache.parent.mkdir(parents=True, exist_ok=True)
    flat_codes = np.array([";".join(c) for c in out.codes])
    np.savez(cache, x=out.x, y=out.y, source=np.array(out.source), codes=flat_codes)
    return out
