"""``ecgmon dashboards generate | check | push``: Grafana provisioning files, their checks, and push."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ecgmon.errors import ConfigError
from ecgmon.settings import get_settings

app = typer.Typer(help="Grafana dashboards and alert rules: generate, check, push.", no_args_is_help=True)

OutOption = Annotated[
    Optional[Path],  # noqa: UP045
    typer.Option("--out", help="Provisioning directory; default dashboards/provisioning in the package."),
]


@app.command("generate")
def generate(out: OutOption = None) -> None:
    """Write the datasource, dashboard provider, dashboards JSON and alert rules from dashboards/definitions.py."""
    from dashboards.generate import PROVISIONING_DIR, write_all

    for path in write_all(out or PROVISIONING_DIR):
        print(path)


@app.command("check")
def check(
    out: OutOption = None,
    run: Annotated[bool, typer.Option("--run/--no-run", help="Also run every query against InfluxDB.")] = False,
    since_s: Annotated[float, typer.Option("--since-s", help="Time range for --run: the last S seconds.")] = 3600.0,
    patient: Annotated[Optional[str], typer.Option("--patient", help="$patient for --run; default the first.")] = None,  # noqa: UP045
    require_data: Annotated[
        bool, typer.Option("--require-data", help="With --run, fail when a panel has no rows.")
    ] = False,
) -> None:
    """Fail when the files are stale or invalid for Grafana 11.6; with --run, run every query on InfluxDB."""
    from dashboards.generate import PROVISIONING_DIR, load_alert_rules, load_dashboards, stale_files
    from dashboards.validate import validate_alert_rules, validate_dashboard

    folder = out or PROVISIONING_DIR
    problems = [f"stale (run `ecgmon dashboards generate`): {rel}" for rel in stale_files(folder)]
    if not problems:
        for model in load_dashboards(folder).values():
            problems += validate_dashboard(model)
        problems += validate_alert_rules(load_alert_rules(folder))
    if problems:
        raise ConfigError(f"{len(problems)} problem(s) in {folder}: " + "; ".join(problems))
    console = Console()
    console.print(f"{folder}: up to date and valid for Grafana 11.6.")
    if not run:
        return
    from dashboards.check import run_all
    from ecgmon.influx import InfluxClient

    t_to_ms = int(time.time() * 1000)
    results = run_all(
        InfluxClient(get_settings()), t_to_ms - int(since_s * 1000), t_to_ms, patient=patient, provisioning_dir=folder
    )
    table = Table("query", "rows", "error")
    for r in results:
        table.add_row(escape(r.label), str(r.rows), escape(r.error))
    console.print(table)
    failed = [r.label for r in results if r.error or (require_data and r.rows == 0)]
    if failed:
        raise ConfigError(f"{len(failed)} of {len(results)} queries failed or returned no rows: {', '.join(failed)}.")


@app.command("push")
def push(
    url: Annotated[str, typer.Option("--url", help="Grafana base URL; default ECGMON_GRAFANA_URL.")] = "",
    token: Annotated[
        str, typer.Option("--token", help="Service-account token; default ECGMON_GRAFANA_TOKEN.", show_default=False)
    ] = "",
    rules: Annotated[bool, typer.Option("--rules/--no-rules", help="Also upsert the alert rule groups.")] = True,
    datasource: Annotated[
        bool, typer.Option("--datasource", help="Create the InfluxDB datasource from ECGMON_INFLUX_* if missing.")
    ] = False,
) -> None:
    """Push the dashboards (and alert rules) to an existing Grafana with grafana-client."""
    from dashboards.push import push as do_push

    settings = get_settings()
    result = do_push(
        url or settings.grafana_url,
        token or settings.grafana_token.get_secret_value(),
        rules=rules,
        influx_url=settings.influx if datasource else "",
        influx_database=settings.influx_database,
        influx_token=settings.influx_token.get_secret_value(),
    )
    print(f"dashboards: {', '.join(result.dashboards)}")
    if result.rule_groups:
        print(f"alert rule groups: {', '.join(result.rule_groups)}")
    if result.datasource_created:
        print("datasource ecgmon-influxdb created")
