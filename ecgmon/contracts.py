"""Wire contracts: the ECG ``Window`` and its binary codec, and the JSON records ecgmon emits.

Window payload (schema version 1), all little-endian::

    offset size  field
    0      4     magic b"ECGW"
    4      1     schema version (1)
    5      1     sample encoding (0 = int16 counts / gain, 1 = float32 mV)
    6      1     lead code (index into LEADS)
    7      1     sex (0 male, 1 female, 255 unknown)
    8      4     age in years, float32 (NaN = unknown)
    12     8     seq, uint64
    20     8     t_start_ns, int64 (Unix epoch)
    28     8     fs_hz, float64
    36     4     gain, float32 (counts per mV; 0 for float32 samples)
    40     4     n_samples, uint32
    44     1     len(patient_id)   45 1 len(device_id)   46 1 len(units)   47 1 len(truth)
    48     ...   patient_id, device_id, units, truth (UTF-8), then the samples

Decoding checks every size before reading and raises ``ContractError`` naming what is wrong.
Prediction, reconstruction, alert and dead-letter records travel as JSON with a ``schema`` key.
"""

from __future__ import annotations

import math
import re
import struct
from dataclasses import dataclass, field, fields
from typing import Any, Literal

import numpy as np
import orjson

from ecgmon.errors import ContractError

SCHEMA_VERSION = 1
MAGIC = b"ECGW"
LEADS: tuple[str, ...] = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")
UNITS = "mV"
MIN_FS_HZ = 50.0
MAX_FS_HZ = 2000.0
DEFAULT_MAX_MESSAGE_BYTES = 1_048_576
DEFAULT_GAIN = 1000.0  # counts per mV: 1 µV resolution, ±32.767 mV range

_HEADER = struct.Struct("<4sBBBBfQqdfIBBBB")
HEADER_BYTES = _HEADER.size
_ENCODINGS: dict[int, tuple[str, np.dtype[Any]]] = {0: ("int16", np.dtype("<i2")), 1: ("float32", np.dtype("<f4"))}
_ENCODING_CODES = {name: code for code, (name, _) in _ENCODINGS.items()}
_SEX_UNKNOWN = 255
_ID_RE = re.compile(r"[A-Za-z0-9._-]{1,64}")
_TRUTH_MAX = 255

Encoding = Literal["int16", "float32"]


def check_patient_id(value: str, what: str = "patient_id") -> str:
    """Return ``value`` if it is safe as a Kafka key and an InfluxDB tag, else raise ``ContractError``."""
    if not isinstance(value, str) or not _ID_RE.fullmatch(value):
        raise ContractError(f"{what} {value!r:.80} is malformed: use 1-64 characters of A-Z a-z 0-9 . _ -.")
    return value


@dataclass(frozen=True, eq=False)
class Window:
    """A short single-lead ECG window from one device.

    ``samples`` are in mV at ``fs_hz``; ``t_start_ns`` is the Unix time of the first sample;
    ``seq`` counts windows per device; ``truth`` carries a simulator's ground truth (or None).
    """

    patient_id: str
    device_id: str
    seq: int
    t_start_ns: int
    fs_hz: float
    samples: np.ndarray
    lead: str = "I"
    units: str = UNITS
    age: float | None = None
    sex: int | None = None
    truth: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "samples", np.asarray(self.samples, dtype=np.float32))
        validate_window(self)

    @property
    def duration_s(self) -> float:
        """Length of the window in seconds."""
        return float(self.samples.shape[0] / self.fs_hz)

    @property
    def t_end_ns(self) -> int:
        """Unix time just after the last sample; predictions are stamped with it."""
        return self.t_start_ns + int(round(self.samples.shape[0] * 1e9 / self.fs_hz))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Window):
            return NotImplemented
        same_meta = all(
            getattr(self, name) == getattr(other, name)
            for name in ("patient_id", "device_id", "seq", "t_start_ns", "fs_hz", "lead", "units", "sex", "truth")
        )
        same_age = (self.age is None and other.age is None) or (
            self.age is not None and other.age is not None and self.age == other.age
        )
        return same_meta and same_age and np.array_equal(self.samples, other.samples)

    __hash__ = None  # type: ignore[assignment]


def validate_window(w: Window) -> None:
    """Raise ``ContractError`` for the first thing about ``w`` that breaks the contract."""
    check_patient_id(w.patient_id)
    check_patient_id(w.device_id, "device_id")
    if not isinstance(w.seq, int) or not 0 <= w.seq < 2**64:
        raise ContractError(f"seq {w.seq!r} must be an integer in [0, 2**64).")
    if not isinstance(w.t_start_ns, int) or not -(2**63) <= w.t_start_ns < 2**63:
        raise ContractError(f"t_start_ns {w.t_start_ns!r} must be a signed 64-bit integer of nanoseconds.")
    if not (isinstance(w.fs_hz, (int, float)) and math.isfinite(w.fs_hz) and MIN_FS_HZ <= w.fs_hz <= MAX_FS_HZ):
        raise ContractError(f"fs_hz {w.fs_hz!r} is outside {MIN_FS_HZ:g}-{MAX_FS_HZ:g} Hz.")
    if w.lead not in LEADS:
        raise ContractError(f"lead {w.lead!r:.20} is unknown; use one of {', '.join(LEADS)}.")
    if w.units != UNITS:
        raise ContractError(f"units {w.units!r:.20} is not supported; samples must be in {UNITS}.")
    if w.samples.ndim != 1 or w.samples.shape[0] == 0:
        raise ContractError(f"samples must be a non-empty 1-D array, got shape {w.samples.shape}.")
    if not np.all(np.isfinite(w.samples)):
        raise ContractError("samples contain NaN or infinite values.")
    if w.age is not None and not (math.isfinite(w.age) and 0 <= w.age <= 150):
        raise ContractError(f"age {w.age!r} must be between 0 and 150 years or unknown.")
    if w.sex not in (None, 0, 1):
        raise ContractError(f"sex {w.sex!r} must be 0 (male), 1 (female) or unknown.")
    if w.truth is not None and len(w.truth.encode("utf-8")) > _TRUTH_MAX:
        raise ContractError(f"truth is longer than {_TRUTH_MAX} bytes.")


def wire_encoding(samples: np.ndarray, gain: float = DEFAULT_GAIN) -> Literal["int16", "float32"]:
    """int16 counts (half the bytes) unless a sample would overflow them, then lossless float32.

    Motion bursts and wander in long synthetic runs can exceed ±32.767 mV at 1000 counts/mV; a
    window must never be lost for that, nor silently clipped.
    """
    peak = float(np.max(np.abs(samples))) if samples.size else 0.0
    return "int16" if peak * gain < 32767 else "float32"


def encode_window(
    window: Window,
    *,
    encoding: Encoding = "int16",
    gain: float = DEFAULT_GAIN,
    max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
) -> bytes:
    """Serialise ``window``; int16 counts at ``gain`` counts/mV unless ``encoding="float32"``."""
    validate_window(window)
    if encoding not in _ENCODING_CODES:
        raise ContractError(f"encoding {encoding!r} is unknown; use int16 or float32.")
    if encoding == "int16":
        if not (math.isfinite(gain) and gain > 0):
            raise ContractError(f"gain {gain!r} must be a positive number of counts per mV.")
        gain = float(np.float32(gain))
        counts = np.rint(window.samples.astype(np.float64) * gain)
        if counts.min() < -32768 or counts.max() > 32767:
            raise ContractError(
                f"samples exceed the int16 range at gain {gain:g} counts/mV; lower the gain or use float32."
            )
        body = counts.astype("<i2").tobytes()
    else:
        gain = 0.0
        body = window.samples.astype("<f4").tobytes()
    texts = [s.encode("utf-8") for s in (window.patient_id, window.device_id, window.units, window.truth or "")]
    header = _HEADER.pack(
        MAGIC,
        SCHEMA_VERSION,
        _ENCODING_CODES[encoding],
        LEADS.index(window.lead),
        _SEX_UNKNOWN if window.sex is None else window.sex,
        math.nan if window.age is None else window.age,
        window.seq,
        window.t_start_ns,
        float(window.fs_hz),
        gain,
        window.samples.shape[0],
        *(len(t) for t in texts),
    )
    data = header + b"".join(texts) + body
    if len(data) > max_bytes:
        raise ContractError(f"message of {len(data)} bytes exceeds the {max_bytes}-byte limit; send shorter windows.")
    return data


def decode_window(data: bytes, *, max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> Window:
    """Parse and validate a window payload; any defect raises ``ContractError`` with the reason."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ContractError(f"payload must be bytes, got {type(data).__name__}.")
    size = len(data)
    if size > max_bytes:
        raise ContractError(f"message of {size} bytes exceeds the {max_bytes}-byte limit; refused before decoding.")
    if size < HEADER_BYTES:
        raise ContractError(f"message of {size} bytes is shorter than the {HEADER_BYTES}-byte header.")
    (magic, version, enc, lead_code, sex, age, seq, t_start_ns, fs_hz, gain, n, *lengths) = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise ContractError(f"bad magic {bytes(magic)!r}: not an ecgmon window.")
    if version != SCHEMA_VERSION:
        raise ContractError(f"schema version {version} is not supported; this build reads version {SCHEMA_VERSION}.")
    if enc not in _ENCODINGS:
        raise ContractError(f"sample encoding {enc} is unknown.")
    if lead_code >= len(LEADS):
        raise ContractError(f"lead code {lead_code} is unknown.")
    if sex not in (0, 1, _SEX_UNKNOWN):
        raise ContractError(f"sex code {sex} is unknown.")
    _, dtype = _ENCODINGS[enc]
    text_bytes = sum(lengths)
    expected = HEADER_BYTES + text_bytes + n * dtype.itemsize
    if size != expected:
        raise ContractError(f"message is {size} bytes but its header announces {expected} ({n} samples).")
    texts = []
    offset = HEADER_BYTES
    for length in lengths:
        try:
            texts.append(bytes(data[offset : offset + length]).decode("utf-8"))
        except UnicodeDecodeError:
            raise ContractError("a text field is not valid UTF-8.") from None
        offset += length
    raw = np.frombuffer(data, dtype=dtype, count=n, offset=offset)
    if enc == 0:
        if not (math.isfinite(gain) and gain > 0):
            raise ContractError(f"gain {gain!r} must be positive for int16 samples.")
        samples = raw.astype(np.float32) / np.float32(gain)
    else:
        samples = raw.astype(np.float32)
    patient_id, device_id, units, truth = texts
    return Window(
        patient_id=patient_id,
        device_id=device_id,
        seq=seq,
        t_start_ns=t_start_ns,
        fs_hz=fs_hz,
        samples=samples,
        lead=LEADS[lead_code],
        units=units,
        age=None if math.isnan(age) else float(age),
        sex=None if sex == _SEX_UNKNOWN else int(sex),
        truth=truth or None,
    )


# --- JSON records -----------------------------------------------------------------------------


def _dumps(record: Any) -> bytes:
    # A shallow field dict, not ``asdict``: ``asdict`` deep-copies every list first, which was 10 % of the
    # inference thread for reconstruction records (22 lists of samples each) in the worker's profile.
    # orjson, not json: a reconstruction record (11,000 floats) took 2.0 ms with json, 0.3 ms with orjson,
    # all of it holding the GIL the event loop needs. Non-finite floats become null (json wrote NaN,
    # which is not JSON at all).
    body = {f.name: getattr(record, f.name) for f in fields(record)}
    return orjson.dumps({"schema": SCHEMA_VERSION, **body})


def _loads(data: bytes, kind: str) -> dict[str, Any]:
    try:
        obj = orjson.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ContractError(f"{kind} record is not valid JSON: {exc}.") from None
    if not isinstance(obj, dict) or obj.get("schema") != SCHEMA_VERSION:
        raise ContractError(f"{kind} record has no supported schema version.")
    obj.pop("schema")
    return obj


@dataclass(frozen=True)
class Prediction:
    """The classifier's verdict on one window (topic ``ecg.predictions``)."""

    patient_id: str
    seq: int
    t_end_ns: int
    label: str
    confidence: float
    uncertainty: float
    probs: dict[str, float]
    hr_bpm: float | None
    sqi: float
    model: str
    rr_irregularity: float | None = None
    truth: str | None = None
    p_wave_coherence: float | None = None

    def to_bytes(self) -> bytes:
        """JSON with the schema version."""
        return _dumps(self)

    @classmethod
    def from_bytes(cls, data: bytes) -> Prediction:
        """Parse a record written by ``to_bytes``."""
        try:
            return cls(**_loads(data, "prediction"))
        except TypeError as exc:
            raise ContractError(f"prediction record has wrong fields: {exc}.") from None


@dataclass(frozen=True)
class Reconstruction:
    """Eleven reconstructed leads at display rate with their per-sample uncertainty."""

    patient_id: str
    seq: int
    t_start_ns: int
    fs_hz: float
    leads: dict[str, list[float]]
    uncertainty: dict[str, list[float]]
    model: str

    def to_bytes(self) -> bytes:
        """JSON with the schema version."""
        return _dumps(self)

    @classmethod
    def from_bytes(cls, data: bytes) -> Reconstruction:
        """Parse a record written by ``to_bytes``."""
        try:
            return cls(**_loads(data, "reconstruction"))
        except TypeError as exc:
            raise ContractError(f"reconstruction record has wrong fields: {exc}.") from None


AlertState = Literal["opened", "updated", "resolved"]


@dataclass(frozen=True)
class Alert:
    """An alert event (topic ``ecg.alerts``): opened once, updated, resolved once."""

    patient_id: str
    type: str
    state: AlertState
    severity: str
    confidence: float
    message: str
    t_ns: int
    alert_id: str = ""
    seq: int = 0

    def to_bytes(self) -> bytes:
        """JSON with the schema version."""
        return _dumps(self)

    @classmethod
    def from_bytes(cls, data: bytes) -> Alert:
        """Parse a record written by ``to_bytes``."""
        try:
            return cls(**_loads(data, "alert"))
        except TypeError as exc:
            raise ContractError(f"alert record has wrong fields: {exc}.") from None


@dataclass(frozen=True)
class DeadLetter:
    """Why a message was refused, with its origin and original bytes (hex) for replay."""

    reason: str
    topic: str
    partition: int
    offset: int
    key: str | None
    value_hex: str
    t_ns: int
    extra: dict[str, Any] = field(default_factory=dict)

    def to_bytes(self) -> bytes:
        """JSON with the schema version."""
        return _dumps(self)

    @classmethod
    def from_bytes(cls, data: bytes) -> DeadLetter:
        """Parse a record written by ``to_bytes``."""
        try:
            return cls(**_loads(data, "dead-letter"))
        except TypeError as exc:
            raise ContractError(f"dead-letter record has wrong fields: {exc}.") from None


ACTION_KINDS: tuple[str, ...] = ("acknowledge", "confirm", "reject", "annotate", "escalate", "criteria")
"""What a console user can do: to an alert (the first five) or to a patient's notification criteria."""


@dataclass(frozen=True)
class AlertAction:
    """A user's action on an alert or a patient (topic ``ecg.actions``, keyed by patient; ``tools.console``).

    ``action_id`` is unique, so replaying the topic applies each action once. ``text`` is the
    reason of a rejection or the note of an annotation or escalation; ``recipient`` and
    ``delivered`` say whom an escalation went to and whether the webhook took it; ``detail``
    holds the criteria of a ``criteria`` action and the webhook's answer of an escalation.
    """

    action_id: str
    kind: str
    patient_id: str
    user: str
    role: str
    t_ns: int
    alert_id: str = ""
    alert_type: str = ""
    text: str = ""
    recipient: str = ""
    delivered: bool | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    def to_bytes(self) -> bytes:
        """JSON with the schema version."""
        return _dumps(self)

    @classmethod
    def from_bytes(cls, data: bytes) -> AlertAction:
        """Parse a record written by ``to_bytes``; an unknown kind or patient id is a ``ContractError``."""
        try:
            action = cls(**_loads(data, "action"))
        except TypeError as exc:
            raise ContractError(f"action record has wrong fields: {exc}.") from None
        if action.kind not in ACTION_KINDS:
            raise ContractError(f"action kind {action.kind!r} is not one of {', '.join(ACTION_KINDS)}.")
        check_patient_id(action.patient_id)
        return action
