"""Full disclosure: any patient's stored ECG over any time range, as one continuous strip.

Every window the worker processes is stored packed, one ``ecg_strip`` point per lead
(``ecgmon.points``, ``ecgmon.waveform_codec``). ``read_strips`` reads a patient's points in a
range from InfluxDB (an hour per query, so no answer grows past a few MB) and ``assemble`` lays
them on one sample grid: the grid starts on the first point's own samples, so windows sent back to
back land sample for sample, each sample keeps its stored value exactly, gaps (no window) are NaN
and, where two points overlap, the later one wins. A point at another rate than the strip's is
resampled to it. The command line (``ecgmon strip``), the HTML report and the console's
``/api/strip`` all read through here.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ecgmon.contracts import LEADS, check_patient_id
from ecgmon.dsp import resample
from ecgmon.errors import ContractError
from ecgmon.influx import InfluxClient
from ecgmon.points import MEASURED_LEAD, STRIP, STRIP_MAX_S
from ecgmon.waveform_codec import waveform_decode

QUERY_SPAN_MS = 3_600_000
"""One query per hour of the range."""
_RELATIVE = re.compile(r"-(\d+(?:\.\d+)?)([smhd])")
_UNIT_MS = {"s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


def parse_time_ms(text: str, *, now_ms: int) -> int:
    """A time given as Unix milliseconds, ISO 8601 (UTC unless it says otherwise), ``now`` or ``-24h``.

    Relative times (``-90s``, ``-30m``, ``-24h``, ``-7d``) count back from ``now_ms``; a bad time
    raises ``ValueError`` saying which forms work.
    """
    value = text.strip()
    if value == "now":
        return int(now_ms)
    if re.fullmatch(r"\d{1,15}", value):
        return int(value)
    relative = _RELATIVE.fullmatch(value)
    if relative:
        return int(now_ms - float(relative.group(1)) * _UNIT_MS[relative.group(2)])
    try:
        when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"time {text!r:.40} is not understood; give Unix ms, ISO 8601 (2026-11-24T10:00:00Z), now or -24h."
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return int(when.timestamp() * 1000)


@dataclass(frozen=True)
class StripPoint:
    """One stored ``ecg_strip`` point, decoded: ``values`` (and ``sd``) in mV at ``fs_hz`` from ``t_ms``."""

    t_ms: int
    fs_hz: float
    values: np.ndarray
    sd: np.ndarray | None = None

    @property
    def t_end_ms(self) -> float:
        """Time just after its last sample (ms)."""
        return self.t_ms + len(self.values) * 1000.0 / self.fs_hz


@dataclass(frozen=True)
class Strip:
    """One lead of one patient over a range: ``values`` (mV, NaN where nothing is stored) at ``fs_hz``.

    Sample ``k`` is at ``t0_ms + k * 1000 / fs_hz``; ``sd`` is the reconstruction's standard deviation
    (None for the measured lead); ``points`` is how many stored points it was built from.
    """

    patient_id: str
    lead: str
    fs_hz: float
    t0_ms: float
    values: np.ndarray
    sd: np.ndarray | None
    points: int

    @property
    def t_ms(self) -> np.ndarray:
        """The time of every sample (ms, float)."""
        return self.t0_ms + np.arange(len(self.values)) * (1000.0 / self.fs_hz)

    @property
    def empty(self) -> bool:
        """True when nothing is stored in the range."""
        return self.points == 0

    @property
    def covered_s(self) -> float:
        """Seconds of the range that hold a sample."""
        return float(np.count_nonzero(np.isfinite(self.values)) / self.fs_hz) if self.fs_hz else 0.0


def decode_point(row: dict[str, object]) -> StripPoint:
    """One ``ecg_strip`` row (``time``, ``fs_hz``, ``n``, ``scale``, ``data`` [, ``sd_scale``, ``sd``]) decoded.

    Raises ``ContractError`` when a field is missing or malformed.
    """
    try:
        t_ms, fs_hz, n, scale, data = (row[k] for k in ("time", "fs_hz", "n", "scale", "data"))
    except KeyError as exc:
        raise ContractError(f"ecg_strip point without {exc.args[0]!r}.") from None
    if not isinstance(fs_hz, float | int) or not (math.isfinite(fs_hz) and fs_hz > 0):
        raise ContractError(f"ecg_strip point with fs_hz {fs_hz!r}; it must be a positive rate in Hz.")
    if not isinstance(t_ms, int | float) or not isinstance(n, int | float) or not isinstance(scale, int | float):
        raise ContractError("ecg_strip point with a non-numeric time, n or scale.")
    values = waveform_decode(str(data), n=int(n), scale=float(scale))
    sd = None
    if row.get("sd") is not None:
        sd_scale = row.get("sd_scale")
        if not isinstance(sd_scale, int | float):
            raise ContractError("ecg_strip point with sd but no numeric sd_scale.")
        sd = waveform_decode(str(row["sd"]), n=int(n), scale=float(sd_scale))
    return StripPoint(int(t_ms), float(fs_hz), values, sd)


def assemble(
    patient_id: str,
    lead: str,
    points: Sequence[StripPoint],
    t0_ms: int,
    t1_ms: int,
    *,
    fs_hz: float | None = None,
) -> Strip:
    """``points`` laid on one grid over ``[t0_ms, t1_ms]`` at ``fs_hz`` (default: the rate most points have).

    The grid is aligned with the first point's samples; samples with no point are NaN.
    """
    if t1_ms < t0_ms:
        raise ValueError(f"the range ends ({t1_ms} ms) before it starts ({t0_ms} ms).")
    pts = sorted(points, key=lambda p: p.t_ms)
    if not pts:
        rate = fs_hz or 1.0
        n = int(math.floor((t1_ms - t0_ms) * rate / 1000.0)) + 1 if fs_hz else 0
        return Strip(patient_id, lead, rate, float(t0_ms), np.full(n, np.nan), None, 0)
    rate = float(fs_hz) if fs_hz else Counter(p.fs_hz for p in pts).most_common(1)[0][0]
    if not (math.isfinite(rate) and rate > 0):
        raise ValueError(f"fs_hz {fs_hz!r} must be a positive rate in Hz.")
    period_ms = 1000.0 / rate
    origin = pts[0].t_ms + math.ceil((t0_ms - pts[0].t_ms) / period_ms - 1e-9) * period_ms
    n = max(0, int(math.floor((t1_ms - origin) / period_ms + 1e-9)) + 1)
    values = np.full(n, np.nan)
    has_sd = any(p.sd is not None for p in pts)
    sd = np.full(n, np.nan) if has_sd else None
    for p in pts:
        v, s = p.values, p.sd
        if p.fs_hz != rate:
            v = resample(v, p.fs_hz, rate)
            s = None if s is None else np.maximum(resample(s, p.fs_hz, rate), 0.0)
        start = int(round((p.t_ms - origin) / period_ms))
        lo, hi = max(0, start), min(n, start + len(v))
        if lo >= hi:
            continue
        values[lo:hi] = v[lo - start : hi - start]
        if sd is not None and s is not None:
            sd[lo:hi] = s[lo - start : hi - start]
    return Strip(patient_id, lead, rate, float(origin), values, sd, len(pts))


def _where(patient_id: str, t0_ms: int, t1_ms: int, leads: Sequence[str] | None) -> str:
    check_patient_id(patient_id)
    where = f"\"patient_id\" = '{patient_id}' AND time >= {int(t0_ms)}ms AND time <= {int(t1_ms)}ms"
    if leads is not None:
        unknown = [lead for lead in leads if lead not in LEADS]
        if unknown:
            raise ContractError(f"lead {unknown[0]!r:.20} is unknown; use one of {', '.join(LEADS)}.")
        where += " AND (" + " OR ".join(f"\"lead\" = '{lead}'" for lead in leads) + ")"
    return where


def read_points(
    client: InfluxClient, patient_id: str, t0_ms: int, t1_ms: int, *, leads: Sequence[str] | None = None
) -> dict[str, list[StripPoint]]:
    """lead -> the decoded ``ecg_strip`` points of ``patient_id`` that may hold samples in ``[t0_ms, t1_ms]``.

    Looks ``STRIP_MAX_S`` before ``t0_ms`` for a point that began earlier; ``leads`` None reads every lead.
    """
    out: dict[str, list[StripPoint]] = {}
    start = int(t0_ms) - int(STRIP_MAX_S * 1000)
    while start <= t1_ms:
        stop = min(int(t1_ms), start + QUERY_SPAN_MS - 1)
        query = (
            f'SELECT "fs_hz", "n", "scale", "data", "sd_scale", "sd" FROM "{STRIP}" '
            f'WHERE {_where(patient_id, start, stop, leads)} GROUP BY "lead"'
        )
        for series in client.query(query):
            columns = series["columns"]
            lead = series.get("tags", {}).get("lead", "")
            for row in series["values"]:
                point = decode_point(dict(zip(columns, row, strict=True)))
                if point.t_end_ms > t0_ms:
                    out.setdefault(lead, []).append(point)
        start = stop + 1
    return out


def read_strips(
    client: InfluxClient,
    patient_id: str,
    t0_ms: int,
    t1_ms: int,
    *,
    leads: Sequence[str] | None = None,
    fs_hz: float | None = None,
) -> dict[str, Strip]:
    """lead -> the patient's strip over ``[t0_ms, t1_ms]``, for every stored lead (or ``leads``)."""
    found = read_points(client, patient_id, t0_ms, t1_ms, leads=leads)
    return {lead: assemble(patient_id, lead, pts, t0_ms, t1_ms, fs_hz=fs_hz) for lead, pts in found.items()}


def read_strip(
    client: InfluxClient,
    patient_id: str,
    t0_ms: int,
    t1_ms: int,
    *,
    lead: str = MEASURED_LEAD,
    fs_hz: float | None = None,
) -> Strip:
    """One lead of ``patient_id`` over ``[t0_ms, t1_ms]`` (the measured lead I unless ``lead``); empty if none."""
    found = read_points(client, patient_id, t0_ms, t1_ms, leads=[lead])
    return assemble(patient_id, lead, found.get(lead, []), t0_ms, t1_ms, fs_hz=fs_hz)
