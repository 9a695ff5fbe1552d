"""Replay of real recordings as wearables would send them: one record per patient, cut into windows.

Sources (``discover(path)``):

- a WFDB record, given as its path without extension (``../shared/data/cinc2017/A00001``);
- a directory of WFDB records (``RECORDS`` if present, else every ``*.hea``), laid out like
  ``cinc2017`` (``REFERENCE.csv``), ``ludb`` (``ludb.csv``), ``cinc2021_sample`` (``labels.csv``)
  or ``cpsc2018_sample``; these files give the record's rhythm (the window ``truth``), age and sex,
  and so do ``Age``/``Sex`` header comments;
- a directory of arrays laid out like ``ptbxl_z`` (``NAME_250hz.npy`` z-scores with
  ``NAME_scale.npy`` mean/std in mV) or ``ptbxl100`` (``NAME_100hz.npy`` int16 µV), each with
  ``NAME.csv`` (age, sex, rhythm), one record per row.

Lead I is replayed unless another lead is asked; a single-channel record (cinc2017's AliveCor
lead) counts as lead I. Samples stay in physical mV exactly as ``wfdb.rdrecord`` gives them, at
the record's own rate unless a rate is asked (then ``scipy.signal.resample_poly``). Windows
start every hop; a record shorter than one window is sent as one short window.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ecgmon.contracts import LEADS
from ecgmon.dsp import resample
from ecgmon.errors import ConfigError, DataError
from ecgmon.records import record_names
from simulators.synthetic import WindowData

_ARRAY_RE = re.compile(r"^(?P<name>.+)_(?P<fs>\d+(?:\.\d+)?)hz\.npy$")
_SAFE_RE = re.compile(r"[^A-Za-z0-9._-]")
_CINC2017_TRUTH = {"N": "N", "A": "AF", "O": "OTHER", "~": "NOISE"}
_NAO_TRUTH = {"N": "N", "A": "AF", "O": "OTHER"}
_PTBXL_TRUTH = {"SR": "N", "AF": "AF", "OTHER": "OTHER"}
_LUDB_TRUTH = (  # first line of ludb's Rhythms, by prefix; first match wins
    ("sinus bradycardia", "BRADY"),
    ("sinus tachycardia", "TACHY"),
    ("sinus", "N"),  # sinus rhythm, sinus arrhythmia
    ("irregular sinus", "N"),
    ("atrial fibrillation", "AF"),
    ("atrial flutter", "AFL"),
)


def _ludb_truth(rhythms: str) -> str:
    first = rhythms.strip().splitlines()[0].strip().lower() if rhythms.strip() else ""
    return next((label for prefix, label in _LUDB_TRUTH if first.startswith(prefix)), "OTHER")


@dataclass(frozen=True)
class Loaded:
    """A loaded lead: samples [n] in mV at ``fs_hz``, and age/sex from the record's own header."""

    samples: np.ndarray
    fs_hz: float
    age: float | None = None
    sex: int | None = None


@dataclass(frozen=True)
class ReplayItem:
    """One recording: ``load()`` returns ``Loaded``; what the dataset's label files say about it."""

    name: str
    load: Callable[[], Loaded]
    dataset: str = ""
    age: float | None = None
    sex: int | None = None
    truth: str | None = None


def canonical_lead(lead: str) -> str:
    """``i`` -> ``I``, ``avr`` -> ``aVR``; raises ``ConfigError`` for names outside the 12 leads."""
    for name in LEADS:
        if name.lower() == lead.strip().lower():
            return name
    raise ConfigError(f"lead {lead!r} is unknown; use one of {', '.join(LEADS)}.")


def safe_id(text: str) -> str:
    """``text`` made safe as a patient id (A-Z a-z 0-9 . _ -, at most 64 characters)."""
    return _SAFE_RE.sub("-", text)[-64:] or "record"


# --- metadata ----------------------------------------------------------------------------------


def _age(value: str | None) -> float | None:
    try:
        age = float(str(value).strip())
    except (TypeError, ValueError):
        return None
    return age if math.isfinite(age) and 0 <= age <= 150 else None


def _sex(value: str | None) -> int | None:
    text = str(value or "").strip().lower()
    if text in ("m", "male", "0"):
        return 0
    if text in ("f", "female", "1"):
        return 1
    return None


def _header_meta(comments: list[str]) -> tuple[float | None, int | None]:
    """Age and sex from WFDB header comments (``Age: 51``, ``<sex>: F``)."""
    age = sex = None
    for line in comments:
        m = re.match(r"\s*<?(age|sex)>?\s*:\s*(.*)$", line, flags=re.IGNORECASE)
        if m and m.group(1).lower() == "age":
            age = _age(m.group(2))
        elif m:
            sex = _sex(m.group(2))
    return age, sex


def _folder_meta(folder: Path) -> dict[str, dict[str, object]]:
    """Per-record truth/age/sex from the label files a dataset folder carries."""
    meta: dict[str, dict[str, object]] = {}
    ref = folder / "REFERENCE.csv"
    if ref.exists():
        with ref.open(newline="") as f:
            rows = list(csv.reader(f))
        if rows and rows[0] and rows[0][0] == "Recording":  # cpsc2018: 1 = normal, 2 = AF
            for row in rows[1:]:
                if len(row) > 1:
                    meta[row[0]] = {"truth": {"1": "N", "2": "AF"}.get(row[1].strip(), "OTHER")}
        else:  # cinc2017: NAME,LABEL
            for row in rows:
                if len(row) > 1 and row[1].strip() in _CINC2017_TRUTH:
                    meta[row[0]] = {"truth": _CINC2017_TRUTH[row[1].strip()]}
    ludb = folder / "ludb.csv"
    if ludb.exists():
        with ludb.open(newline="") as f:
            for rec in csv.DictReader(f):
                meta[str(rec.get("ID", "")).strip()] = {
                    "truth": _ludb_truth(rec.get("Rhythms") or ""),
                    "age": _age(rec.get("Age")),
                    "sex": _sex(rec.get("Sex")),
                }
    labels = folder / "labels.csv"
    if labels.exists():
        with labels.open(newline="") as f:
            for rec in csv.DictReader(f):
                if "rhythm_nao" in rec and "record" in rec:
                    meta[rec["record"]] = {
                        "truth": _NAO_TRUTH.get(rec["rhythm_nao"].strip()),
                        "age": _age(rec.get("age")),
                        "sex": _sex(rec.get("sex")),
                    }
    return meta


# --- discovery ---------------------------------------------------------------------------------


def discover(path: Path, *, lead: str = "I") -> list[ReplayItem]:
    """Every recording under ``path`` (record, WFDB folder or array folder), in a stable order."""
    lead = canonical_lead(lead)
    path = Path(path)
    if Path(f"{path}.hea").exists():
        return [_wfdb_item(path, lead, _folder_meta(path.parent).get(path.name, {}))]
    if not path.is_dir():
        raise DataError(f"{path} is neither a WFDB record (no {path}.hea) nor a folder; check --replay.")
    arrays = sorted(p for p in path.glob("*hz.npy") if _ARRAY_RE.match(p.name))
    if arrays:
        return [item for p in arrays for item in _array_items(p, lead)]
    names = record_names(path)
    if not names:
        raise DataError(f"{path} holds no WFDB records (*.hea) and no NAME_<fs>hz.npy arrays.")
    meta = _folder_meta(path)
    return [_wfdb_item(path / name, lead, meta.get(name, {})) for name in names]


def _wfdb_item(record: Path, lead: str, meta: dict[str, object]) -> ReplayItem:
    import wfdb

    def load() -> Loaded:
        try:
            rec = wfdb.rdrecord(str(record))
        except (OSError, ValueError) as exc:
            raise DataError(f"cannot read WFDB record {record}: {exc}.") from None
        names = [str(s) for s in rec.sig_name]
        if len(names) == 1:
            idx = 0
        else:
            lowered = [s.lower() for s in names]
            if lead.lower() not in lowered:
                raise DataError(f"record {record} has no lead {lead} (it has {', '.join(names)}); pass --lead.")
            idx = lowered.index(lead.lower())
        assert rec.p_signal is not None
        age, sex = _header_meta(list(rec.comments or []))
        return Loaded(np.asarray(rec.p_signal[:, idx], dtype=np.float64), float(rec.fs), age, sex)

    age, sex = meta.get("age"), meta.get("sex")
    truth = meta.get("truth")
    return ReplayItem(
        name=record.name,
        load=load,
        dataset=record.parent.name,
        age=age if isinstance(age, float) else None,
        sex=sex if isinstance(sex, int) else None,
        truth=truth if isinstance(truth, str) else None,
    )


def _array_items(npy: Path, lead: str) -> list[ReplayItem]:
    m = _ARRAY_RE.match(npy.name)
    assert m is not None
    name, fs_hz = m.group("name"), float(m.group("fs"))
    table = npy.with_name(f"{name}.csv")
    if not table.exists():
        raise DataError(f"{npy} has no {table.name} beside it; array folders need one CSV row per record.")
    with table.open(newline="") as f:
        rows = list(csv.DictReader(f))
    data = np.load(npy, mmap_mode="r")
    if data.ndim != 3 or data.shape[0] != len(rows) or data.shape[1] != len(LEADS):
        raise DataError(f"{npy} has shape {data.shape}; expected [{len(rows)}, 12, samples] to match {table.name}.")
    scale_path = npy.with_name(f"{name}_scale.npy")
    scale = np.load(scale_path, mmap_mode="r") if scale_path.exists() else None
    lead_idx = LEADS.index(lead)

    def loader(i: int) -> Callable[[], Loaded]:
        def load() -> Loaded:
            x = np.asarray(data[i, lead_idx], dtype=np.float64)
            if scale is not None:  # z-scores: mV = z * std + mean
                return Loaded(x * float(scale[i, lead_idx, 1]) + float(scale[i, lead_idx, 0]), fs_hz)
            return Loaded(x / 1000.0, fs_hz)  # integer microvolts

        return load

    items = []
    for i, row in enumerate(rows):
        rid = row.get("ecg_id") or str(i)
        items.append(
            ReplayItem(
                name=f"{name}-{rid}",
                load=loader(i),
                dataset=npy.parent.name,
                age=_age(row.get("age")),
                sex=_sex(row.get("sex")),
                truth=_PTBXL_TRUTH.get((row.get("rhythm") or "").strip()),
            )
        )
    return items


# --- device ------------------------------------------------------------------------------------


class ReplayDevice:
    """A wearable that plays ``item`` (looping while ``max_windows`` asks for more), window by window.

    ``fs_hz`` is the record's own rate until loaded, or ``fs_out_hz`` when given. Without
    ``max_windows`` it plays the record once. Windows must be asked in order of ``seq``.
    """

    def __init__(
        self,
        patient_id: str,
        item: ReplayItem,
        *,
        window_s: float,
        hop_s: float,
        fs_out_hz: float | None = None,
        max_windows: int | None = None,
        lead: str = "I",
    ) -> None:
        self.patient_id = patient_id
        self.device_id = safe_id(f"gw-{patient_id}")
        self.item = item
        self.lead = canonical_lead(lead)
        self.age, self.sex = item.age, item.sex
        self.fs_hz = float(fs_out_hz) if fs_out_hz else 0.0
        self._fs_out_hz = fs_out_hz
        self._window_s, self._hop_s = window_s, hop_s
        self._max_windows = max_windows
        self._signal: np.ndarray | None = None
        self._per_pass: int | None = None

    def _load(self) -> np.ndarray:
        if self._signal is None:
            loaded = self.item.load()
            x, fs_hz = loaded.samples, loaded.fs_hz
            self.age = self.item.age if self.item.age is not None else loaded.age
            self.sex = self.item.sex if self.item.sex is not None else loaded.sex
            if self._fs_out_hz:
                x = resample(x, fs_hz, self._fs_out_hz)
                fs_hz = self._fs_out_hz
            self.fs_hz = float(fs_hz)
            self._signal = x.astype(np.float32)
        return self._signal

    def windows_per_pass(self) -> int:
        """How many windows one pass over the record gives."""
        if self._per_pass is None:
            x = self._load()
            win_n, hop_n = self._sizes()
            self._per_pass = max(1, (x.size - win_n) // hop_n + 1)
        return self._per_pass

    def _sizes(self) -> tuple[int, int]:
        return round(self._window_s * self.fs_hz), round(self._hop_s * self.fs_hz)

    def window(self, seq: int) -> WindowData | None:
        """Window ``seq`` of the stream, or None once the device has sent everything."""
        per_pass = self.windows_per_pass()
        limit = self._max_windows if self._max_windows is not None else per_pass
        if seq >= limit:
            return None
        x = self._load()
        win_n, hop_n = self._sizes()
        start = (seq % per_pass) * hop_n
        samples = x[start : start + win_n]
        if seq == limit - 1:  # the last window: let the record go now
            samples, self._signal = samples.copy(), None
        return WindowData(seq=seq, t0_s=seq * hop_n / self.fs_hz, samples=samples, truth=self.item.truth)


def whole_windows(path: Path, *, fs_hz: float, window_s: float, records: int | None = None) -> Iterator[np.ndarray]:
    """Every whole, non-overlapping window (mV at ``fs_hz``) of the first ``records`` recordings under ``path``.

    For tools that need many real windows without a stream (the storage measurements): the same
    reading and resampling as a replayed patient, record after record in ``discover`` order; a
    record's short tail is left out.
    """
    n = round(window_s * fs_hz)
    for item in discover(path)[:records]:
        device = ReplayDevice(item.name, item, window_s=window_s, hop_s=window_s, fs_out_hz=fs_hz)
        for seq in range(device.windows_per_pass()):
            window = device.window(seq)
            if window is not None and window.samples.size == n:
                yield window.samples
