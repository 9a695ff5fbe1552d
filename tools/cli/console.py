"""``ecgmon console``: the technician's console (``tools.console``), and ``ecgmon console adduser``."""

from __future__ import annotations

import sys
from typing import Annotated, Optional

import typer

from ecgmon.errors import ConfigError
from ecgmon.settings import get_settings

app = typer.Typer(
    help="The technician's console: alert queue, strips, actions, escalation, shift report (web).",
    invoke_without_command=True,
)


@app.callback()
def console(
    ctx: typer.Context,
    port: Annotated[
        Optional[int],  # noqa: UP045 - typer needs Optional
        typer.Option("--port", min=1, max=65535, help="Port; default ECGMON_CONSOLE_PORT."),
    ] = None,
) -> None:
    """Serve the console (needs the stack up and at least one user)."""
    if ctx.invoked_subcommand is not None:
        return
    from tools.console.server import serve

    settings = get_settings()
    if port is not None:
        settings = settings.model_copy(update={"console_port": port})
    serve(settings)


@app.command("adduser")
def adduser(
    name: Annotated[str, typer.Argument(help="User name (1-64 of A-Z a-z 0-9 . _ -).")],
    role: Annotated[str, typer.Option("--role", help="technician, physician or admin.")] = "technician",
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from the first line of standard input.")
    ] = False,
) -> None:
    """Create a user (or set a new password and role for an existing one)."""
    from tools.console.auth import UserStore

    if not password_stdin:
        raise ConfigError("Give the password on standard input with --password-stdin (never on the command line).")
    password = sys.stdin.readline().rstrip("\r\n")
    settings = get_settings()
    user = UserStore(settings.console_users_path).add(
        name, role, password, min_chars=settings.console_password_min_chars
    )
    print(f"user {user.name} ({user.role}) saved in {settings.console_users_path}")
