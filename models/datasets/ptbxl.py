"""PTB-XL 12-lead readers (``ptbxl_z`` at 250 Hz z-scored, ``ptbxl100`` at 100 Hz in µV) and ``TwelveLead``.

Both folders share one CSV layout (``ecg_id, patient_id, age, sex, strat_fold, rhythm, ...``), so one
reader of the CSV serves both; the array formats differ and each has its own loader. Any folder laid
out the same way (other records, other sizes) reads the same.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ecgmon.errors import DataError

LEADS: tuple[str, ...] = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")
"""Lead order of every ``TwelveLead.signals`` array."""


@dataclass
class TwelveLead:
    """A batch of 12-lead records at one rate and length.

    ``signals [n, 12, samples]`` float32 in mV, leads in ``LEADS`` order; ``age``/``sex`` float with NaN
    for unknown (sex 0 male, 1 female); ``rhythm`` is the source's own label (see each loader).
    """

    signals: np.ndarray
    fs_hz: float
    age: np.ndarray
    sex: np.ndarray
    rhythm: list[str]
    record_ids: list[str]
    patient_ids: list[str]

    def __len__(self) -> int:
        return int(self.signals.shape[0])


def _need(path: Path) -> Path:
    if not path.is_file():
        raise DataError(
            f"Missing file {path}; point --path at a folder laid out like ../shared/data (see its README)."
        )
    return path


def _float_or_nan(text: str | None) -> float:
    try:
        return float(text) if text not in (None, "") else float("nan")
    except ValueError:
        return float("nan")


def read_ptbxl_csv(path: Path) -> tuple[np.ndarray, np.ndarray, list[str], list[str], list[str]]:
    """``(age, sex, rhythm, record_ids, patient_ids)`` from a ptbxl-style CSV, one entry per row."""
    with _need(path).open(newline="") as f:
        rows = list(csv.DictReader(f))
    missing = {"ecg_id", "patient_id", "age", "sex", "rhythm"} - set(rows[0] if rows else {})
    if missing:
        raise DataError(
            f"{path} lacks the column(s) {', '.join(sorted(missing))}; expected the ptbxl_z CSV layout."
        )
    age = np.array([_float_or_nan(r["age"]) for r in rows], dtype=np.float64)
    sex = np.array([_float_or_nan(r["sex"]) for r in rows], dtype=np.float64)
    rhythm = [r["rhythm"] for r in rows]
    record_ids = [r["ecg_id"] for r in rows]
    patient_ids = [str(r["patient_id"]).split(".")[0] for r in rows]
    return age, sex, rhythm, record_ids, patient_ids


def read_scp_codes(path: Path) -> list[tuple[str, ...]]:
    """The SCP statement codes of each row of a ptbxl-style CSV (``scp_codes`` column), sorted.

    PTB-XL stores them as a Python dict literal (``{'IMI': 100.0, 'SR': 0.0}``); a likelihood of 0 still
    names a statement the cardiologist made, so every key counts. Empty tuples where the column is absent.
    """
    import ast

    with _need(path).open(newline="") as f:
        rows = list(csv.DictReader(f))
    out: list[tuple[str, ...]] = []
    for i, r in enumerate(rows):
        text = (r.get("scp_codes") or "").strip()
        if not text:
            out.append(())
            continue
        try:
            codes = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            raise DataError(f"{path} row {i + 2}: scp_codes {text[:60]!r} is not a dict literal.") from None
        if not isinstance(codes, dict):
            raise DataError(f"{path} row {i + 2}: scp_codes {text[:60]!r} is not a dict literal.")
        out.append(tuple(sorted(str(k) for k in codes)))
    return out


def _check_rows(signals: np.ndarray, n_rows: int, path: Path) -> None:
    if signals.ndim != 3 or signals.shape[1] != 12:
        raise DataError(f"{path} has shape {signals.shape}; expected [n, 12, samples].")
    if signals.shape[0] != n_rows:
        raise DataError(f"{path} holds {signals.shape[0]} records but its CSV lists {n_rows} rows.")


def load_ptbxl_z(path: Path, split: str, *, restore_mv: bool = True) -> TwelveLead:
    """Read ``SPLIT_250hz.npy`` (+ ``SPLIT_scale.npy``) and ``SPLIT.csv`` from a ptbxl_z-style folder.

    With ``restore_mv`` (default) signals are in mV (``z * std + mean``) as ``TwelveLead`` promises,
    which needs the scale file; with ``restore_mv=False`` they stay z-scored per record-lead and the
    scale file is optional (held-out folders may ship without it).
    """
    path = Path(path)
    age, sex, rhythm, ids, pids = read_ptbxl_csv(path / f"{split}.csv")
    npy = _need(path / f"{split}_250hz.npy")
    z = np.load(npy).astype(np.float32)
    _check_rows(z, len(ids), npy)
    if restore_mv:
        scale = np.load(_need(path / f"{split}_scale.npy")).astype(np.float32)
        if scale.shape != (z.shape[0], 12, 2):
            raise DataError(
                f"{path / f'{split}_scale.npy'} has shape {scale.shape}; expected [{z.shape[0]}, 12, 2]."
            )
        z = z * scale[..., 1:2] + scale[..., 0:1]
    return TwelveLead(z, 250.0, age, sex, rhythm, ids, pids)


def load_ptbxl100(path: Path, split: str) -> TwelveLead:
    """Read ``SPLIT_100hz.npy`` (int16 µV) and ``SPLIT.csv`` from a ptbxl100-style folder; signals in mV."""
    path = Path(path)
    age, sex, rhythm, ids, pids = read_ptbxl_csv(path / f"{split}.csv")
    npy = _need(path / f"{split}_100hz.npy")
    x = np.load(npy).astype(np.float32) / 1000.0
    _check_rows(x, len(ids), npy)
    return TwelveLead(x, 100.0, age, sex, rhythm, ids, pids)
