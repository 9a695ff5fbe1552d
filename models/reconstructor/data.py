"""Arrays the reconstructor trains and is judged on: 12 leads at the model rate, z-scored per record-lead.

Training joins ``ptbxl_z/train`` (250 Hz, resampled to the model rate) and ``ptbxl100/train``
(100 Hz mV); both become z units per record-lead after resampling, so they agree with each other
and with what ``reconstruct`` returns. The joined arrays are cached as ``.npz`` under ``.cache/``.

``pool_arrays`` reads the PTB-XL pool cache (``models.datasets.ptbxl_full``: every PTB-XL record but the
held-out and validation ids, metadata mostly unknown) for pre-training; it is kept in float16 to halve
its ~1 GB footprint, and the training loop casts each batch.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ecgmon.dsp import resample
from ecgmon.errors import DataError
from models.datasets.ptbxl import TwelveLead, load_ptbxl100, load_ptbxl_z
from models.reconstructor.common import standardise


@dataclass
class ZArrays:
    """``x [n, 12, samples]`` z units at ``fs_hz`` with metadata; lead 0 is lead I, 1..11 the targets."""

    x: np.ndarray
    age: np.ndarray
    sex: np.ndarray
    record_ids: list[str]
    fs_hz: float

    def __len__(self) -> int:
        return int(self.x.shape[0])


def to_z(t: TwelveLead, fs_hz: float, window_samples: int) -> ZArrays:
    """Resample a ``TwelveLead`` to ``fs_hz``, keep the first ``window_samples``, z-score each record-lead."""
    x = resample(t.signals, t.fs_hz, fs_hz, dtype=np.float32)
    if x.shape[-1] < window_samples:
        raise DataError(
            f"Records are {x.shape[-1] / fs_hz:g} s at {fs_hz:g} Hz; "
            f"the model needs {window_samples / fs_hz:g} s."
        )
    x = standardise(x[..., :window_samples])
    return ZArrays(x, t.age.astype(np.float32), t.sex.astype(np.float32), list(t.record_ids), fs_hz)


def load_eval_folder(path: Path, split: str, fs_hz: float, window_samples: int) -> ZArrays:
    """A ptbxl_z-style folder (``SPLIT_250hz.npy`` + ``SPLIT.csv``; no scale file needed) at ``fs_hz``."""
    return to_z(load_ptbxl_z(Path(path), split, restore_mv=False), fs_hz, window_samples)


def _cached(cache: Path, build: ZArrays | None = None) -> ZArrays | None:
    if build is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(
            cache,
            x=build.x.astype(np.float16),
            age=build.age,
            sex=build.sex,
            ids=np.array(build.record_ids),
            fs=build.fs_hz,
        )
        return build
    if not cache.is_file():
        return None
    z = np.load(cache)
    return ZArrays(z["x"].astype(np.float32), z["age"], z["sex"], [str(i) for i in z["ids"]], float(z["fs"]))


def training_arrays(
    ptbxl_z: Path, ptbxl100: Path | None, split: str, fs_hz: float, window_samples: int, cache_dir: Path
) -> ZArrays:
    """ptbxl_z SPLIT (+ ptbxl100 SPLIT when given) at ``fs_hz`` in z units, cached by source and rate."""
    key = hashlib.sha1(
        f"{Path(ptbxl_z).resolve()}|{ptbxl100 and Path(ptbxl100).resolve()}|{split}|{fs_hz}|"
        f"{window_samples}".encode()
    ).hexdigest()[:12]
    cache = cache_dir / f"reconstructor_{split}_{key}.npz"
    hit = _cached(cache)
    if hit is not None:
        return hit
    parts = [to_z(load_ptbxl_z(Path(ptbxl_z), split, restore_mv=False), fs_hz, window_samples)]
    if ptbxl100 is not None:
        parts.append(to_z(load_ptbxl100(Path(ptbxl100), split), fs_hz, window_samples))
    joined = ZArrays(
        np.concatenate([p.x for p in parts]),
        np.concatenate([p.age for p in parts]),
        np.concatenate([p.sex for p in parts]),
        [i for p in parts for i in p.record_ids],
        fs_hz,
    )
    _cached(cache, joined)
    return joined


def pool_arrays(cache: Path, fs_hz: float, window_samples: int, chunk_records: int = 1024) -> ZArrays:
    """The PTB-XL pool cache at ``fs_hz`` in z units per record-lead, ``x`` float16 ``[n, 12, window_samples]``.

    Age and sex are NaN ("unknown") except for records that are also in a train CSV.
    """
    from models.datasets.ptbxl_full import load_pool

    pool = load_pool(Path(cache))
    x = np.empty((len(pool), 12, window_samples), dtype=np.float16)
    for i in range(0, len(pool), chunk_records):
        mv = np.asarray(pool.x[i : i + chunk_records], dtype=np.float32) / 1000.0
        part = resample(mv, pool.fs_hz, fs_hz, dtype=np.float32)
        if part.shape[-1] < window_samples:
            raise DataError(
                f"Pool records are {part.shape[-1] / fs_hz:g} s at {fs_hz:g} Hz; "
                f"the model needs {window_samples / fs_hz:g} s."
            )
        x[i : i + len(part)] = standardise(part[..., :window_samples])
    ids = [str(int(e)) for e in pool.ecg_ids]
    return ZArrays(x, pool.age.astype(np.float32), pool.sex.astype(np.float32), ids, fs_hz)
