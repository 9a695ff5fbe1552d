"""``ecgmon train reconstructor | eval reconstructor | plot reconstruction``.

Thin: options in, ``models.reconstructor`` does the work (imported inside each command so that
``ecgmon`` stays free of models and torch at import time).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from ecgmon.errors import ConfigError, DataError
from ecgmon.jsonout import print_and_write

_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
ModelOpt = Annotated[str, typer.Option("--model", help="dual_branch (the method), unet or linear.")]
DatasetOpt = Annotated[str, typer.Option("--dataset", help="ptbxl_z, ptbxl100, ludb, cinc2021 or cpsc2018.")]
PathOpt = Annotated[Path, typer.Option("--path", help="Folder laid out like ../shared/data/<dataset>.")]
SplitOpt = Annotated[
    str, typer.Option("--split", help="Split name for ptbxl layouts (reads NAME_250hz.npy, NAME.csv).")
]
SamplesOpt = Annotated[
    Optional[int], typer.Option("--mc-samples", help="MC dropout passes; default ECGMON_MC_SAMPLES.")  # noqa: UP045
]
DeviceOpt = Annotated[str, typer.Option("--device", help="cpu, cuda, cuda:N or auto.")]


def train(
    model: Annotated[str, typer.Argument(help="dual_branch, unet, linear or all.")] = "all",
    ptbxl_z: Annotated[Path, typer.Option("--ptbxl-z", help="ptbxl_z-style folder (train split).")] = _DATA
    / "ptbxl_z",
    ptbxl100: Annotated[
        Path | None,
        typer.Option("--ptbxl100", help="ptbxl100-style folder added to training; '' to skip."),
    ] = _DATA / "ptbxl100",
    epochs: Annotated[int, typer.Option(help="Epochs of the one-cycle schedule.")] = 30,
    max_minutes: Annotated[
        float, typer.Option(help="Stop after the epoch that passes this wall time.")
    ] = 40.0,
    batch_size: Annotated[int, typer.Option(help="Windows per step.")] = 32,
    lr: Annotated[float, typer.Option(help="Peak learning rate.")] = 2e-3,
    threads: Annotated[int, typer.Option(help="Torch threads (1 leaves room for other jobs).")] = 1,
    seed: Annotated[int, typer.Option(help="Seed for initialisation and shuffling.")] = 0,
    run_dir: Annotated[Path, typer.Option(help="Checkpoints (resumes from RUN_DIR/MODEL/last.pt).")] = Path(
        "runs/reconstructor"
    ),
    out: Annotated[
        Optional[Path], typer.Option(help="Weight file; default models/weights/reconstructor_MODEL.pt.")  # noqa: UP045
    ] = None,
    pool: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(help="PTB-XL pool cache (`ecgmon data ptbxl-full`): pre-train on it instead."),
    ] = None,
    epoch_windows: Annotated[int, typer.Option(help="Random windows per epoch; 0 = all.")] = 0,
    init: Annotated[
        Optional[Path], typer.Option(help="Start from these weights (fine-tuning after --pool).")  # noqa: UP045
    ] = None,
    weight_decay: Annotated[float, typer.Option(help="AdamW weight decay.")] = 1e-4,
) -> None:
    """Train a reconstructor on ptbxl_z/train (+ ptbxl100/train); the checkpoint is chosen on ptbxl100/val.

    Learning from all of PTB-XL is two runs: ``--pool CACHE --epoch-windows N`` pre-trains, then
    ``--init PRETRAINED.pt`` fine-tunes on the training split with metadata.
    """
    from models.reconstructor.train import MODELS, TrainConfig, train_model

    names = list(MODELS) if model == "all" else [model]
    if any(n not in MODELS for n in names):
        raise ConfigError(f"Unknown reconstructor {model!r}; choose dual_branch, unet, linear or all.")
    if out is not None and len(names) > 1:
        raise ConfigError("--out names one weight file; give a single model with it.")
    for path in (ptbxl_z, ptbxl100):
        if path is not None and str(path) and not Path(path).is_dir():
            raise DataError(f"Training folder {path} does not exist; pass --ptbxl-z/--ptbxl100 folders.")
    console = Console()
    for name in names:
        cfg = TrainConfig(
            name,
            ptbxl_z=ptbxl_z,
            ptbxl100=ptbxl100 if ptbxl100 and str(ptbxl100) else None,
            select_path=ptbxl100 if ptbxl100 and str(ptbxl100) else None,
            epochs=epochs,
            max_minutes=max_minutes,
            batch_size=batch_size,
            lr=lr,
            threads=threads,
            seed=seed,
            run_dir=run_dir,
            out=out,
            pool=pool,
            epoch_windows=epoch_windows,
            init=init,
            weight_decay=weight_decay,
        )
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
            console=console,
        ) as bar:
            task = bar.add_task(f"train {name}", total=1 if name == "linear" else epochs, info="")

            def on_epoch(row: dict[str, object], task: TaskID = task) -> None:
                info = " ".join(
                    f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()
                )
                bar.update(task, advance=1, info=info)

            summary = train_model(cfg, on_epoch)
        console.print(json.dumps(summary))


def evaluate(
    dataset: DatasetOpt = "ptbxl_z",
    path: PathOpt = _DATA / "ptbxl_z",
    split: SplitOpt = "val",
    json_out: Annotated[
        Optional[Path], typer.Option("--json", help="Write the result JSON here.")  # noqa: UP045
    ] = None,
    mc_samples: SamplesOpt = None,
    model: ModelOpt = "dual_branch",
    device: DeviceOpt = "cpu",
    cost: Annotated[
        bool, typer.Option("--cost/--no-cost", help="Time each MC variant (median of 3 batches of 32).")
    ] = True,
) -> None:
    """Score the committed reconstructor and both baselines on a folder; print and write the JSON."""
    from models.reconstructor.evaluate import evaluate as run

    console = Console(stderr=True)
    with console.status("evaluating") as status:
        result = run(
            path,
            split,
            dataset=dataset,
            mc_samples=mc_samples,
            device=device,
            model=model,
            progress=lambda msg: status.update(msg),
            measure_cost=cost,
        )
    print_and_write(result, json_out)


def plot(
    record: Annotated[
        str, typer.Option("--record", help="Record id from the CSV/RECORDS, or a row number.")
    ] = "0",
    dataset: DatasetOpt = "ptbxl_z",
    path: PathOpt = _DATA / "ptbxl_z",
    split: SplitOpt = "val",
    out: Annotated[Path, typer.Option("--out", help="PNG to write.")] = Path("out/reconstruction.png"),
    mc_samples: SamplesOpt = None,
    model: ModelOpt = "dual_branch",
    device: DeviceOpt = "cpu",
) -> None:
    """Draw true vs reconstructed 12 leads with the +/-2 std uncertainty band for one record."""
    from ecgmon.settings import get_settings
    from models import registry
    from models.reconstructor.evaluate import load_dataset
    from models.reconstructor.plot import plot_record

    rec = registry.load(model, device=device)
    data = load_dataset(dataset, path, split, rec.fs_hz, rec.window_samples)
    t = mc_samples if mc_samples is not None else get_settings().mc_samples
    written = plot_record(rec, data, record, out, samples=t)
    Console().print(f"wrote {written}")
