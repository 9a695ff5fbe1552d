"""The InfluxDB measurement schema, and every point ecgmon writes (stable: add fields, never rename).

Every InfluxDB point is formatted here: the worker's, the console's and the tests'. Dashboards,
reports and the console read the measurement names from here too.

* ``prediction``: tag ``patient_id``; fields ``label`` (string), ``confidence``, ``uncertainty``,
  ``p_<class>`` per class, ``hr_bpm``, ``sqi``, ``seq``, ``model`` (string), plus ``max_rr_s``,
  ``rr_irregularity``, ``lead_off`` and ``truth`` (simulator ground truth) when known; time = window end.
* ``ecg_strip`` (full disclosure, every window of every patient): tags ``patient_id``, ``lead``
  (``I`` = the measured lead, the others reconstructed); fields ``fs_hz`` (the window's native
  rate, or the reconstructor's), ``n`` (samples), ``scale`` (mV per count), ``data`` (the samples
  packed by ``ecgmon.waveform_codec``), and for reconstructed leads ``sd_scale`` and ``sd`` (the
  MC-dropout standard deviation, packed likewise) and ``model``; time = the first sample. A window
  longer than ``strip_chunk_samples`` is split into several points, each stamped at its first sample.
* ``ecg_lead_i`` (live waveform, only while the patient has an open alert, ``ECGMON_LIVE_WAVEFORM``):
  tag ``patient_id``; field ``value`` (raw lead I in mV at the display rate).
* ``reconstruction`` (live, same rule): tags ``patient_id``, ``lead``; fields ``value``,
  ``uncertainty`` (display rate).
* ``alert``: tags ``patient_id``, ``type``; fields ``state``, ``severity``, ``confidence``, ``message``
  (plus ``alert_id`` and ``seq``).
* ``alert_action`` (the console): tags ``patient_id``, ``action``, ``type``, ``user``; fields
  ``alert_id``, ``role``, ``text``, ``recipient``, ``delivered``, ``action_id``, ``summary``.
* ``pipeline``: tag ``worker``; fields ``windows_per_s``, ``batch_size_mean``, ``queue_depth``,
  ``latency_ms_p50``, ``latency_ms_p99``, ``deadletter_total`` (plus more, see ``streams.health``).

Times are milliseconds from the window, so a re-processed window overwrites its own points.
Live waveforms are many points of one series, so their lines share a prefix escaped once with the
same rules as ``ecgmon.influx.line``. The worker hands them to the sink as ``Waveform`` values
(arrays, not text): formatting their ~500 floats per window is the sink's job, done in its own
thread (``render_body``), not in the inference thread nor on the event loop. A packed strip is one
short line, formatted where it is built.
"""

from __future__ import annotations

import gzip
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ecgmon.contracts import Alert, AlertAction
from ecgmon.influx import FieldValue, escape_measurement, escape_tag, line
from ecgmon.waveform_codec import MAX_SAMPLES, waveform_encode

NS_PER_MS = 1_000_000
_DECIMALS = 5

PREDICTION = "prediction"
STRIP = "ecg_strip"
LIVE_LEAD_I = "ecg_lead_i"
LIVE_RECONSTRUCTION = "reconstruction"
ALERT = "alert"
ALERT_ACTION = "alert_action"
PIPELINE = "pipeline"
MEASURED_LEAD = "I"
"""The ``lead`` tag of the measured signal in ``ecg_strip`` (every other lead is reconstructed)."""
STRIP_MAX_S = 60.0
"""Longest span of one ``ecg_strip`` point: full disclosure looks this far before a range for its first window."""


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
    return line(PREDICTION, {"patient_id": patient_id}, fields, t_end_ns // NS_PER_MS)


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


def render_body(chunks: Sequence[Sequence[Line]], compress: bool = False) -> bytes:
    """One request body: every line of ``chunks`` in order, newline-separated; gzip level 1 with ``compress``.

    A plain function of plain values, so the sink can run it in a thread of its own. Gzip pays for
    float display points (~10x smaller) but hardly for packed strips (base64 of deflate, ~1.35x), which
    are most of a body now: ``Settings.influx_gzip``.
    """
    text: list[str] = []
    for chunk in chunks:
        for item in chunk:
            if isinstance(item, str):
                text.append(item)
            else:
                text += item.lines()
    body = "\n".join(text).encode("utf-8")
    return gzip.compress(body, 1) if compress else body


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
    return line(ALERT, {"patient_id": alert.patient_id, "type": alert.type}, fields, alert.t_ns // NS_PER_MS)


def pipeline_line(worker: str, fields: Mapping[str, FieldValue | None], t_ns: int) -> str:
    """One ``pipeline`` health point."""
    return line(PIPELINE, {"worker": worker}, fields, t_ns // NS_PER_MS)


def strip_chunk_samples(fs_hz: float) -> int:
    """Samples per ``ecg_strip`` point at ``fs_hz``: at most ``STRIP_MAX_S`` and the codec's ``MAX_SAMPLES``."""
    return max(1, min(MAX_SAMPLES, int(STRIP_MAX_S * fs_hz)))


def strip_lines(
    *,
    patient_id: str,
    lead: str,
    t_start_ns: int,
    fs_hz: float,
    samples: np.ndarray,
    sd: np.ndarray | None = None,
    model: str | None = None,
) -> list[str]:
    """The packed ``ecg_strip`` point(s) of one window's lead: one for a 10 s window, more past ``STRIP_MAX_S``.

    ``samples`` (and ``sd``, for a reconstructed lead) are mV at ``fs_hz``, ``[k]``, from ``t_start_ns``;
    a non-finite sample is stored as missing (a model's stray infinity must not fail the window).
    """
    x = np.asarray(samples, dtype=np.float64)
    x = np.where(np.isinf(x), np.nan, x)
    s = None if sd is None else np.asarray(sd, dtype=np.float64)
    s = None if s is None else np.where(np.isinf(s), np.nan, s)
    if s is not None and s.shape != x.shape:
        raise ValueError(f"sd has shape {s.shape}, the samples {x.shape}: they must match.")
    step = strip_chunk_samples(fs_hz)
    out = []
    for start in range(0, x.shape[0], step):
        packed = waveform_encode(x[start : start + step])
        fields: dict[str, FieldValue | None] = {
            "fs_hz": float(fs_hz),
            "n": packed.n,
            "scale": packed.scale,
            "data": packed.data,
        }
        if s is not None:
            packed_sd = waveform_encode(s[start : start + step])
            fields.update(sd_scale=packed_sd.scale, sd=packed_sd.data)
        if model:
            fields["model"] = model
        t_ns = int(t_start_ns) + int(round(start * 1e9 / fs_hz))
        out.append(line(STRIP, {"patient_id": patient_id, "lead": lead}, fields, t_ns // NS_PER_MS))
    return out


def action_line(action: AlertAction) -> str:
    """The ``alert_action`` point of a console ``action`` at the time it was taken.

    Tags ``patient_id``, ``action`` (kind), ``type`` (alert type), ``user``; fields ``alert_id``,
    ``role``, ``text``, ``recipient``, ``delivered``, ``action_id`` and ``summary`` (what Grafana's
    annotation shows).
    """
    fields: dict[str, FieldValue | None] = {
        "alert_id": action.alert_id,
        "role": action.role,
        "text": action.text,
        "recipient": action.recipient,
        "delivered": action.delivered,
        "action_id": action.action_id,
        "summary": f"{action.kind} by {action.user}" + (f": {action.text}" if action.text else ""),
    }
    tags = {"patient_id": action.patient_id, "action": action.kind, "type": action.alert_type, "user": action.user}
    return line(ALERT_ACTION, tags, fields, action.t_ns // NS_PER_MS)
