"""``ecgmon chaos``: faults against a running pipeline, then the delivery audit (``tools.chaos``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from ecgmon.errors import ConfigError
from ecgmon.settings import get_settings

AUDIT_KEYS = ("lost", "duplicated_rows", "conflicting_predictions", "duplicated_alert_episodes")
"""The audit figures that must all be 0 for the run to pass."""


def chaos(
    minutes: Annotated[float, typer.Option("--minutes", min=0.5, help="Wall minutes of streaming.")] = 30.0,
    faults: Annotated[
        Optional[int],  # noqa: UP045 - typer needs Optional
        typer.Option("--faults", min=0, help="Faults to inject; default one per minute, at least 2."),
    ] = None,
    patients: Annotated[int, typer.Option("--patients", min=1, help="Simulated patients.")] = 24,
    speed: Annotated[float, typer.Option("--speed", min=0.1, help="Simulator pace; 1 = real time.")] = 2.0,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the patients and of the faults.")] = 0,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Write the audit here.")] = None,  # noqa: UP045
    out_dir: Annotated[Path, typer.Option("--out-dir", help="Worker and simulator logs.")] = Path("runs/chaos"),
    compare: Annotated[
        Optional[Path],  # noqa: UP045 - typer needs Optional
        typer.Option("--compare", help="An earlier run's JSON (same seed): its alerts must be the same."),
    ] = None,
) -> None:
    """Stream simulated patients through two workers while faults strike; exit 1 if any window was
    lost, stored twice or judged differently on replay, or an alert episode was opened twice."""
    from tools.chaos import ChaosOptions, compare_alerts, run_chaos

    earlier = None
    if compare is not None:
        if not compare.is_file():
            raise ConfigError(f"--compare {compare} does not exist; give the JSON of an earlier `ecgmon chaos --json`.")
        earlier = json.loads(compare.read_text())
    n_faults = faults if faults is not None else max(2, round(minutes))
    opts = ChaosOptions(minutes, n_faults, patients, speed, seed, out_dir)
    result = run_chaos(get_settings(), opts, say=lambda msg: typer.echo(msg, err=True))
    if earlier is not None:
        result["alerts_differ_from_compare"] = compare_alerts(earlier, result)
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(result, indent=1))
    typer.echo(json.dumps({k: v for k, v in result.items() if k not in ("fault_log", "alerts_opened")}))
    failed = [k for k in AUDIT_KEYS if result[k]] + (["alerts"] if result.get("alerts_differ_from_compare") else [])
    if failed:
        typer.echo(f"chaos: FAILED ({', '.join(failed)}); logs in {out_dir}", err=True)
        raise typer.Exit(1)
