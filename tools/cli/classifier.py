"""``ecgmon train classifier`` and ``ecgmon eval classifier``: thin typer commands over models.classifier.

Models code is imported inside the commands, so importing ``ecgmon`` never imports torch.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer

from ecgmon.errors import ConfigError, DataError, ModelError


def train(
    kind: str = typer.Option(..., "--kind", help="teacher (12-lead, first), student or baseline."),
    epochs: Optional[int] = typer.Option(None, min=1, help="Passes over the training records."),  # noqa: UP045
    cinc2017: Optional[Path] = typer.Option(None, help="cinc2017-style folder (student, baseline)."),  # noqa: UP045
    ptbxl_z: Optional[Path] = typer.Option(None, help="ptbxl_z-style folder (12-lead records)."),  # noqa: UP045
    ptbxl100: Optional[Path] = typer.Option(None, help="ptbxl100-style folder (12-lead records)."),  # noqa: UP045
    out_dir: Optional[Path] = typer.Option(  # noqa: UP045
        None, help="Checkpoints, config.json and history (resumes from here)."
    ),
    cache_dir: Optional[Path] = typer.Option(None, help="Cached resampled/preprocessed arrays."),  # noqa: UP045
    weights_dir: Optional[Path] = typer.Option(  # noqa: UP045
        None, help="Where classifier_KIND.pt is written (models/weights)."
    ),
    seed: Optional[int] = typer.Option(None, help="Seed of initialisation, crops and sampling."),  # noqa: UP045
    split_seed: Optional[int] = typer.Option(None, help="Seed of the cinc2017 validation hold-out."),  # noqa: UP045
    val_fraction: Optional[float] = typer.Option(  # noqa: UP045
        None, min=0.01, max=0.9, help="Stratified record-wise cinc2017 hold-out."
    ),
    threads: Optional[int] = typer.Option(None, min=1, help="Torch intra-op threads."),  # noqa: UP045
    diag_weight: Optional[float] = typer.Option(  # noqa: UP045
        None, min=0.0, help="Teacher: weight of its PTB-XL diagnostic-statement head (0 = rhythm only)."
    ),
    pretrain_epochs: Optional[int] = typer.Option(  # noqa: UP045
        None, min=0, help="Student: epochs of feature reconstruction alone before joint training."
    ),
    feat_weight: Optional[float] = typer.Option(  # noqa: UP045
        None, min=0.0, help="Student: weight of the feature-reconstruction loss."
    ),
) -> None:
    """Train one classifier (teacher first: the student reconstructs its features) (resumable).

    Every option left out takes ``models.classifier.train.TrainConfig``'s default, the one place
    the recipe is written.
    """
    from rich.console import Console

    from models.classifier.train import KINDS, TrainConfig, run

    if kind not in KINDS:
        raise ConfigError(f"--kind must be one of {', '.join(KINDS)}, not {kind!r}.")
    given = {
        "epochs": epochs, "cinc2017": cinc2017, "ptbxl_z": ptbxl_z, "ptbxl100": ptbxl100, "out_dir": out_dir,
        "cache_dir": cache_dir, "weights_dir": weights_dir, "seed": seed, "split_seed": split_seed,
        "val_fraction": val_fraction, "threads": threads, "diag_weight": diag_weight,
        "pretrain_epochs": pretrain_epochs, "feat_weight": feat_weight,
    }  # fmt: skip
    chosen: dict[str, Any] = {k: str(v) if isinstance(v, Path) else v for k, v in given.items() if v is not None}
    cfg = TrainConfig(kind=kind, **chosen)
    for name, folder in (("--cinc2017", cfg.cinc2017), ("--ptbxl-z", cfg.ptbxl_z), ("--ptbxl100", cfg.ptbxl100)):
        if not Path(folder).is_dir() and (kind != "teacher" or name != "--cinc2017"):
            raise DataError(
                f"{name} folder {folder} does not exist; point it at a folder laid out like ../shared/data."
            )
    console = Console(stderr=True)
    try:
        with console.status(f"training {kind} ({cfg.epochs} epochs)"):
            path = run(cfg, log=console.print)
    except FileNotFoundError as exc:
        raise ModelError(str(exc)) from None
    console.print(f"weights written to {path}")


def evaluate(
    dataset: str = typer.Option(..., "--dataset", help="cinc2017 or ludb (lead I of 12-lead records)."),
    path: Path = typer.Option(..., "--path", help="Folder laid out like ../shared/data/DATASET."),
    json_out: Path = typer.Option(..., "--json", help="Where the metrics JSON is written."),
    records: Path | None = typer.Option(
        None, "--records", help="Optional file listing the records to score (one per line)."
    ),
    model: str = typer.Option("student", help="Registry name of the model to score."),
    baseline: str = typer.Option("baseline", help="Registry name of the baseline scored in the same run."),
    device: str = typer.Option("cpu", help="Torch device: cpu, cuda or cuda:N."),
    hop_s: float = typer.Option(5.0, min=0.1, help="Seconds between the starts of a record's 10 s windows."),
    bootstrap: int = typer.Option(0, min=0, help="Paired bootstrap resamples of the model-baseline F1 gap."),
    aggregate: str = typer.Option(
        "auto",
        "--aggregate",
        help="How window probabilities become a record's: auto (the fitted record-level aggregator on "
        "cinc2017-style folders, mean on ludb), aggregator, mean or max.",
    ),
) -> None:
    """Score the committed weights per record and write the metrics JSON (see the card for the aggregation)."""
    from rich.console import Console

    from models.classifier.aggregate import AGGREGATIONS
    from models.classifier.data import read_record_list
    from models.classifier.evaluate import DATASETS
    from models.classifier.evaluate import evaluate as run_eval

    if dataset not in DATASETS:
        raise ConfigError(f"--dataset must be one of {', '.join(DATASETS)}, not {dataset!r}.")
    if not path.is_dir():
        raise DataError(
            f"--path {path} is not a folder; pass a folder laid out like ../shared/data/{dataset}."
        )
    if aggregate != "auto" and aggregate not in AGGREGATIONS:
        raise ConfigError(f"--aggregate must be auto or one of {', '.join(AGGREGATIONS)}, not {aggregate!r}.")
    names = read_record_list(records) if records else None
    console = Console(stderr=True)
    with console.status("evaluating") as status:
        result = run_eval(
            dataset,
            path,
            model_name=model,
            baseline_name=baseline,
            records=names,
            device=device,
            hop_s=hop_s,
            bootstrap=bootstrap,
            aggregation=aggregate,
            progress=lambda s: status.update(s),
        )
    json_out.parent.mkdir(parents=True, exist_ok=True)
    json_out.write_text(json.dumps(result, indent=2) + "\n")
    base = result["baseline"]
    assert isinstance(base, dict)
    console.print(
        f"{result['records']} records ({result['aggregation_method']}): "
        f"{model} F1(N,A,O) mean {result['f1_mean_nao']:.3f}, "
        f"A {result['f1']['A']}, AUROC {result['auroc_macro']}; {baseline} F1 mean {base['f1_mean_nao']:.3f}"  # type: ignore[index]
    )
    console.print(f"wrote {json_out}")
