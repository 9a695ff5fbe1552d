"""The InfluxDB measurement schema the dashboards and checks read (stable: add fields, never rename).

* ``prediction``: tag ``patient_id``; fields ``label`` (string), ``confidence``, ``uncertainty``,
  ``p_<class>`` per class, ``hr_bpm``, ``sqi``, ``seq``, ``model`` (string), plus ``max_rr_s``,
  ``rr_irregularity``, ``lead_off`` and ``truth`` (simulator ground truth) when known; time = window end.
* ``reconstruction``: tags ``patient_id``, ``lead``; fields ``value``, ``uncertainty`` (display rate).
* ``ecg_lead_i``: tag ``patient_id``; field ``value`` (raw lead I in mV at display rate).
* ``alert``: tags ``patient_id``, ``type``; fields ``state``, ``severity``, ``confidence``, ``message``
  (plus ``alert_id`` and ``seq``).
* ``pipeline``: tag ``worker``; fields ``windows_per_s``, ``batch_size_mean``, ``queue_depth``,
  ``latency_ms_p50``, ``latency_ms_p99``, ``deadletter_total`` (plus more, see ``health``).

Times are milliseconds from the window, so a re-processed window overwrites its own points.
Waveforms are many points of one series, so their lines share a prefix escaped once with the
same rules as ``ecgmon.influx.line``. The worker hands waveforms to the sink as ``Waveform``
values (arrays, not text): formatting their ~1,000 floats per window is the sink's job, done in
its own thread (``render_body``), not in the inference thread nor on the event loop.
"""

from __future__ import annotations

import gzip
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ecgmon.contracts import Alert
from ecgmon.influx import FieldValue, escape_measurement, escape_tag, line

NS_PER_MS = 1_000_000
_DECIMALS = 5


def prediction_line(
    *,
    patient_id: str,
    t_end_ns: int,
    label: str,
    confidence: float,
    uncertainty: float,
    probs: Mapping[str, float],
    hr_bpm: float | None,
    sqi: float,
    seq: int,
    model: str,
    extra: Mapping[str, FieldValue | None] | None = None,
) -> str:
    """One ``prediction`` point stamped at the window end."""
    fields: dict[str, FieldValue | None] = {
        "label": label,
        "confidence": float(confidence),
        "uncertainty": float(uncertainty),
        **{f"p_{name}": float(p) for name, p in probs.items()},
        "hr_bpm": None if hr_bpm is None else float(hr_bpm),
        "sqi": float(sqi),
        "seq": int(seq),
        "model": model,
        **(extra or {}),
    }
    return line("prediction", {"patient_id": patient_id}, fields, t_end_ns // NS_PER_MS)


def waveform_lines(
    measurement: str,
    tags: Mapping[str, str],
    fields: Mapping[str, np.ndarray],
    *,
    fs_hz: float,
    t_start_ns: int,
) -> list[str]:
    """One point per sample of equally long ``fields`` arrays ``[k]`` at ``fs_hz`` from ``t_start_ns``.

    Non-finite samples are left out of their point (a point with no finite field is skipped).
    """
    prefix = escape_measurement(measurement) + "".join(
        f",{escape_tag(k)}={escape_tag(v)}" for k, v in sorted(tags.items()) if v != ""
    )
    names = [escape_tag(k) for k in fields]
    columns = [np.round(np.asarray(v, dtype=np.float64), _DECIMALS).tolist() for v in fields.values()]
    k = len(columns[0]) if columns else 0
    offsets_ns = np.rint(np.arange(k) * (1e9 / fs_hz)).astype(np.int64)
    t_ms = ((np.int64(t_start_ns) + offsets_ns) // NS_PER_MS).tolist()
    if all(np.isfinite(np.asarray(v, dtype=np.float64)).all() for v in fields.values()):  # the fast, common case
        rendered = [[f"{name}={x!r}" for x in col] for name, col in zip(names, columns, strict=True)]
        joined = rendered[0] if len(rendered) == 1 else [",".join(parts) for parts in zip(*rendered, strict=True)]
        return [f"{prefix} {body} {t}" for body, t in zip(joined, t_ms, strict=True)]
    out = []
    for i in range(k):
        parts = [f"{name}={col[i]!r}" for name, col in zip(names, columns, strict=True) if math.isfinite(col[i])]
        if parts:
            out.append(f"{prefix} {','.join(parts)} {t_ms[i]}")
    return out


@dataclass(frozen=True)
class Waveform:
    """Equally long sample arrays of one series at ``fs_hz`` from ``t_start_ns``: lines once rendered."""

    measurement: str
    tags: Mapping[str, str]
    fields: Mapping[str, np.ndarray]
    fs_hz: float
    t_start_ns: int

    @property
    def points(self) -> int:
        """Points it renders to at most (samples with no finite field are left out)."""
        return len(next(iter(self.fields.values()))) if self.fields else 0

    def lines(self) -> list[str]:
        """Its line-protocol lines (``waveform_lines``)."""
        return waveform_lines(self.measurement, self.tags, self.fields, fs_hz=self.fs_hz, t_start_ns=self.t_start_ns)


Line = str | Waveform
"""What the sink takes: a line of line protocol, or a waveform it renders to lines itself."""


def count_points(items: Iterable[Line]) -> int:
    """Points in ``items`` (a waveform counts its samples), for the sink's bounded buffer."""
    return sum(1 if isinstance(item, str) else item.points for item in items)


def render_body(chunks: Sequence[Sequence[Line]]) -> bytes:
    """One request body: every line of ``chunks`` in order, newline-separated, gzip level 1 (~10x smaller).

    A plain function of plain values, so the sink can run it in a thread of its own.
    """
    text: list[str] = []
    for chunk in chunks:
        for item in chunk:
            if isinstance(item, str):
                text.append(item)
            else:
                text += item.lines()
    return gzip.compress("\n".join(text).encode("utf-8"), 1)


def alert_line(alert: Alert) -> str:
    """One ``alert`` point at the event's time."""
    fields: dict[str, FieldValue | None] = {
        "state": alert.state,
        "severity": alert.severity,
        "confidence": float(alert.confidence),
        "message": alert.message,
        "alert_id": alert.alert_id,
        "seq": int(alert.seq),
    }
    return line("alert", {"patient_id": alert.patient_id, "type": alert.type}, fields, alert.t_ns // NS_PER_MS)


def pipeline_line(worker: str, fields: Mapping[str, FieldValue | None], t_ns: int) -> str:
    """One ``pipeline`` health point."""
    return line("pipeline", {"worker": worker}, fields, t_ns // NS_PER_MS)
