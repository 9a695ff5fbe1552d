"""The classifier's CPU per window by batch size and replay chunk: the evidence for ``ECGMON_CLASSIFIER_REPLAY_CHUNK``.

``python -m tools.bench.replay_chunk --chunks 4,8,16 --batches 1,2,4,8,16,32,64 --rounds 5 [--json OUT]``

The replayable path pads every batch to a multiple of the chunk (``models.mc_dropout``), so a small
chunk is cheap for the few windows a worker batches at light load and dear for the full batches of a
backlog, and a large one the other way round. Which chunk is cheapest depends on the batches a worker
sees, so this times each chunk at each batch size on the worker's own batch function
(``Inference.classify`` at the configured precision and MC passes, one torch thread) with the worker's
own inputs (synthetic patients prepared by ``Inference.prepare``). Rounds alternate the chunks, so a
neighbour's burst on a shared machine hits them alike; the figure is each cell's median.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from ecgmon.jsonout import print_and_write
from ecgmon.settings import get_settings
from streams.inference import Inference
from tools.bench.model import model_input, synthetic_windows


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]


def cpu_ms_per_window(engine: Inference, x: np.ndarray, batch: int) -> float:
    """CPU ms per window of ``engine.classify`` on batches of ``batch`` (replayable: one seed per window)."""
    reps = max(1, 32 // batch)
    t0 = time.process_time()
    for r in range(reps):
        rows = x[:batch]
        engine.classify(rows, seeds=list(range(r * batch, (r + 1) * batch)))
    return (time.process_time() - t0) * 1000.0 / (reps * batch)


def main(argv: list[str] | None = None) -> None:
    """Time every chunk at every batch size, print the table, optionally write the JSON."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--chunks", default="4,8,16", help="replay chunks to compare")
    ap.add_argument("--batches", default="1,2,4,8,12,16,24,32,64", help="batch sizes")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    chunks, batches = _ints(args.chunks), _ints(args.batches)
    torch.set_num_threads(1)
    base = get_settings().model_copy(update={"reconstruction_policy": "never", "torch_threads": 1})
    engines = {c: Inference.load(base.model_copy(update={"classifier_replay_chunk": c})) for c in chunks}
    windows = synthetic_windows(base, max(batches), patients=max(batches), prefix="chunk")
    x = model_input(engines[chunks[0]], windows)
    samples: dict[int, dict[int, list[float]]] = {c: {b: [] for b in batches} for c in chunks}
    with Progress(transient=True) as progress:
        task = progress.add_task("classifier by chunk and batch", total=args.rounds * len(batches))
        for _ in range(args.rounds):
            for b in batches:
                for c in chunks:
                    samples[c][b].append(cpu_ms_per_window(engines[c], x, b))
                progress.advance(task)
    medians = {c: {b: float(np.median(v)) for b, v in row.items()} for c, row in samples.items()}
    table = Table(title=f"classifier CPU ms per window (median of {args.rounds} rounds, 1 torch thread)")
    table.add_column("chunk \\ batch")
    for b in batches:
        table.add_column(str(b), justify="right")
    for c in chunks:
        table.add_row(str(c), *(f"{medians[c][b]:.2f}" for b in batches))
    Console().print(table)
    report = {
        "precision": base.classifier_precision,
        "mc_samples": base.mc_samples,
        "rounds": args.rounds,
        "cpu_ms_per_window": {str(c): {str(b): v for b, v in row.items()} for c, row in medians.items()},
    }
    print_and_write(report, args.json)


if __name__ == "__main__":
    main()
