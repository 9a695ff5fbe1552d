"""All of PTB-XL (any folder of ``*_lr`` WFDB records) as one local array cache, minus what judges us.

Why: the reconstructor and the student learn their 12-lead side from ~3,000 PTB-XL records; PTB-XL has
21,837. A public copy of its 100 Hz WFDB files has no metadata file, so only the records that also sit
in ``ptbxl_z``/``ptbxl100`` train keep age and sex; every other record gets NaN ("unknown").

Exclusions come first, before a single record is read:

- every ecg_id in ``ptbxl_heldout_ids.txt`` (they judge the project: never train, tune or select on them);
- every ecg_id in a validation CSV (``ptbxl_z/*val*.csv``, ``ptbxl100/*val*.csv``): training on them leaks.

Patient ids of the other records are unknown, so another recording of a validation (or held-out)
patient can still be in the pool; ``manifest.json`` gives what can be counted about that risk.

Cache layout (outside git; ``Settings.cache_dir / "ptbxl_full"``, i.e. ``$ECGMON_CACHE_DIR/ptbxl_full``):

- ``chunks/chunk_NNNNN.npz``: ``x`` int16 µV ``[n, 12, samples]`` + ``ecg_id``; written atomically, one
  chunk at a time, so an interrupted build resumes at the first missing chunk;
- ``signals_100hz.npy``: int16 µV ``[N, 12, 1000]`` (leads in ``LEADS`` order) joined from the chunks;
- ``index.csv``: ``ecg_id, age, sex, meta_source`` per row of the array (``meta_source`` names the
  train CSV the metadata came from, empty when unknown);
- ``manifest.json``: source, rate, counts of every exclusion, the train overlap and the leak figures.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ecgmon.dsp import resample
from ecgmon.errors import DataError
from models.datasets.ptbxl import LEADS

FS_HZ = 100.0
"""Rate of the cache (PTB-XL's low-rate copy); records at other rates are resampled to it."""
WINDOW_S = 10.0
CHUNK_RECORDS = 1000
RECORD_GLOB = "*_lr.hea"
PTBXL_RECORDS = 21837
PTBXL_PATIENTS = 18885
"""PTB-XL 1.0.1 counts (Wagner et al. 2020), used only to estimate the leak the pool cannot rule out."""
SIGNALS_FILE = "signals_100hz.npy"
INDEX_FILE = "index.csv"
MANIFEST_FILE = "manifest.json"
_INT16 = np.iinfo(np.int16)


def default_cache_dir() -> Path:
    """``Settings.cache_dir / "ptbxl_full"`` (``ECGMON_CACHE_DIR``, default ``~/.cache/ecgmon``; never inside git)."""
    from ecgmon.settings import get_settings

    return get_settings().cache_dir / "ptbxl_full"


@dataclass
class Exclusions:
    """What the pool must drop (``heldout``, ``val``) and the metadata it may keep (``train_meta``).

    ``train_meta`` maps ecg_id -> ``(age, sex, csv name)``; ``val_patients`` maps a validation
    patient id to its validation ecg_ids (for the leak estimate).
    """

    heldout: set[int] = field(default_factory=set)
    val: set[int] = field(default_factory=set)
    train_meta: dict[int, tuple[float, float, str]] = field(default_factory=dict)
    val_patients: dict[str, set[int]] = field(default_factory=dict)
    train_patients: set[str] = field(default_factory=set)

    def reason(self, ecg_id: int) -> str | None:
        """Why ``ecg_id`` is excluded (``heldout`` wins over ``val``), or None to keep it."""
        if ecg_id in self.heldout:
            return "heldout"
        if ecg_id in self.val:
            return "val"
        return None


def _float_or_nan(text: str | None) -> float:
    try:
        return float(text) if text not in (None, "") else float("nan")
    except ValueError:
        return float("nan")


def _csv_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    if rows and "ecg_id" not in rows[0]:
        raise DataError(f"{path} has no ecg_id column; expected the ptbxl_z CSV layout.")
    return rows


def read_heldout_ids(path: Path) -> set[int]:
    """ecg_ids from a held-out list: one per line, ``#`` comments and blank lines ignored."""
    if not path.is_file():
        raise DataError(
            f"Held-out id list {path} is missing; it must exist so that those records are never trained on."
        )
    ids: set[int] = set()
    for n, line in enumerate(path.read_text().splitlines(), 1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        try:
            ids.add(int(text))
        except ValueError:
            raise DataError(f"{path} line {n}: {text!r} is not an ecg_id.") from None
    return ids


def read_exclusions(shared_data: Path, folders: tuple[str, ...] = ("ptbxl_z", "ptbxl100")) -> Exclusions:
    """Held-out ids + validation ids + train metadata from a folder laid out like ``../shared/data``."""
    shared_data = Path(shared_data)
    ex = Exclusions(heldout=read_heldout_ids(shared_data / "ptbxl_heldout_ids.txt"))
    for name in folders:
        folder = shared_data / name
        if not folder.is_dir():
            raise DataError(f"{folder} is missing; its validation ids must be known to keep them out of the pool.")
        val_csvs = sorted(folder.glob("*val*.csv"))
        if not val_csvs:
            raise DataError(f"No *val*.csv in {folder}; its validation ids must be known to exclude them.")
        for path in val_csvs:
            for r in _csv_rows(path):
                eid = int(r["ecg_id"])
                ex.val.add(eid)
                pid = str(r.get("patient_id", "")).split(".")[0]
                if pid:
                    ex.val_patients.setdefault(pid, set()).add(eid)
        for path in sorted(folder.glob("*train*.csv")):
            for r in _csv_rows(path):
                meta = (_float_or_nan(r.get("age")), _float_or_nan(r.get("sex")), f"{name}/{path.name}")
                ex.train_meta.setdefault(int(r["ecg_id"]), meta)
                pid = str(r.get("patient_id", "")).split(".")[0]
                if pid:
                    ex.train_patients.add(pid)
    return ex


def ecg_id_of(stem: str) -> int:
    """``00123_lr`` -> 123: the leading digits of a record name."""
    m = re.match(r"(\d+)", stem)
    if m is None:
        raise DataError(f"Record name {stem!r} does not start with an ecg_id (PTB-XL names are NNNNN_lr).")
    return int(m.group(1))


def find_records(source: Path, pattern: str = RECORD_GLOB) -> list[tuple[int, Path]]:
    """``(ecg_id, record path without extension)`` for every header matching ``pattern`` under ``source``."""
    source = Path(source)
    if not source.is_dir():
        raise DataError(
            f"Source folder {source} does not exist; pass the folder holding records100/ (PTB-XL WFDB files)."
        )
    found: dict[int, Path] = {}
    for hea in source.rglob(pattern):
        eid = ecg_id_of(hea.stem)
        if eid in found:
            raise DataError(f"ecg_id {eid} appears twice: {found[eid]} and {hea.with_suffix('')}.")
        found[eid] = hea.with_suffix("")
    if not found:
        raise DataError(f"No WFDB headers matching {pattern} under {source}; pass PTB-XL's records folder.")
    return sorted(found.items())


def read_record(path: Path, fs_hz: float = FS_HZ, window_s: float = WINDOW_S) -> np.ndarray:
    """One WFDB record -> int16 µV ``[12, window_s * fs_hz]`` in ``LEADS`` order.

    The rate comes from the record's header; other rates are resampled to ``fs_hz`` (polyphase). The
    first ``window_s`` seconds are kept, shorter records are zero-padded at the end.
    """
    import wfdb

    try:
        rec = wfdb.rdrecord(str(path))
    except (OSError, ValueError, IndexError, KeyError) as exc:
        raise DataError(f"Cannot read WFDB record {path}: {exc}.") from None
    by_name = {str(n).lower(): i for i, n in enumerate(rec.sig_name)}
    try:
        order = [by_name[lead.lower()] for lead in LEADS]
    except KeyError as exc:
        raise DataError(f"Record {path} lacks lead {exc.args[0]}; a 12-lead record is needed.") from None
    sig = np.nan_to_num(np.asarray(rec.p_signal, dtype=np.float64)[:, order].T)
    units = {str(u).lower() for u in rec.units}
    scale_to_uv = 1.0 if units <= {"uv", "µv"} else 1000.0
    sig = resample(sig, float(rec.fs), fs_hz)
    n = int(round(window_s * fs_hz))
    out = np.zeros((12, n), dtype=np.float64)
    out[:, : min(n, sig.shape[-1])] = sig[:, :n]
    return np.clip(np.round(out * scale_to_uv), _INT16.min, _INT16.max).astype(np.int16)


@dataclass
class BuildSummary:
    """What a build did: records kept and excluded (by reason), chunks read and reused, the cache."""

    cache: Path
    kept: int
    excluded: dict[str, int]
    chunks_read: int
    chunks_reused: int
    with_metadata: int


ProgressFn = Callable[[int, int], None]
"""``progress(records_done, records_total)``, called after every chunk (also for reused ones)."""


def _chunk_path(cache: Path, k: int) -> Path:
    return cache / "chunks" / f"chunk_{k:05d}.npz"


def _chunk_done(path: Path, ids: list[int], samples: int) -> bool:
    if not path.is_file():
        return False
    try:
        with np.load(path) as z:
            return z["ecg_id"].tolist() == ids and z["x"].shape == (len(ids), 12, samples)
    except (OSError, ValueError, KeyError):
        return False


def leak_figures(ex: Exclusions, kept_ids: list[int]) -> dict[str, float | int | str]:
    """What can be counted about validation patients' other recordings left in the pool.

    Patient ids of pool records outside the train CSVs are unknown, so those records cannot be checked;
    the estimate uses PTB-XL's overall records-per-patient ratio.
    """
    kept = set(kept_ids)
    known = kept & set(ex.train_meta)
    val_pat = set(ex.val_patients)
    extra_per_patient = PTBXL_RECORDS / PTBXL_PATIENTS - 1.0
    return {
        "val_records": len(ex.val),
        "val_patients": len(val_pat),
        "val_patients_in_train_csvs": len(val_pat & ex.train_patients),
        "pool_records_with_known_patient": len(known),
        "pool_records_with_unknown_patient": len(kept - known),
        "estimated_pool_records_of_val_patients": round(len(val_pat) * extra_per_patient, 1),
        "estimated_pool_records_of_heldout_patients": round(len(ex.heldout) * extra_per_patient, 1),
        "estimate_basis": (
            f"patients x (PTB-XL {PTBXL_RECORDS} records / {PTBXL_PATIENTS} patients - 1), held-out ids "
            "counted as one patient each; patient ids of unknown-metadata records are not in this copy"
        ),
    }


def build_cache(
    source: Path,
    cache: Path,
    exclusions: Exclusions,
    *,
    fs_hz: float = FS_HZ,
    window_s: float = WINDOW_S,
    chunk_records: int = CHUNK_RECORDS,
    pattern: str = RECORD_GLOB,
    progress: ProgressFn | None = None,
) -> BuildSummary:
    """Read every kept record of ``source`` into ``cache`` (see the module docstring); resumable.

    Excluded ids are dropped from the record list before any file is opened. Chunks already on disk
    with the same ids are reused, so re-running after a stop reads only what is missing.
    """
    if chunk_records < 1:
        raise DataError(f"chunk_records is {chunk_records}; it must be at least 1.")
    records = find_records(source, pattern)
    excluded: dict[str, int] = {"heldout": 0, "val": 0}
    kept: list[tuple[int, Path]] = []
    for eid, path in records:
        why = exclusions.reason(eid)
        if why is None:
            kept.append((eid, path))
        else:
            excluded[why] += 1
    if not kept:
        raise DataError(f"Every record under {source} is excluded (held-out or validation); nothing to build.")
    cache = Path(cache)
    (cache / "chunks").mkdir(parents=True, exist_ok=True)
    samples = int(round(window_s * fs_hz))
    groups = [kept[i : i + chunk_records] for i in range(0, len(kept), chunk_records)]
    read = reused = done = 0
    for k, group in enumerate(groups):
        ids = [eid for eid, _ in group]
        path = _chunk_path(cache, k)
        if _chunk_done(path, ids, samples):
            reused += 1
        else:
            x = np.stack([read_record(p, fs_hz, window_s) for _, p in group])
            tmp = path.with_name(path.stem + ".tmp.npz")
            np.savez(tmp, x=x, ecg_id=np.array(ids, dtype=np.int64))
            tmp.replace(path)
            read += 1
        done += len(group)
        if progress is not None:
            progress(done, len(kept))
    for stale in sorted((cache / "chunks").glob("chunk_*.npz")):
        if not stale.name.endswith(".tmp.npz") and int(stale.stem.split("_")[1]) >= len(groups):
            stale.unlink()
    _join(cache, groups, samples)
    kept_ids = [eid for eid, _ in kept]
    with_meta = _write_index(cache, kept_ids, exclusions)
    manifest = {
        "source": str(Path(source).resolve()),
        "pattern": pattern,
        "fs_hz": fs_hz,
        "window_samples": samples,
        "units": "int16 microvolts",
        "leads": list(LEADS),
        "records_found": len(records),
        "records_kept": len(kept),
        "excluded": excluded,
        "heldout_ids_listed": len(exclusions.heldout),
        "val_ids_listed": len(exclusions.val),
        "records_with_metadata": with_meta,
        "leak": leak_figures(exclusions, kept_ids),
    }
    (cache / MANIFEST_FILE).write_text(json.dumps(manifest, indent=1) + "\n")
    return BuildSummary(cache, len(kept), excluded, read, reused, with_meta)


def _join(cache: Path, groups: list[list[tuple[int, Path]]], samples: int) -> None:
    n = sum(len(g) for g in groups)
    tmp = cache / (SIGNALS_FILE + ".tmp")
    out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.int16, shape=(n, 12, samples))
    row = 0
    for k in range(len(groups)):
        with np.load(_chunk_path(cache, k)) as z:
            x = z["x"]
            out[row : row + len(x)] = x
            row += len(x)
    out.flush()
    del out
    tmp.replace(cache / SIGNALS_FILE)


def _write_index(cache: Path, kept_ids: list[int], ex: Exclusions) -> int:
    with_meta = 0
    tmp = cache / (INDEX_FILE + ".tmp")
    with tmp.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["ecg_id", "age", "sex", "meta_source"])
        for eid in kept_ids:
            age, sex, src = ex.train_meta.get(eid, (float("nan"), float("nan"), ""))
            with_meta += bool(src)
            w.writerow([eid, "" if np.isnan(age) else f"{age:g}", "" if np.isnan(sex) else f"{sex:g}", src])
    tmp.replace(cache / INDEX_FILE)
    return with_meta


@dataclass
class Pool:
    """The built cache: ``x`` int16 µV ``[n, 12, samples]`` (memory-mapped), ids and metadata (NaN unknown)."""

    x: np.ndarray
    ecg_ids: np.ndarray
    age: np.ndarray
    sex: np.ndarray
    fs_hz: float

    def __len__(self) -> int:
        return int(self.x.shape[0])


def load_pool(cache: Path) -> Pool:
    """Open a cache written by ``build_cache``; a missing or partial cache is a ``DataError``."""
    cache = Path(cache)
    need = [cache / SIGNALS_FILE, cache / INDEX_FILE, cache / MANIFEST_FILE]
    missing = [p for p in need if not p.is_file()]
    if missing:
        raise DataError(
            f"PTB-XL pool cache {cache} is incomplete (no {missing[0].name}); run `ecgmon data ptbxl-full` first."
        )
    manifest = json.loads((cache / MANIFEST_FILE).read_text())
    x = np.load(cache / SIGNALS_FILE, mmap_mode="r")
    with (cache / INDEX_FILE).open(newline="") as f:
        rows = list(csv.DictReader(f))
    if len(rows) != x.shape[0]:
        raise DataError(f"{cache / INDEX_FILE} lists {len(rows)} rows for {x.shape[0]} records; rebuild the cache.")
    return Pool(
        x,
        np.array([int(r["ecg_id"]) for r in rows], dtype=np.int64),
        np.array([_float_or_nan(r["age"]) for r in rows], dtype=np.float32),
        np.array([_float_or_nan(r["sex"]) for r in rows], dtype=np.float32),
        float(manifest["fs_hz"]),
    )
