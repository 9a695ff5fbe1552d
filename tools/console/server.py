"""Run the console: check what it needs, then serve it with uvicorn until SIGINT/SIGTERM."""

from __future__ import annotations

import logging

from ecgmon.errors import ConfigError, PortInUseError
from ecgmon.settings import Settings
from tools.console.auth import UserStore


def serve(settings: Settings) -> None:
    """Serve the console on ``console_host:console_port``; one-line errors for what a user can fix."""
    import socket

    import uvicorn

    from tools.console.app import Console

    users = UserStore(settings.console_users_path)
    if not users.names():
        raise ConfigError(
            f"The console has no users ({settings.console_users_path}); create one with "
            "`ecgmon console adduser NAME --role technician --password-stdin`."
        )
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds: TIME_WAIT is no conflict
        try:
            probe.bind((settings.console_host, settings.console_port))
        except OSError:
            raise PortInUseError(
                f"Port {settings.console_port} on {settings.console_host} is taken; set ECGMON_CONSOLE_PORT."
            ) from None
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("ecgmon.console").setLevel(logging.INFO)
    console = Console(settings)
    config = uvicorn.Config(
        console.app, host=settings.console_host, port=settings.console_port, log_level="warning",
        timeout_graceful_shutdown=2, proxy_headers=False, access_log=False,
    )  # fmt: skip
    print(f"ecgmon console on {settings.console_url} (users: {settings.console_users_path})", flush=True)
    uvicorn.Server(config).run()
