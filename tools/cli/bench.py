"""``ecgmon bench``: model-only vs whole-pipeline throughput, latency, CPU per window, scaling (issues 8, 13, 24).

Starts its own embedded broker and influxd on free ports (temporary state dir) unless
``--use-running``, starts ``ecgmon worker`` processes, and stops everything it started.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from ecgmon.errors import ConfigError
from ecgmon.settings import get_settings


def _numbers(text: str, what: str, cast: Any) -> list[Any]:
    try:
        values = [cast(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"{what} {text!r} is not a comma-separated list of numbers, e.g. 10,20,40.") from None
    if not values or min(values) <= 0:
        raise ConfigError(f"{what} {text!r} needs one or more positive numbers.")
    return values


def bench(
    device: Annotated[str, typer.Option(help="cpu or cuda (cuda:N).")] = "cpu",
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Write the figures here.")] = None,  # noqa: UP045
    png: Annotated[Optional[Path], typer.Option("--png", help="Latency-against-load figure.")] = None,  # noqa: UP045
    workers: Annotated[str, typer.Option(help="Worker processes, e.g. 1,2 (scaling).")] = "1",
    torch_threads: Annotated[
        Optional[int], typer.Option(help="Torch threads per worker and in process; default ECGMON_TORCH_THREADS.")  # noqa: UP045
    ] = None,
    loads: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(help="Offered loads in windows/s, e.g. 10,20,40; default: 20 x 1.4^k up to past saturation."),
    ] = None,
    duration_s: Annotated[float, typer.Option("--duration-s", help="Seconds per load.")] = 30.0,
    speed: Annotated[
        float, typer.Option(help="Each synthetic patient's pace, x real time (patients = load x hop / speed).")
    ] = 10.0,
    mc_sweep: Annotated[str, typer.Option(help="Also time the classifier at these MC passes, e.g. 1,2,4.")] = "",
    model_min_s: Annotated[float, typer.Option("--model-min-s", help="Seconds per model-only timing.")] = 4.0,
    use_running: Annotated[
        bool, typer.Option(help="Use the configured broker and InfluxDB instead of starting them.")
    ] = False,
) -> None:
    """Benchmark the pipeline against the model alone, unbatched inference and its own latency."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from tools.bench import BenchOptions, Reporter, run_bench
    from tools.bench.report import plot

    if duration_s <= 0:
        raise ConfigError("--duration-s must be positive.")
    if speed <= 0:
        raise ConfigError("--speed must be positive (1 is real time).")
    opts = BenchOptions(
        device=device,
        loads=_numbers(loads, "--loads", float) if loads else None,
        duration_s=duration_s,
        workers=_numbers(workers, "--workers", int),
        torch_threads=torch_threads,
        speed=speed,
        model_min_s=model_min_s,
        mc_sweep=tuple(_numbers(mc_sweep, "--mc-sweep", int)) if mc_sweep else (),
        use_running=use_running,
    )
    console = Console(stderr=True)
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[back]} back"),
        TimeElapsedColumn(),
        console=console,
    )

    class RichReporter(Reporter):
        task: Any = None

        def phase(self, text: str) -> None:
            console.log(text)

        def load_started(self, label: str, total: int) -> None:
            self.task = progress.add_task(label, total=total, back=0)

        def load_tick(self, sent: int, delivered: int) -> None:
            progress.update(self.task, completed=sent, back=delivered)

        def load_done(self, summary: str) -> None:
            progress.remove_task(self.task)
            console.log(summary)

    with progress:
        result = run_bench(get_settings(), opts, RichReporter())
    text = json.dumps(result, indent=1)
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(text + "\n")
    if png is not None:
        sat = result["pipeline_windows_per_s"] if result["details"]["saturation_reached"] else None
        d = result["details"]
        title = (
            f"ecgmon bench on {device}: {d['classifier']}, {d['mc_samples']} MC passes, "
            f"batch {d['max_batch']}, {d['workers']} worker(s)"
        )
        sweep = [ld for ld in result["loads"] if ld["workers"] == result["details"]["workers"]]
        plot(sweep, png, title=title, saturation=sat)
    summary = {k: v for k, v in result.items() if k not in ("loads", "details")}
    print(json.dumps(summary, indent=1))
