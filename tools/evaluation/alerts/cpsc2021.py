"""CPSC 2021 records for alert evaluation: lead I (channel 0) cut into the worker's windows, with AF episodes.

A folder laid out like ``../shared/data/cpsc2021_sample``: WFDB ``NAME.hea/.dat`` at the rate its
header states, ``episodes.csv`` (``record, onset_s, offset_s``) and ``RECORDS`` (or every ``.hea``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import wfdb

from ecgmon.errors import DataError
from ecgmon.records import record_names
from tools.evaluation.alerts.scoring import Truth


def list_records(path: Path) -> list[str]:
    """Record names from ``RECORDS``, else every ``.hea`` in the folder, sorted."""
    names = record_names(path)
    if not names:
        raise DataError(f"{path} holds no WFDB records (.hea); pass a CPSC 2021 folder.")
    return names


def load_episodes(path: Path) -> pd.DataFrame:
    """``episodes.csv`` as a frame with ``record, onset_s, offset_s``."""
    f = Path(path) / "episodes.csv"
    if not f.is_file():
        raise DataError(f"{f} is missing; the folder must list AF episodes as record,onset_s,offset_s.")
    df = pd.read_csv(f, dtype={"record": str})
    if not {"record", "onset_s", "offset_s"} <= set(df.columns):
        raise DataError(f"{f} must have the columns record, onset_s, offset_s.")
    return df


def load_record(
    path: Path, record: str, *, window_s: float, hop_s: float
) -> tuple[np.ndarray, float, np.ndarray, float]:
    """Lead I of ``record`` cut into full windows: ``(windows [w, k] mV, fs_hz, t_end_s [w], seconds)``."""
    try:
        rec = wfdb.rdrecord(str(Path(path) / record), channels=[0], physical=True)
    except (OSError, ValueError) as exc:
        raise DataError(f"Cannot read WFDB record {record} in {path}: {exc}.") from None
    fs = float(rec.fs)
    sig = np.nan_to_num(np.asarray(rec.p_signal[:, 0], dtype=np.float64))
    k = int(round(window_s * fs))
    hop = int(round(hop_s * fs))
    starts = np.arange(0, max(sig.shape[0] - k + 1, 0), hop)
    windows = np.stack([sig[s : s + k] for s in starts]) if len(starts) else np.zeros((0, k))
    return windows, fs, (starts + k) / fs, sig.shape[0] / fs


def truth_for(record: str, episodes: pd.DataFrame, seconds: float) -> Truth:
    """The whole record is scored; its episodes from ``episodes.csv``."""
    rows = episodes[episodes["record"] == record]
    return Truth(record, 0.0, seconds, rows[["onset_s", "offset_s"]].to_numpy(dtype=np.float64).reshape(-1, 2))
