"""``ecgmon strip``: full disclosure of one patient over a time range, as CSV, PNG or HTML."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import typer

from ecgmon.errors import ConfigError
from ecgmon.full_disclosure import Strip
from ecgmon.settings import get_settings

FORMATS = (".csv", ".png", ".html")


def strip(
    patient: Annotated[str, typer.Option("--patient", help="Patient id.")],
    out: Annotated[Path, typer.Option("--out", help="Where to write: .csv, .png or .html (by its suffix).")],
    start: Annotated[
        str, typer.Option("--start", help="Unix ms, ISO 8601 (UTC unless given), now, or relative to --end: -24h.")
    ] = "-24h",
    end: Annotated[str, typer.Option("--end", help="Same forms as --start; default now.")] = "now",
    lead: Annotated[str, typer.Option("--lead", help="I (measured) or a reconstructed lead: II, V1, ...")] = "I",
    fs_hz: Annotated[
        Optional[float],  # noqa: UP045 - typer needs Optional
        typer.Option("--fs-hz", min=1.0, help="Resample to this rate; default the stored one."),
    ] = None,
    row_s: Annotated[float, typer.Option("--row-s", min=1.0, help="Seconds per row of PNG and HTML.")] = 60.0,
) -> None:
    """Read a patient's stored ECG (``ecg_strip``) over a range from InfluxDB and write it as one strip.

    CSV columns: ``t_ms`` (Unix ms), ``mv`` (and ``sd_mv`` for a reconstructed lead); gaps are empty.
    PNG: the range in at most 60 rows. HTML: pages of 30 rows of ``--row-s`` seconds.
    """
    from ecgmon.contracts import check_patient_id
    from ecgmon.full_disclosure import parse_time_ms, read_strip
    from ecgmon.influx import InfluxClient

    suffix = out.suffix.lower()
    if suffix not in FORMATS:
        raise ConfigError(f"--out {out.name!r} must end in {', '.join(FORMATS)}.")
    check_patient_id(patient)
    try:
        t1 = parse_time_ms(end, now_ms=int(time.time() * 1000))
        t0 = parse_time_ms(start, now_ms=t1)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if t1 < t0:
        raise ConfigError(f"--end ({end}) is before --start ({start}).")
    found = read_strip(InfluxClient(get_settings()), patient, t0, t1, lead=lead, fs_hz=fs_hz)
    if found.empty:
        raise ConfigError(f"Nothing is stored for {patient}, lead {lead}, in that range; check the id and the times.")
    out.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".csv":
        _write_csv(found, out)
    else:
        from dashboards.report import strip_figure, write_strip_html

        if suffix == ".html":
            write_strip_html(found, out, row_s=row_s)
        else:
            import matplotlib.pyplot as plt

            span_s = len(found.values) / found.fs_hz
            fig = strip_figure(found, row_s=max(row_s, span_s / 60), max_rows=60)
            fig.savefig(out, dpi=100, bbox_inches="tight")
            plt.close(fig)
    print(
        f"{out}: {patient} lead {found.lead}, {len(found.values)} samples at {found.fs_hz:g} Hz from "
        f"{found.points} stored windows, {found.covered_s:.0f} s with signal"
    )


def _write_csv(found: Strip, out: Path) -> None:
    t = found.t_ms
    with out.open("w", encoding="utf-8") as f:
        f.write("t_ms,mv" + (",sd_mv" if found.sd is not None else "") + "\n")
        step = 100_000
        for k in range(0, len(t), step):
            cols = [np.char.mod("%.3f", t[k : k + step]), _column(found.values[k : k + step])]
            if found.sd is not None:
                cols.append(_column(found.sd[k : k + step]))
            rows = cols[0]
            for col in cols[1:]:
                rows = np.char.add(np.char.add(rows, ","), col)
            f.write("\n".join(rows.tolist()) + "\n")


def _column(x: np.ndarray) -> np.ndarray:
    """``x`` as text with 4 decimals (0.1 µV), empty where NaN."""
    arr = np.asarray(x, dtype=np.float64)
    return np.where(np.isfinite(arr), np.char.mod("%.4f", np.nan_to_num(arr)), "")
