"""``ecgmon simulate``: synthetic, replayed or ltafdb-timed patients streamed into Kafka as wearables would."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import typer

from ecgmon.errors import ConfigError
from ecgmon.settings import get_settings


def simulate(
    replay: Path | None = typer.Option(
        None, "--replay", help="WFDB record (path without extension), folder of records, or a ptbxl_z-like folder."
    ),
    source: str | None = typer.Option(
        None, "--source", help="ltafdb: synthetic morphology on the LTAFDB's real beats."
    ),
    path: Path | None = typer.Option(None, "--path", help="Folder of --source ltafdb."),
    records: str | None = typer.Option(
        None, "--records", help="--source ltafdb: comma-separated records (default all)."
    ),
    start_h: float = typer.Option(0.0, "--start-h", help="--source ltafdb: hours into each record to start."),
    patients: int | None = typer.Option(
        None, "--patients", help="Patients (devices); default 1 synthetic, or one per record."
    ),
    duration: float | None = typer.Option(
        None, "--duration", help="Simulated seconds of signal per patient; default: record end, or until Ctrl-C."
    ),
    speed: float = typer.Option(1.0, "--speed", help="Pace: 1 = real time, 10 = ten times faster, 0 = unpaced."),
    seed: int = typer.Option(0, "--seed", help="Seed of every patient and of the gateway's jitter and faults."),
    json_out: Path | None = typer.Option(None, "--json", help="Write the run summary here."),
    lead: str = typer.Option("I", "--lead", help="Lead to replay."),
    fs: float | None = typer.Option(None, "--fs", help="Sampling rate sent, Hz; default the record's own (replay) "
                                    "or ECGMON_SIM_FS_HZ (synthetic, ltafdb)."),
    late_prob: float = typer.Option(0.0, "--late-prob", help="Probability a window arrives ECGMON_SIM_LATE_S late."),
    dup_prob: float = typer.Option(0.0, "--dup-prob", help="Probability a window is delivered twice."),
    reorder_prob: float = typer.Option(0.0, "--reorder-prob", help="Probability a window arrives after its successor."),
    start_ns: int | None = typer.Option(
        None, "--start-ns", help="Recording clock start, Unix ns; default now minus one window."
    ),
    cast: bool = typer.Option(
        False, "--cast", help="Synthetic: the first 4 patients show AF, sinus tachycardia, bradycardia and pauses."
    ),
) -> None:
    """Stream patients into the windows topic at real-time pace times --speed; prints the summary."""
    from rich.console import Console
    from rich.live import Live

    from simulators.run import SimulateOptions, parse_records
    from simulators.run import simulate as run_simulation

    if replay is not None and source is not None:
        raise ConfigError("use either --replay PATH or --source ltafdb --path DIR, not both.")
    if source is not None and source != "ltafdb":
        raise ConfigError(f"--source {source!r} is unknown; use ltafdb (or --replay PATH for recordings).")
    opts = SimulateOptions(
        source="replay" if replay is not None else ("ltafdb" if source else "synthetic"),
        path=replay if replay is not None else path,
        records=parse_records(records),
        start_h=start_h,
        patients=patients,
        duration_s=duration,
        speed=speed,
        seed=seed,
        lead=lead,
        fs_hz=fs,
        late_prob=late_prob,
        dup_prob=dup_prob,
        reorder_prob=reorder_prob,
        start_ns=start_ns,
        cast=cast,
    )
    settings = get_settings()
    console = Console(stderr=True)
    with Live(console=console, refresh_per_second=2, transient=True) as live:

        def progress(stats: Any, in_flight: int) -> None:
            live.update(
                f"{stats.windows:,} windows from {len(stats.per_patient):,}/{stats.patients:,} patients, "
                f"{stats.rate():,.0f} windows/s, {stats.acked:,} acked, {in_flight:,} in flight, "
                f"{stats.errors} errors"
            )

        t0 = time.monotonic()
        summary = asyncio.run(run_simulation(settings, opts, on_progress=progress))
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(summary, indent=1))
    head = {k: v for k, v in summary.items() if k != "per_patient"}
    head["wall_s"] = round(time.monotonic() - t0, 2)
    typer.echo(json.dumps(head))
