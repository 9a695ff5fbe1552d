"""``ecgmon data ptbxl-full``: build the local PTB-XL pool cache (one time, resumable).

Thin: options in, ``models.datasets.ptbxl_full`` does the work (imported inside the command so that
``ecgmon`` stays free of models at import time).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"


def ptbxl_full(
    source: Annotated[
        Path, typer.Option("--source", help="Folder holding PTB-XL's *_lr WFDB records (searched recursively).")
    ],
    cache: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(
            "--cache", help="Cache folder; default ECGMON_CACHE_DIR/ptbxl_full (~/.cache/ecgmon/ptbxl_full)."
        ),
    ] = None,
    shared_data: Annotated[
        Path,
        typer.Option("--shared-data", help="Folder with ptbxl_heldout_ids.txt, ptbxl_z/ and ptbxl100/ (exclusions)."),
    ] = _DATA,
    chunk_records: Annotated[int, typer.Option(help="Records per resumable chunk.")] = 1000,
) -> None:
    """Read every PTB-XL record except the held-out and validation ids into an int16 µV array cache."""
    from models.datasets.ptbxl_full import CHUNK_RECORDS, build_cache, default_cache_dir, read_exclusions

    exclusions = read_exclusions(shared_data)
    target = cache or default_cache_dir()
    console = Console(stderr=True)
    with Progress(
        TextColumn("ptbxl-full"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
    ) as bar:
        task = bar.add_task("build", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        summary = build_cache(
            source, target, exclusions, chunk_records=chunk_records or CHUNK_RECORDS, progress=progress
        )
    print(
        json.dumps(
            {
                "cache": str(summary.cache),
                "kept": summary.kept,
                "excluded": summary.excluded,
                "with_metadata": summary.with_metadata,
                "chunks_read": summary.chunks_read,
                "chunks_reused": summary.chunks_reused,
            }
        )
    )
