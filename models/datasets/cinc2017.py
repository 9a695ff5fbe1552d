"""CinC 2017-style folders: ``NAME.hea`` + ``NAME.mat`` single-lead WFDB records and ``REFERENCE.csv``.

Any folder laid out like ``../shared/data/cinc2017`` reads the same: every record's rate comes from its
own header and is resampled with ``scipy.signal.resample_poly`` to the rate the caller asks for.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ecgmon.dsp import resample
from ecgmon.errors import DataError
from models.datasets.labels import cinc2017_label


@dataclass
class SingleLead:
    """Variable-length single-lead records at one rate: ``signals[i] [samples_i]`` float32 mV."""

    signals: list[np.ndarray]
    fs_hz: float
    labels: list[str]
    record_ids: list[str]

    def __len__(self) -> int:
        return len(self.signals)


def read_reference(path: Path) -> dict[str, str]:
    """``REFERENCE.csv`` (no header, ``NAME,LABEL``) -> {record: class}."""
    ref = Path(path) / "REFERENCE.csv"
    if not ref.is_file():
        raise DataError(f"Missing {ref}; a CinC 2017-style folder needs REFERENCE.csv with NAME,LABEL rows.")
    with ref.open(newline="") as f:
        rows = [r for r in csv.reader(f) if r and r[0].strip()]
    return {r[0].strip(): cinc2017_label(r[1]) for r in rows}


def read_record_native(path: Path, name: str) -> tuple[np.ndarray, float]:
    """First channel of WFDB record ``path/name`` in mV at its header's rate -> (``[samples]`` float64, fs_hz).

    The record-level aggregator detects R peaks here, before any resampling blurs QRS timing.
    """
    import wfdb

    try:
        rec = wfdb.rdrecord(str(Path(path) / name))
    except (OSError, ValueError, IndexError, KeyError) as exc:
        raise DataError(f"Cannot read WFDB record {Path(path) / name}: {exc}.") from None
    sig = np.nan_to_num(np.asarray(rec.p_signal, dtype=np.float64)[:, 0])
    if str(rec.units[0]).lower() in ("uv", "µv"):
        sig = sig / 1000.0
    return sig, float(rec.fs)


def read_record(path: Path, name: str, fs_hz: float) -> np.ndarray:
    """First channel of WFDB record ``path/name`` in mV, resampled to ``fs_hz`` -> ``[samples]`` float32."""
    sig, fs = read_record_native(path, name)
    return resample(sig, fs, fs_hz, dtype=np.float32)


def listed_records(path: Path, records: list[str] | None) -> tuple[dict[str, str], list[str]]:
    """``REFERENCE.csv``'s labels and the records to read (all, or ``records``), each checked to be listed."""
    ref = read_reference(path)
    names = sorted(ref) if records is None else list(records)
    missing = [n for n in names if n not in ref]
    if missing:
        raise DataError(f"{len(missing)} record(s) are not in {path / 'REFERENCE.csv'}, e.g. {missing[0]}.")
    if not names:
        raise DataError(f"{path / 'REFERENCE.csv'} lists no records.")
    return ref, names


def load_cinc2017(path: Path, fs_hz: float, records: list[str] | None = None) -> SingleLead:
    """Every record listed in ``REFERENCE.csv`` (or only ``records``), resampled to ``fs_hz``."""
    path = Path(path)
    if not path.is_dir():
        raise DataError(
            f"Dataset folder {path} does not exist; pass a folder laid out like ../shared/data/cinc2017."
        )
    ref, names = listed_records(path, records)
    signals = [read_record(path, n, fs_hz) for n in names]
    return SingleLead(signals, float(fs_hz), [ref[n] for n in names], names)
