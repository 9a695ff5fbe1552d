"""``ecgmon up | down | status | settings``: the embedded dev stack and the configuration."""

from __future__ import annotations

import json
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from ecgmon import stack as embedded
from ecgmon.errors import ConfigError
from ecgmon.settings import Settings, get_settings

OnlyOption = Annotated[Optional[str], typer.Option("--only", help="kafka or influxdb; default both.")]  # noqa: UP045


def _only(value: str | None) -> embedded.Part | None:
    if value is None:
        return None
    if value not in embedded.PARTS:
        raise ConfigError(f"--only {value!r} is unknown; use kafka or influxdb.")
    return value  # type: ignore[return-value]


def up(only: OnlyOption = None) -> None:
    """Start the embedded broker and InfluxDB on 127.0.0.1 (idempotent)."""
    settings = get_settings()
    embedded.up(settings, _only(only))
    _print_status(settings)


def down(only: OnlyOption = None) -> None:
    """Stop the embedded stack (SIGTERM, then SIGKILL after the grace period)."""
    embedded.down(get_settings(), _only(only))


def status(as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False) -> None:
    """Whether each part of the embedded stack runs and answers."""
    settings = get_settings()
    if as_json:
        print(json.dumps(embedded.status_json(settings)))
        return
    _print_status(settings)


def _print_status(settings: Settings) -> None:
    table = Table("part", "address", "healthy", "pid")
    for part, info in embedded.status_json(settings).items():
        address = info.get("bootstrap") or info.get("url")
        table.add_row(part, str(address), "yes" if info["healthy"] else "no", str(info["pid"] or "-"))
    Console().print(table)


def show_settings() -> None:
    """Every setting with its environment variable and current value (secrets masked)."""
    settings = get_settings()
    table = Table("variable", "value", "meaning")
    for name, field in type(settings).model_fields.items():
        table.add_row(f"ECGMON_{name.upper()}", str(getattr(settings, name)), field.description or "")
    Console().print(table)
