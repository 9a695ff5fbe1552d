"""``ecgmon worker``: run the Faust streaming worker (same app as ``faust -A streams.agents worker``).

The models are loaded and the topics created before Faust starts, so a missing weight file or an
unreachable broker ends in one clear line instead of a crashed worker. Faust's web views stay off
unless ``ECGMON_WORKER_WEB=1``, and then listen on 127.0.0.1 only.

Readiness: once its partitions are assigned and its table recovered, the worker writes
``$ECGMON_STATE_DIR/worker-<app id>.ready`` (removed on shutdown) and logs "ecgmon worker ready";
its first ``pipeline`` point reaches InfluxDB within ``health_interval_s``.

``--processes N`` (or ``ECGMON_WORKER_PROCESSES``) starts N such workers in one consumer group and
supervises them (``streams.supervisor``): each gets cores / N torch threads unless
``ECGMON_TORCH_THREADS`` is set, a worker that dies is restarted, SIGTERM stops them all.
"""

from __future__ import annotations

import sys
from typing import Annotated, Optional, get_args

import typer

from ecgmon.errors import ConfigError, StackError
from ecgmon.settings import LogLevel, get_settings

LOG_LEVELS: tuple[str, ...] = get_args(LogLevel)


def worker(
    log_level: Annotated[
        Optional[str],  # noqa: UP045 - typer needs Optional
        typer.Option("--log-level", "-l", help="crit, error, warn, info or debug; default ECGMON_LOG_LEVEL."),
    ] = None,
    processes: Annotated[
        Optional[int],  # noqa: UP045 - typer needs Optional
        typer.Option(
            "--processes", "-p", min=1, help="Worker processes in one group; default ECGMON_WORKER_PROCESSES (1)."
        ),
    ] = None,
) -> None:
    """Run the streaming worker: windows in, predictions, reconstructions and alerts out.

    Ready when $ECGMON_STATE_DIR/worker-<app id>.ready exists.
    """
    settings = get_settings()
    level = log_level or settings.log_level
    if level not in LOG_LEVELS:
        raise ConfigError(f"--log-level {level!r} is unknown; use one of {', '.join(LOG_LEVELS)}.")
    n = processes or settings.worker_processes
    if n > 1:
        from streams.supervisor import Supervisor, worker_argv

        raise SystemExit(Supervisor(settings, n, worker_argv(level)).run())
    from streams.inference import Inference

    inference = Inference.load(settings)
    from streams import agents
    from streams.topics import ensure_topics

    try:
        ensure_topics(settings)
    except Exception as exc:
        raise StackError(
            f"Kafka at {settings.bootstrap} did not answer ({type(exc).__name__}); "
            "run `ecgmon up` or set ECGMON_KAFKA_BOOTSTRAP."
        ) from None
    agents.preload(inference)
    web = (
        ["--web-bind", "127.0.0.1", "--web-port", str(settings.web_port)] if settings.worker_web else ["--without-web"]
    )
    sys.argv = [sys.argv[0], "worker", "--loglevel", level, *web]
    agents.app.main()
