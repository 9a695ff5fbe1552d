"""``ecgmon eval alerts``: judge the alert engine on real recordings or real beat timelines, no Kafka."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from ecgmon.errors import ConfigError
from ecgmon.settings import get_settings


def evaluate(
    dataset: str = typer.Option(
        ..., "--dataset", help="cpsc2021 (recorded lead I) or ltafdb (rendered on real beats)."
    ),
    path: Path = typer.Option(..., "--path", help="Dataset folder, e.g. ../shared/data/cpsc2021_sample."),
    json_out: Path = typer.Option(..., "--json", help="Where to write the JSON report."),
    min_episode_s: float = typer.Option(30.0, "--min-episode-s", help="Episodes shorter than this are not counted."),
    records: str | None = typer.Option(None, "--records", help="Comma-separated record names (default: all)."),
    hours: float | None = typer.Option(None, "--hours", help="ltafdb: score only the first H hours of each span."),
    no_classifier: bool = typer.Option(False, "--no-classifier", help="Skip the classifier: RR evidence only."),
    mc_samples: int | None = typer.Option(
        None, "--mc-samples", help="MC dropout passes (default ECGMON_MC_SAMPLES, as in the worker)."
    ),
    cache_dir: Path | None = typer.Option(
        None, "--cache", help="ltafdb: keep per-record evidence here (outside git) so reruns and tuning replay only."
    ),
    render_fs_hz: float = typer.Option(128.0, "--render-fs-hz", help="ltafdb: rate the waveform is rendered at."),
    seed: int = typer.Option(0, "--seed", help="ltafdb: morphology and noise seed."),
    jobs: int = typer.Option(1, "--jobs", min=1, help="ltafdb: records computed in parallel processes."),
    tune_plot: Path | None = typer.Option(
        None, "--tune", help="Also sweep the AF settings: trade-off plot here, grid as NAME_grid.json beside --json."
    ),
) -> None:
    """Replay lead I through preprocessing, classifier, RR evidence and the alert engine; score AF alerts."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeRemainingColumn

    from tools.evaluation.alerts.run import EvalOptions, collect, report

    if dataset not in ("cpsc2021", "ltafdb"):
        raise ConfigError(f"--dataset {dataset!r} is unknown; use cpsc2021 or ltafdb.")
    if hours is not None and hours <= 0:
        raise ConfigError("--hours must be positive.")
    settings = get_settings()
    opts = EvalOptions(
        dataset=dataset,  # type: ignore[arg-type]
        path=path, min_episode_s=min_episode_s,
        records=[r.strip() for r in records.split(",") if r.strip()] if records else None,
        hours=hours, classifier=not no_classifier, mc_samples=mc_samples, cache_dir=cache_dir,
        render_fs_hz=render_fs_hz, seed=seed, jobs=jobs,
    )
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), transient=True
    ) as bar:
        tasks: dict[str, TaskID] = {}

        def progress(record: str, done: int, total: int) -> None:
            if record not in tasks:
                tasks[record] = bar.add_task(f"{dataset} {record}", total=total)
            bar.update(tasks[record], completed=done)

        pairs, seconds, computed = collect(opts, settings, progress=progress)
    out = report(pairs, settings, opts, seconds=seconds, computed=computed)
    if tune_plot is not None:
        from tools.evaluation.alerts.tune import plot_tradeoff, sweep

        grid = sweep(pairs, settings, min_episode_s=min_episode_s)
        chosen = plot_tradeoff(grid, tune_plot)
        grid_file = json_out.with_name(f"{json_out.stem}_grid.json")
        grid_file.parent.mkdir(parents=True, exist_ok=True)
        grid_file.write_text(json.dumps({"chosen": chosen, "grid": grid}, indent=1))
        out["tuning"] = {"chosen": chosen, "points": len(grid), "plot": str(tune_plot), "grid": str(grid_file)}
    json_out.parent.mkdir(parents=True, exist_ok=True)
    json_out.write_text(json.dumps(out, indent=1))
    head = {k: out[k] for k in ("records", "episodes", "detected", "sensitivity", "median_onset_delay_s",
                                "false_alerts_per_hour", "false_alerts_per_1000_patients_per_hour", "hours",
                                "af_burden_error_pp", "windows_per_s")}
    typer.echo(json.dumps(head))
    for mode, figs in out["by_evidence"].items():
        typer.echo(f"{mode:>10}: sensitivity {figs['sensitivity']}, false/h {figs['false_alerts_per_hour']}, "
                   f"median delay {figs['median_onset_delay_s']} s, burden error {figs['af_burden_error_pp']} pp")


def build_devset(
    out: Path = typer.Option(..., "--out", help="Folder to write mixed/ and other/ into (outside git)."),
    source: Path = typer.Option(Path("../shared/data/cinc2017"), "--source", help="CinC 2017 folder."),
    records: Path = typer.Option(
        Path("models/weights/classifier_cinc2017_val_records.txt"), "--records",
        help="Record list: the classifier's validation records, never trained on.",
    ),
    streams: int = typer.Option(12, "--streams", min=1, help="Streams per folder (record-disjoint)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the order and the AF run lengths."),
) -> None:
    """Splice CinC 2017 records into long streams with AF episodes (mixed/) and without (other/)."""
    from tools.evaluation.alerts.devset import build, read_list

    names = read_list(records)
    for with_af in (True, False):
        built = build(source, names, out, streams=streams, seed=seed, with_af=with_af)
        typer.echo(json.dumps({"folder": str(built.folder), "streams": built.streams, "af_episodes": built.episodes,
                               "hours": round(built.hours, 3)}))
