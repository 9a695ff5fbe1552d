"""What the alert and patient pages read from InfluxDB, and the inline SVG they draw it with.

The strip is the full-disclosure lead I (``ecg_strip``, every window at its native rate, decoded
by ``ecgmon.full_disclosure``) from ``console_strip_before_s`` before the alert's time to
``console_strip_after_s`` after it, on ECG paper (0.2 s and 0.5 mV boxes), with the window that
opened the alert shaded and R peaks marked: the worker does not store beat times, so the console
finds them in the strip with the same detector the worker uses (``ecgmon.dsp.r_peaks``, at the
strip's rate). Reconstructed leads (packed in ``ecg_strip`` too) are drawn as mean with a ±2σ band
(the MC-dropout uncertainty) wherever the worker stored a reconstruction in the range. The
patient page's live ECG is the same strip and beats over the last ``console_live_s`` up to now.
SVG is built from numbers only (no user text), so it is safe to inline.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ecgmon.contracts import LEADS, check_patient_id
from ecgmon.dsp import r_peaks
from ecgmon.full_disclosure import Strip, read_strip, read_strips
from ecgmon.influx import InfluxClient
from ecgmon.points import MEASURED_LEAD, PREDICTION

MS_PER_BOX = 200
MV_PER_BOX = 0.5


@dataclass
class Trace:
    """Samples ``v`` at times ``t_ms`` (and a standard deviation ``sd`` for reconstructions)."""

    t_ms: np.ndarray
    v: np.ndarray
    sd: np.ndarray | None = None

    @classmethod
    def nothing(cls) -> Trace:
        """A trace without samples."""
        return cls(np.zeros(0, dtype=np.int64), np.zeros(0))

    @property
    def empty(self) -> bool:
        """True without samples."""
        return len(self.t_ms) == 0

    @classmethod
    def of(cls, strip: Strip) -> Trace:
        """The stored samples of a full-disclosure ``strip`` (gaps left out: the drawing breaks the line there)."""
        keep = np.isfinite(strip.values)
        t_ms = np.rint(strip.t_ms[keep]).astype(np.int64)
        sd = None if strip.sd is None else np.nan_to_num(strip.sd[keep], nan=0.0)
        return cls(t_ms, strip.values[keep], sd)


def _where(patient_id: str, t0_ms: int, t1_ms: int) -> str:
    check_patient_id(patient_id)
    return f"\"patient_id\" = '{patient_id}' AND time >= {int(t0_ms)}ms AND time <= {int(t1_ms)}ms"


def lead_i(client: InfluxClient, patient_id: str, t0_ms: int, t1_ms: int) -> Trace:
    """Lead I of ``patient_id`` in ``[t0_ms, t1_ms]`` at its native rate (full disclosure)."""
    return Trace.of(read_strip(client, patient_id, t0_ms, t1_ms))


def reconstruction(client: InfluxClient, patient_id: str, t0_ms: int, t1_ms: int) -> dict[str, Trace]:
    """Reconstructed leads (mean and SD) of ``patient_id`` in the range, by lead name."""
    strips = read_strips(client, patient_id, t0_ms, t1_ms, leads=[x for x in LEADS if x != MEASURED_LEAD])
    return {lead: Trace.of(strip) for lead, strip in strips.items()}


def predictions(client: InfluxClient, patient_id: str, t0_ms: int, t1_ms: int) -> list[dict[str, Any]]:
    """The per-window predictions in the range, oldest first, as dicts of column -> value."""
    series = client.query(f'SELECT * FROM "{PREDICTION}" WHERE {_where(patient_id, t0_ms, t1_ms)}')
    if not series:
        return []
    columns = series[0]["columns"]
    return [dict(zip(columns, row, strict=True)) for row in series[0]["values"]]


def last_prediction_ms(client: InfluxClient, patient_id: str) -> int | None:
    """Time of the patient's newest prediction, or None."""
    check_patient_id(patient_id)
    series = client.query(f'SELECT last("confidence") FROM "{PREDICTION}" WHERE "patient_id" = \'{patient_id}\'')
    return int(series[0]["values"][0][0]) if series and series[0].get("values") else None


def beats_ms(trace: Trace) -> np.ndarray:
    """R-peak times (ms) found in ``trace`` at its own rate; empty when it is too short or flat."""
    if len(trace.t_ms) < 50:
        return np.zeros(0, dtype=np.int64)
    fs_hz = 1000.0 / float(np.median(np.diff(trace.t_ms)))
    return trace.t_ms[r_peaks(trace.v, fs_hz, clean=True)]


def svg_strip(
    trace: Trace,
    *,
    t0_ms: int,
    t1_ms: int,
    onset_ms: int | None = None,
    window_ms: int = 0,
    beats: np.ndarray | None = None,
    px_per_s: float = 40.0,
    mv_span: tuple[float, float] = (-1.5, 2.0),
    label: str = "",
    fit: bool = True,
) -> str:
    """``trace`` on ECG paper as an SVG string: grid, trace, ±2σ band, shaded opening window, beats.

    With ``fit`` the amplitude range grows to hold the whole trace; without, it stays ``mv_span``
    and what leaves it is clipped at the edge.
    """
    lo, hi = mv_span
    if fit and not trace.empty:
        finite = trace.v[np.isfinite(trace.v)]
        if finite.size:
            lo, hi = min(lo, float(finite.min()) - 0.2), max(hi, float(finite.max()) + 0.2)
    px_per_mv = 40.0
    width = max(1.0, (t1_ms - t0_ms) / 1000.0 * px_per_s)
    height = (hi - lo) * px_per_mv

    def x(t: float) -> float:
        return (t - t0_ms) / 1000.0 * px_per_s

    def y(v: float) -> float:
        return (hi - min(max(v, lo), hi)) * px_per_mv

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="strip" viewBox="0 0 {width:.0f} {height:.0f}" '
        f'width="{width:.0f}" height="{height:.0f}" role="img">'
    ]
    if onset_ms is not None and window_ms:
        parts.append(
            f'<rect class="onset-window" x="{x(onset_ms - window_ms):.1f}" y="0" '
            f'width="{window_ms / 1000.0 * px_per_s:.1f}" height="{height:.0f}"/>'
        )
    for t in range(t0_ms - t0_ms % MS_PER_BOX, t1_ms + 1, MS_PER_BOX):
        cls = "major" if (t // MS_PER_BOX) % 5 == 0 else "minor"
        parts.append(f'<line class="{cls}" x1="{x(t):.1f}" y1="0" x2="{x(t):.1f}" y2="{height:.0f}"/>')
    v = np.floor(lo / MV_PER_BOX) * MV_PER_BOX
    while v <= hi:
        parts.append(f'<line class="major" x1="0" y1="{y(v):.1f}" x2="{width:.0f}" y2="{y(v):.1f}"/>')
        v += MV_PER_BOX
    if not trace.empty:
        if trace.sd is not None:
            upper = " ".join(
                f"{x(t):.1f},{y(m + 2 * s):.1f}" for t, m, s in zip(trace.t_ms, trace.v, trace.sd, strict=True)
            )
            lower = " ".join(
                f"{x(t):.1f},{y(m - 2 * s):.1f}"
                for t, m, s in zip(trace.t_ms[::-1], trace.v[::-1], trace.sd[::-1], strict=True)
            )
            parts.append(f'<polygon class="band" points="{upper} {lower}"/>')
        # a gap of more than 3 samples breaks the line (windows missing in between)
        step = float(np.median(np.diff(trace.t_ms))) if len(trace.t_ms) > 1 else 1.0
        breaks = np.flatnonzero(np.diff(trace.t_ms) > 3 * step) + 1
        for seg in np.split(np.arange(len(trace.t_ms)), breaks):
            pts = " ".join(f"{x(trace.t_ms[i]):.1f},{y(trace.v[i]):.1f}" for i in seg if np.isfinite(trace.v[i]))
            parts.append(f'<polyline class="trace" points="{pts}"/>')
    for t in beats if beats is not None else []:
        parts.append(f'<path class="beat" d="M{x(t):.1f},4 l-4,-4 h8 z"/>')
    if onset_ms is not None:
        parts.append(f'<line class="onset" x1="{x(onset_ms):.1f}" y1="0" x2="{x(onset_ms):.1f}" y2="{height:.0f}"/>')
    if label:
        parts.append(f'<text x="4" y="14" class="lead-label">{_xml(label)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def svg_trend(points: list[tuple[int, float]], *, t0_ms: int, t1_ms: int, lo: float, hi: float, unit: str) -> str:
    """A small line chart of ``(t_ms, value)`` points (heart rate over hours) as SVG."""
    width, height = 800.0, 120.0
    span = max(1, t1_ms - t0_ms)

    def xy(t: int, v: float) -> str:
        return f"{(t - t0_ms) / span * width:.1f},{height - (min(max(v, lo), hi) - lo) / (hi - lo) * height:.1f}"

    pts = " ".join(xy(t, v) for t, v in points)
    dots = "".join(f'<circle class="dot" r="2" cx="{xy(t, v).split(",")[0]}" cy="{xy(t, v).split(",")[1]}"/>'
                   for t, v in points) if len(points) < 60 else ""  # fmt: skip

    def level(v: float) -> float:
        return height - (v - lo) / (hi - lo) * height

    ticks = "".join(
        f'<line class="major" x1="0" y1="{level(v):.1f}" x2="{width:.0f}" y2="{level(v):.1f}"/>'
        f'<text x="2" y="{level(v) - 2:.1f}" class="lead-label">{v:g} {_xml(unit)}</text>'
        for v in np.linspace(lo, hi, 5)[1:-1]
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="trend" viewBox="0 0 {width:.0f} {height:.0f}" '
        f'width="{width:.0f}" height="{height:.0f}">{ticks}<polyline class="trace" points="{pts}"/>{dots}</svg>'
    )


def _xml(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
