"""Readers for 12-lead WFDB folders (LUDB, CinC 2021, CPSC 2018) into ``TwelveLead`` in mV.

Each record's rate comes from its own header. Records are resampled (``scipy.signal.resample_poly``)
to one rate, by default the most common header rate in the folder, then cut to one length so they
stack: the first ``window_s`` seconds (default: the most common record duration, capped at 10 s);
shorter records are zero-padded at the end. Leads are matched by name, case-insensitively.
"""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import numpy as np

from ecgmon.dsp import resample
from ecgmon.errors import DataError
from models.datasets.ptbxl import LEADS, TwelveLead

_DEFAULT_MAX_WINDOW_S = 10.0


def _records(path: Path) -> list[str]:
    if not path.is_dir():
        raise DataError(f"Dataset folder {path} does not exist; pass the folder that holds the .hea files.")
    names = sorted(p.stem for p in path.glob("*.hea"))
    if not names:
        raise DataError(f"No WFDB headers (*.hea) in {path}; pass a folder of 12-lead WFDB records.")
    return names


def _read(path: Path, name: str) -> tuple[np.ndarray, float]:
    """One record as ``[12, samples]`` mV in ``LEADS`` order and its rate in Hz."""
    import wfdb

    try:
        rec = wfdb.rdrecord(str(path / name))
    except (OSError, ValueError, IndexError, KeyError) as exc:  # what wfdb raises for a bad file
        raise DataError(f"Cannot read WFDB record {path / name}: {exc}.") from None
    by_name = {str(n).lower(): i for i, n in enumerate(rec.sig_name)}
    try:
        order = [by_name[lead.lower()] for lead in LEADS]
    except KeyError as exc:
        raise DataError(
            f"Record {path / name} lacks lead {exc.args[0]}; a 12-lead record is needed."
        ) from None
    sig = np.nan_to_num(np.asarray(rec.p_signal, dtype=np.float64)[:, order].T)
    units = {str(u).lower() for u in rec.units}
    if units <= {"uv", "µv"}:
        sig = sig / 1000.0
    return sig, float(rec.fs)


def _stack(
    path: Path, names: list[str], fs_hz: float | None, window_s: float | None
) -> tuple[np.ndarray, float]:
    raw = [_read(path, n) for n in names]
    fs = fs_hz or Counter(f for _, f in raw).most_common(1)[0][0]
    out = []
    for sig, f in raw:
        out.append(resample(sig, f, fs))
    if window_s is None:
        common = Counter(s.shape[1] for s in out).most_common(1)[0][0]
        window_s = min(common / fs, _DEFAULT_MAX_WINDOW_S)
    samples = round(window_s * fs)
    x = np.zeros((len(out), 12, samples), dtype=np.float32)
    for i, sig in enumerate(out):
        k = min(samples, sig.shape[1])
        x[i, :, :k] = sig[:, :k]
    return x, float(fs)


def _sex(text: str) -> float:
    t = text.strip().lower()
    return 0.0 if t in {"m", "male", "0"} else 1.0 if t in {"f", "female", "1"} else float("nan")


def _age(text: str) -> float:
    try:
        return float(text.strip().lstrip(">"))
    except ValueError:
        return float("nan")


def _need_file(path: Path) -> Path:
    if not path.is_file():
        raise DataError(
            f"Missing file {path}; the folder must be laid out like ../shared/data (see its README)."
        )
    return path


def load_ludb(path: Path, *, fs_hz: float | None = None, window_s: float | None = None) -> TwelveLead:
    """LUDB-style folder: ``ID.hea/.dat`` + ``ludb.csv`` (``ID, Sex, Age, Rhythms``; multi-line fields)."""
    path = Path(path)
    names = _records(path)
    with _need_file(path / "ludb.csv").open(newline="") as f:
        meta = {r["ID"].strip(): r for r in csv.DictReader(f)}
    x, fs = _stack(path, names, fs_hz, window_s)
    rows = [meta.get(n, {}) for n in names]
    age = np.array([_age(r.get("Age", "")) for r in rows])
    sex = np.array([_sex(r.get("Sex", "")) for r in rows])
    rhythm = [
        r.get("Rhythms", "").strip().splitlines()[0] if r.get("Rhythms", "").strip() else "" for r in rows
    ]
    return TwelveLead(x, fs, age, sex, rhythm, names, list(names))


def load_cinc2021(path: Path, *, fs_hz: float | None = None, window_s: float | None = None) -> TwelveLead:
    """CinC 2021-style folder: ``NAME.hea/.mat`` + ``labels.csv`` (``record, age, sex, rhythm_nao``)."""
    path = Path(path)
    names = _records(path)
    with _need_file(path / "labels.csv").open(newline="") as f:
        meta = {r["record"].strip(): r for r in csv.DictReader(f)}
    x, fs = _stack(path, names, fs_hz, window_s)
    rows = [meta.get(n, {}) for n in names]
    age = np.array([_age(r.get("age", "")) for r in rows])
    sex = np.array([_sex(r.get("sex", "")) for r in rows])
    rhythm = [r.get("rhythm_nao", "") for r in rows]
    return TwelveLead(x, fs, age, sex, rhythm, names, list(names))


def _header_meta(path: Path, name: str) -> tuple[float, float]:
    age, sex = float("nan"), float("nan")
    for line in (path / f"{name}.hea").read_text(errors="replace").splitlines():
        if line.startswith("#Age:"):
            age = _age(line.split(":", 1)[1])
        elif line.startswith("#Sex:"):
            sex = _sex(line.split(":", 1)[1])
    return age, sex


def load_cpsc2018(path: Path, *, fs_hz: float | None = None, window_s: float | None = None) -> TwelveLead:
    """CPSC 2018-style folder: ``NAME.hea/.mat`` + ``REFERENCE.csv``; First_label 1 -> N, 2 -> A, else O.

    Age and sex come from the headers' ``#Age``/``#Sex`` comments.
    """
    path = Path(path)
    names = _records(path)
    with _need_file(path / "REFERENCE.csv").open(newline="") as f:
        ref = {r["Recording"].strip(): r.get("First_label", "").strip() for r in csv.DictReader(f)}
    x, fs = _stack(path, names, fs_hz, window_s)
    am = [_header_meta(path, n) for n in names]
    rhythm = [{"1": "N", "2": "A"}.get(ref.get(n, ""), "O") for n in names]
    return TwelveLead(
        x, fs, np.array([a for a, _ in am]), np.array([s for _, s in am]), rhythm, names, list(names)
    )
