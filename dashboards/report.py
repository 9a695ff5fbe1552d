"""The demo's HTML report: what the monitoring centre saw, against the simulated truth.

One self-contained HTML file (figures embedded as base64 PNG, no network needed to open it):
a summary table per patient (windows, AF windows by truth and by the classifier, alerts opened by
type next to the truth's episode types), each patient's rhythm and alerts against the truth over
time, one reconstructed 12-lead window with its ±2σ uncertainty band, each patient's full-disclosure
lead I (the packed ``ecg_strip`` decoded by ``ecgmon.full_disclosure``, a row per minute), and the
pipeline's throughput and latency. Everything is read back from InfluxDB (the same measurements
Grafana reads), so the report shows what was stored, not what the demo meant to store.
``strip_figure`` and ``write_strip_html`` also draw ``ecgmon strip``'s PNG and HTML.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
import itertools
import math
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from dashboards.definitions import CLASSES
from ecgmon.contracts import LEADS
from ecgmon.full_disclosure import Strip, read_strip, read_strips
from ecgmon.influx import InfluxClient
from ecgmon.points import ALERT, MEASURED_LEAD, PIPELINE, PREDICTION, STRIP

AF_TRUTHS = frozenset({"AF", "AFL"})
"""Simulator truths that the classifier's AF class (``A``) stands for (AF and flutter)."""
ALERT_TRUTHS = {"af": AF_TRUTHS, "brady": {"BRADY"}, "tachy": {"TACHY", "VT"}, "pause": {"PAUSE"},
                "technical": {"LEAD_OFF", "NOISE"}}  # fmt: skip
"""Which simulated truths each alert type is meant to catch."""
_LABEL_COLOURS = {"N": "#2ca02c", "A": "#d62728", "O": "#ff7f0e", "~": "#7f7f7f"}
_TRUTH_COLOURS = {"N": "#2ca02c", "AF": "#d62728", "AFL": "#e377c2", "BRADY": "#1f77b4", "TACHY": "#9467bd",
                  "PVC": "#ff7f0e", "PAUSE": "#17becf", "VT": "#8c564b", "LEAD_OFF": "#7f7f7f",
                  "NOISE": "#bcbd22"}  # fmt: skip


@dataclass
class PatientData:
    """One patient's stored predictions and alert events (times in ms)."""

    patient_id: str
    t_ms: list[int] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    truths: list[str | None] = field(default_factory=list)
    hr_bpm: list[float | None] = field(default_factory=list)
    confidence: list[float | None] = field(default_factory=list)
    uncertainty: list[float | None] = field(default_factory=list)
    alerts: list[tuple[int, str, str]] = field(default_factory=list)  # (t_ms, type, state)

    def summary(self) -> dict[str, Any]:
        """Counts for the summary table; AF agreement only where a truth exists."""
        pairs = [(lab, tru) for lab, tru in zip(self.labels, self.truths, strict=True) if tru]
        af_truth = sum(1 for _, tru in pairs if tru in AF_TRUTHS)
        af_hit = sum(1 for lab, tru in pairs if tru in AF_TRUTHS and lab == "A")
        af_false = sum(1 for lab, tru in pairs if tru not in AF_TRUTHS and lab == "A")
        opened = Counter(kind for _, kind, state in self.alerts if state == "opened")
        truth_types = sorted({t for t in self.truths if t})
        expected = sorted(k for k, truths in ALERT_TRUTHS.items() if truths & set(truth_types))
        return {
            "windows": len(self.labels),
            "af_windows_truth": af_truth,
            "af_windows_detected": af_hit,
            "af_windows_false": af_false,
            "alerts_opened": dict(sorted(opened.items())),
            "truth_types": truth_types,
            "alert_types_expected": expected,
        }


def _tf(t_from_ms: int, t_to_ms: int) -> str:
    return f"time >= {int(t_from_ms)}ms and time <= {int(t_to_ms)}ms"


def load_patients(
    client: InfluxClient, t_from_ms: int, t_to_ms: int, patients: set[str] | None = None
) -> list[PatientData]:
    """Predictions and alert events of every patient (or of ``patients``) in the range."""
    tf = _tf(t_from_ms, t_to_ms)
    out: dict[str, PatientData] = {}
    query = (
        f'SELECT "label", "truth", "hr_bpm", "confidence", "uncertainty" FROM "{PREDICTION}" '
        f'WHERE {tf} GROUP BY "patient_id"'
    )
    for s in client.query(query):
        pid = s["tags"]["patient_id"]
        if patients is not None and pid not in patients:
            continue
        p = out.setdefault(pid, PatientData(pid))
        for t, label, truth, hr, conf, unc in s["values"]:
            p.t_ms.append(int(t))
            p.labels.append(str(label))
            p.truths.append(truth)
            p.hr_bpm.append(hr)
            p.confidence.append(conf)
            p.uncertainty.append(unc)
    for s in client.query(f'SELECT "state" FROM "{ALERT}" WHERE {tf} GROUP BY "patient_id", "type"'):
        owner = out.get(s["tags"]["patient_id"])
        if owner is not None:
            owner.alerts.extend((int(t), s["tags"]["type"], str(state)) for t, state in s["values"])
    for p in out.values():
        p.alerts.sort()
    return [out[k] for k in sorted(out)]


def load_reconstruction(
    client: InfluxClient, t_from_ms: int, t_to_ms: int, patients: set[str] | None = None, window_s: float = 10.0
) -> tuple[str, dict[str, tuple[list[int], list[float], list[float]]]] | None:
    """The last reconstructed window (``window_s``) of the patient with the most: patient id, lead -> (t, mean, std).

    Read from the packed ``ecg_strip`` at the stored rates; lead I (measured) is included with zero
    uncertainty. None when nothing was reconstructed.
    """
    tf = _tf(t_from_ms, t_to_ms)
    reconstructed = f"\"lead\" <> '{MEASURED_LEAD}'"
    counts = {
        s["tags"]["patient_id"]: s["values"][0][1]
        for s in client.query(f'SELECT count("n") FROM "{STRIP}" WHERE {reconstructed} AND {tf} GROUP BY "patient_id"')
        if patients is None or s["tags"]["patient_id"] in patients
    }
    if not counts:
        return None
    pid = max(sorted(counts), key=lambda k: counts[k])
    last = client.query(
        f'SELECT last("n") FROM "{STRIP}" WHERE "patient_id" = \'{pid}\' AND {reconstructed} AND {tf}'
    )
    t_start = int(last[0]["values"][0][0])
    leads: dict[str, tuple[list[int], list[float], list[float]]] = {}
    for lead, strip in read_strips(client, pid, t_start, t_start + int(window_s * 1000) - 1).items():
        keep = np.isfinite(strip.values)
        sd = np.zeros(len(strip.values)) if strip.sd is None else np.nan_to_num(strip.sd, nan=0.0)
        leads[lead] = (
            [int(t) for t in np.rint(strip.t_ms[keep])],
            [float(v) for v in strip.values[keep]],
            [float(v) for v in sd[keep]],
        )
    return pid, leads


def load_full_disclosure(
    client: InfluxClient, patients: Sequence[str], t_from_ms: int, t_to_ms: int
) -> dict[str, Strip]:
    """patient -> lead I as stored (``ecg_strip``) over the range; patients with nothing stored are left out."""
    out = {}
    for pid in patients:
        strip = read_strip(client, pid, t_from_ms, t_to_ms)
        if not strip.empty:
            out[pid] = strip
    return out


def load_pipeline(client: InfluxClient, t_from_ms: int, t_to_ms: int) -> dict[str, dict[str, list[Any]]]:
    """worker -> column -> values of the ``pipeline`` health points in the range."""
    cols = ("windows_per_s", "latency_ms_p50", "latency_ms_p99", "batch_size_mean", "queue_depth")
    select = ", ".join(f'"{c}"' for c in cols)
    out: dict[str, dict[str, list[Any]]] = {}
    for s in client.query(f'SELECT {select} FROM "{PIPELINE}" WHERE {_tf(t_from_ms, t_to_ms)} GROUP BY "worker"'):
        columns = s["columns"]
        out[s["tags"]["worker"]] = {c: [row[i] for row in s["values"]] for i, c in enumerate(columns)}
    return out


# --- figures ---------------------------------------------------------------------------------------


def _png(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _segments(
    ax: Any, t_s: Sequence[float], values: Sequence[str | None], y: float, colours: dict[str, str], step_s: float
) -> None:
    for t, v in zip(t_s, values, strict=True):
        if v:
            ax.barh(y, step_s, left=t - step_s, height=0.8, color=colours.get(v, "#000000"), edgecolor="none")


def patient_figure(p: PatientData, t0_ms: int) -> Figure:
    """Classifier label, simulated truth and alert episodes over time (s), with heart rate below."""
    t_s = [(t - t0_ms) / 1000 for t in p.t_ms]
    step = min((b - a for a, b in itertools.pairwise(t_s) if b > a), default=10.0)
    fig, (ax, ax_hr) = plt.subplots(2, 1, figsize=(9, 2.6), sharex=True, gridspec_kw={"height_ratios": [2, 1]})
    _segments(ax, t_s, p.labels, 2, _LABEL_COLOURS, step)
    _segments(ax, t_s, p.truths, 1, _TRUTH_COLOURS, step)
    end_s = t_s[-1] if t_s else 0.0
    open_at: dict[str, float] = {}
    for t, kind, state in p.alerts:
        ts = (t - t0_ms) / 1000
        if state == "opened":
            open_at[kind] = ts
        elif state == "resolved" and kind in open_at:
            ax.barh(0, ts - open_at[kind], left=open_at[kind], height=0.8, color="#d62728", alpha=0.6)
            ax.text(open_at[kind], 0, kind, va="center", fontsize=7)
            del open_at[kind]
    for kind, start in open_at.items():
        ax.barh(0, max(end_s - start, step / 4), left=start, height=0.8, color="#d62728", alpha=0.9)
        ax.text(start, 0, f"{kind} (open)", va="center", fontsize=7)
    ax.set_yticks([0, 1, 2], ["alerts", "truth", "classifier"])
    ax.set_title(p.patient_id, fontsize=9, loc="left")
    used_truths = sorted({t for t in p.truths if t})
    handles = [plt.Rectangle((0, 0), 1, 1, color=_LABEL_COLOURS[k]) for k in CLASSES if k in set(p.labels)]
    names = [CLASSES[k][0] for k in CLASSES if k in set(p.labels)]
    handles += [plt.Rectangle((0, 0), 1, 1, color=_TRUTH_COLOURS.get(k, "#000")) for k in used_truths]
    names += [f"truth {k}" for k in used_truths]
    if handles:
        ax.legend(
            handles, names, fontsize=6, ncol=min(len(names), 8), loc="upper left", bbox_to_anchor=(0, -0.02 + 1.45)
        )
    hr = [(t, h) for t, h in zip(t_s, p.hr_bpm, strict=True) if h is not None]
    if hr:
        ax_hr.plot([t for t, _ in hr], [h for _, h in hr], ".-", color="#1f77b4", markersize=3, linewidth=1)
    ax_hr.set_ylabel("HR bpm", fontsize=7)
    ax_hr.set_xlabel("time since the simulated recording began (s)", fontsize=7)
    ax_hr.tick_params(labelsize=7)
    ax.tick_params(labelsize=7)
    return fig


def twelve_lead_figure(pid: str, leads: dict[str, tuple[list[int], list[float], list[float]]]) -> Figure:
    """Lead I as measured and the reconstructed leads with a ±2σ band (mV over s)."""
    order = [lead for lead in LEADS if lead in leads]
    fig, axes = plt.subplots(len(order), 1, figsize=(9, 1.0 * len(order) + 0.6), sharex=True)
    axes_list = list(axes) if len(order) > 1 else [axes]
    t0 = min(leads[order[0]][0])
    for ax, lead in zip(axes_list, order, strict=True):
        t, mean, std = leads[lead]
        ts = [(x - t0) / 1000 for x in t]
        ax.plot(ts, mean, color="black" if lead == "I" else "#1f4e9c", linewidth=0.8)
        if lead != "I":
            lower = [m - 2 * s for m, s in zip(mean, std, strict=True)]
            upper = [m + 2 * s for m, s in zip(mean, std, strict=True)]
            ax.fill_between(ts, lower, upper, color="#1f77b4", alpha=0.3, linewidth=0)
        ax.set_ylabel(lead, rotation=0, ha="right", fontsize=8)
        ax.tick_params(labelsize=6)
    axes_list[0].set_title(f"{pid}: lead I (measured, black) and reconstructed leads, mean ± 2σ (mV)", fontsize=9)
    axes_list[-1].set_xlabel("s", fontsize=7)
    return fig


def _clock(t_ms: float) -> str:
    return dt.datetime.fromtimestamp(t_ms / 1000, tz=dt.UTC).strftime("%H:%M:%S")


def strip_figure(strip: Strip, *, row_s: float = 60.0, max_rows: int = 30, title: str = "") -> Figure:
    """Full disclosure on paper: the strip in rows of ``row_s`` seconds, each labelled with its UTC start.

    At most ``max_rows`` rows: a longer strip shows its last ones (the title says so). Gaps stay blank.
    """
    per_row = max(1, int(round(row_s * strip.fs_hz)))
    total = max(1, math.ceil(len(strip.values) / per_row))
    first = max(0, total - max_rows)
    rows = total - first
    fig, axes = plt.subplots(rows, 1, figsize=(12, 0.75 * rows + 0.8), sharex=True, squeeze=False)
    finite = strip.values[np.isfinite(strip.values)]
    lo, hi = (float(np.percentile(finite, 0.2)), float(np.percentile(finite, 99.8))) if finite.size else (-1.0, 1.0)
    margin = max(0.2, 0.1 * (hi - lo))
    for r, ax in enumerate(axes[:, 0]):
        k0 = (first + r) * per_row
        seg = strip.values[k0 : k0 + per_row]
        ax.plot(np.arange(len(seg)) / strip.fs_hz, seg, color="black", linewidth=0.4)
        ax.set_ylim(lo - margin, hi + margin)
        ax.set_xlim(0, row_s)
        ax.set_ylabel(_clock(strip.t0_ms + k0 * 1000.0 / strip.fs_hz), rotation=0, ha="right", fontsize=6)
        ax.set_yticks([])
        ax.set_xticks(np.arange(0, row_s + 1e-9, max(1.0, row_s / 12)))
        ax.grid(True, color="#f4a6a6", linewidth=0.4)
        ax.tick_params(labelsize=6)
        for side in ("top", "right", "left"):
            ax.spines[side].set_visible(False)
    shown = f" (last {rows} of {total} rows)" if first else ""
    axes[0, 0].set_title(
        title or f"{strip.patient_id}, lead {strip.lead}, {strip.fs_hz:g} Hz, rows of {row_s:g} s (UTC){shown}",
        fontsize=9, loc="left",
    )  # fmt: skip
    axes[-1, 0].set_xlabel("s into the row", fontsize=7)
    return fig


def write_strip_html(strip: Strip, path: Path, *, row_s: float = 60.0, rows_per_page: int = 30) -> Path:
    """The whole strip as one self-contained HTML file: pages of ``rows_per_page`` rows of ``row_s`` s."""
    per_page = max(1, int(round(row_s * strip.fs_hz))) * rows_per_page
    pages = max(1, math.ceil(len(strip.values) / per_page))
    t0, t1 = strip.t0_ms, strip.t0_ms + len(strip.values) * 1000.0 / strip.fs_hz
    iso = "%Y-%m-%d %H:%M:%S"
    span = (
        f"{dt.datetime.fromtimestamp(t0 / 1000, tz=dt.UTC).strftime(iso)} to "
        f"{dt.datetime.fromtimestamp(t1 / 1000, tz=dt.UTC).strftime(iso)} UTC"
    )
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(strip.patient_id)} lead {html.escape(strip.lead)}</title>",
        "<style>body{font-family:sans-serif;margin:2em}img{max-width:100%;display:block;margin:0.5em 0}</style>",
        f"</head><body><h1>Full disclosure: {html.escape(strip.patient_id)}, lead {html.escape(strip.lead)}</h1>",
        f"<p>{span}; {strip.fs_hz:g} Hz; {strip.points} stored windows; {strip.covered_s:.0f} s with signal.</p>",
    ]
    for page in range(pages):
        k0 = page * per_page
        part = Strip(
            strip.patient_id, strip.lead, strip.fs_hz, strip.t0_ms + k0 * 1000.0 / strip.fs_hz,
            strip.values[k0 : k0 + per_page], None if strip.sd is None else strip.sd[k0 : k0 + per_page], strip.points,
        )  # fmt: skip
        fig = strip_figure(part, row_s=row_s, max_rows=rows_per_page, title=f"page {page + 1} of {pages}")
        parts.append(_img(_png(fig), f"page {page + 1}"))
    parts.append("</body></html>")
    path.write_text("\n".join(parts), encoding="utf-8")
    return path


def pipeline_figure(pipeline: dict[str, dict[str, list[Any]]], t0_ms: int) -> Figure:
    """Throughput (windows/s) and latency p50/p99 (ms) of each worker over time."""
    fig, (ax_rate, ax_lat) = plt.subplots(2, 1, figsize=(9, 4), sharex=True)
    for worker, cols in sorted(pipeline.items()):
        ts = [(t - t0_ms) / 1000 for t in cols["time"]]
        ax_rate.plot(ts, cols["windows_per_s"], ".-", label=worker, linewidth=1)
        ax_lat.plot(ts, cols["latency_ms_p50"], ".-", label=f"{worker} p50", linewidth=1)
        ax_lat.plot(ts, cols["latency_ms_p99"], ".--", label=f"{worker} p99", linewidth=1)
    ax_rate.set_ylabel("windows/s")
    ax_lat.set_ylabel("latency (ms)")
    ax_lat.set_xlabel("time since the simulated recording began (s)")
    ax_rate.legend(fontsize=7)
    ax_lat.legend(fontsize=7)
    return fig


# --- html ------------------------------------------------------------------------------------------


def _img(b64: str, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{b64}">'


def render_html(
    patients: list[PatientData],
    reconstruction: tuple[str, dict[str, tuple[list[int], list[float], list[float]]]] | None,
    pipeline: dict[str, dict[str, list[Any]]],
    *,
    t_from_ms: int,
    title: str,
    notes: list[str],
    disclosure: dict[str, Strip] | None = None,
) -> str:
    """The whole report as one HTML string."""
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title>",
        "<style>body{font-family:sans-serif;margin:2em;max-width:1000px}table{border-collapse:collapse;font-size:13px}"
        "td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}td:first-child{text-align:left}"
        "img{max-width:100%;display:block;margin:0.5em 0}.miss{color:#b00}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        "<ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in notes) + "</ul>",
        "<h2>Patients</h2><table><tr><th>patient</th><th>windows</th><th>AF windows (truth)</th>"
        "<th>AF detected</th><th>AF false</th><th>truth contains</th><th>alerts expected</th>"
        "<th>alerts opened</th></tr>",
    ]
    for p in patients:
        s = p.summary()
        opened = ", ".join(f"{k}×{v}" for k, v in s["alerts_opened"].items()) or "-"
        missing = [k for k in s["alert_types_expected"] if k not in s["alerts_opened"]]
        expected = ", ".join(
            f"<span class='miss'>{k}</span>" if k in missing else k for k in s["alert_types_expected"]
        )  # fmt: skip
        parts.append(
            f"<tr><td>{html.escape(p.patient_id)}</td><td>{s['windows']}</td><td>{s['af_windows_truth']}</td>"
            f"<td>{s['af_windows_detected']}</td><td>{s['af_windows_false']}</td>"
            f"<td>{html.escape(', '.join(s['truth_types']) or '-')}</td><td>{expected or '-'}</td>"
            f"<td>{html.escape(opened)}</td></tr>"
        )
    parts.append("</table><p>Alert types in red were expected from the truth but not opened (gating, too short an "
                 "episode, or a missed detection).</p>")  # fmt: skip
    parts.append("<h2>Rhythm and alerts against the simulated truth</h2>")
    for p in patients:
        parts.append(_img(_png(patient_figure(p, t_from_ms)), f"rhythm of {p.patient_id}"))
    parts.append("<h2>Reconstructed 12-lead with uncertainty</h2>")
    if reconstruction:
        parts.append(_img(_png(twelve_lead_figure(*reconstruction)), "reconstructed 12-lead"))
    else:
        parts.append("<p>No reconstruction was stored in this run (see ECGMON_RECONSTRUCTION_POLICY).</p>")
    parts.append("<h2>Full disclosure: lead I as stored</h2>")
    if disclosure:
        parts.append("<p>Every window of every patient is stored packed at its native rate (<code>ecg_strip</code>); "
                     "<code>ecgmon strip</code> draws any patient's range the same way.</p>")  # fmt: skip
        for pid, strip in disclosure.items():
            parts.append(_img(_png(strip_figure(strip)), f"full disclosure of {pid}"))
    else:
        parts.append("<p>No packed strip was stored in this run.</p>")
    parts.append("<h2>Pipeline throughput and latency</h2>")
    if pipeline:
        parts.append(_img(_png(pipeline_figure(pipeline, t_from_ms)), "pipeline throughput and latency"))
    else:
        parts.append("<p>No pipeline health point was stored in this run.</p>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(
    client: InfluxClient,
    out_dir: Path,
    *,
    t_from_ms: int,
    t_to_ms: int,
    patients: set[str] | None = None,
    notes: list[str] | None = None,
    window_s: float = 10.0,
) -> Path:
    """Read the run back from InfluxDB and write ``out_dir/ecgmon-report-<time>.html``; returns its path."""
    data = load_patients(client, t_from_ms, t_to_ms, patients)
    recon = load_reconstruction(client, t_from_ms, t_to_ms, patients, window_s)
    pipe = load_pipeline(client, t_from_ms, t_to_ms)
    disclosure = load_full_disclosure(client, [p.patient_id for p in data], t_from_ms, t_to_ms)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(t_to_ms / 1000))
    text = render_html(
        data, recon, pipe, t_from_ms=t_from_ms, title=f"ecgmon demo report {stamp} UTC", notes=notes or [],
        disclosure=disclosure,
    )  # fmt: skip
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"ecgmon-report-{stamp}.html"
    path.write_text(text, encoding="utf-8")
    return path
