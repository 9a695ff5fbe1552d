"""The ``ecgmon`` command: a thin dispatcher into the owning packages.

Each command group is a small module beside this one and imports its package inside the
command, so ``ecgmon`` itself depends on none of them. Errors a user can cause print one
``Name: message`` line and exit 1; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import sys

import typer

from ecgmon.errors import EcgmonError
from tools.cli import (
    alerts,
    bench,
    chaos,
    classifier,
    dashboards,
    data,
    demo,
    reconstructor,
    simulate,
    soak,
    stack,
    strip,
    worker,
)
from tools.cli import console as console_cli

app = typer.Typer(
    name="ecgmon",
    help="Real-time remote ECG monitoring: stack, worker, simulators, models, dashboards.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
train_app = typer.Typer(help="Train the models.", no_args_is_help=True)
eval_app = typer.Typer(help="Evaluate models and alerts on real recordings.", no_args_is_help=True)
data_app = typer.Typer(help="Build local data caches (outside git).", no_args_is_help=True)
plot_app = typer.Typer(help="Figures people look at.", no_args_is_help=True)

app.command("up")(stack.up)
app.command("down")(stack.down)
app.command("status")(stack.status)
app.command("settings")(stack.show_settings)
app.command("worker")(worker.worker)
app.command("simulate")(simulate.simulate)
app.command("demo")(demo.demo)
app.command("bench")(bench.bench)
app.command("soak")(soak.soak)
app.command("chaos")(chaos.chaos)
app.command("strip")(strip.strip)
train_app.command("classifier")(classifier.train)
train_app.command("reconstructor")(reconstructor.train)
eval_app.command("classifier")(classifier.evaluate)
eval_app.command("reconstructor")(reconstructor.evaluate)
eval_app.command("alerts")(alerts.evaluate)
eval_app.command("build-devset")(alerts.build_devset)
plot_app.command("reconstruction")(reconstructor.plot)


data_app.command("ptbxl-full")(data.ptbxl_full)
app.add_typer(data_app, name="data")
app.add_typer(train_app, name="train")
app.add_typer(eval_app, name="eval")
app.add_typer(plot_app, name="plot")
app.add_typer(dashboards.app, name="dashboards")
app.add_typer(console_cli.app, name="console")


def run() -> None:
    """Entry point: run the app, turning ``EcgmonError`` into one line on stderr and exit 1."""
    debug = "--debug" in sys.argv[1:]
    if debug:
        sys.argv.remove("--debug")
    try:
        app()
    except EcgmonError as exc:
        if debug:
            raise
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        raise SystemExit(130) from None


if __name__ == "__main__":
    run()
