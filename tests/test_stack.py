"""The embedded stack: real Tansu and influxd, started, checked, stopped; errors in one line."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from ecgmon import stack
from ecgmon.errors import PortInUseError
from ecgmon.settings import Settings

pytestmark = pytest.mark.integration


def _settings(tmp_path: Path) -> Settings:
    return Settings(
        state_dir=tmp_path / "state", kafka_port=stack.free_port(), influx_port=stack.free_port(), partitions=3
    )


def _cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "ECGMON_STATE_DIR": str(settings.state_dir),
        "ECGMON_KAFKA_PORT": str(settings.kafka_port),
        "ECGMON_INFLUX_PORT": str(settings.influx_port),
        "ECGMON_PARTITIONS": str(settings.partitions),
    }
    cmd = [sys.executable, "-m", "tools.cli.main", *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)


def test_up_status_down_through_the_cli(tmp_path: Path) -> None:
    s = _settings(tmp_path)
    try:
        assert _cli(s, "up").returncode == 0
        assert _cli(s, "up").returncode == 0  # idempotent
        status = json.loads(_cli(s, "status", "--json").stdout)
        assert set(status) == {"kafka", "influxdb"}
        assert status["kafka"] == {
            "bootstrap": f"127.0.0.1:{s.kafka_port}",
            "healthy": True,
            "pid": status["kafka"]["pid"],
        }
        assert isinstance(status["kafka"]["pid"], int)
        assert status["influxdb"]["healthy"] is True
        assert status["influxdb"]["database"] == "ecg"
        assert status["influxdb"]["url"] == f"http://127.0.0.1:{s.influx_port}"

        # A stock Kafka client lists the topics with the configured partitions.
        from kafka import KafkaConsumer

        consumer = KafkaConsumer(bootstrap_servers=f"127.0.0.1:{s.kafka_port}")
        try:
            assert set(s.topics()) <= consumer.topics()
            assert consumer.partitions_for_topic("ecg.windows") == {0, 1, 2}
        finally:
            consumer.close()
        with urllib.request.urlopen(f"http://127.0.0.1:{s.influx_port}/ping", timeout=5) as resp:
            assert resp.status == 204
        body = urllib.request.urlopen(f"http://127.0.0.1:{s.influx_port}/query?q=SHOW+DATABASES", timeout=5).read()
        assert b'"ecg"' in body
    finally:
        assert _cli(s, "down").returncode == 0
    status = json.loads(_cli(s, "status", "--json").stdout)
    assert status["kafka"] == {"bootstrap": f"127.0.0.1:{s.kafka_port}", "healthy": False, "pid": None}
    assert status["influxdb"]["healthy"] is False and status["influxdb"]["pid"] is None
    for port in (s.kafka_port, s.influx_port):
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
    assert _cli(s, "down").returncode == 0  # nothing running: still fine


def test_only_one_part(tmp_path: Path) -> None:
    s = _settings(tmp_path)
    try:
        stack.up(s, "influxdb")
        st = stack.status(s)
        assert st["influxdb"].healthy and not st["kafka"].healthy
    finally:
        stack.down(s)


def test_port_in_use_is_one_line_naming_the_setting(tmp_path: Path) -> None:
    s = _settings(tmp_path)
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", s.kafka_port))
        blocker.listen()
        with pytest.raises(PortInUseError, match=f"Port {s.kafka_port}.*ECGMON_KAFKA_PORT"):
            stack.up(s, "kafka")
        result = _cli(s, "up", "--only", "kafka")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines == [f"PortInUseError: Port {s.kafka_port} is already in use; set ECGMON_KAFKA_PORT to a free port."]


def test_stale_pid_file_is_cleaned_silently(tmp_path: Path) -> None:
    s = _settings(tmp_path)
    s.state_dir.mkdir(parents=True)
    dead = subprocess.Popen(["true"])
    dead.wait()
    (s.state_dir / "kafka.pid").write_text(str(dead.pid))
    assert stack.status(s)["kafka"].pid is None
    assert not (s.state_dir / "kafka.pid").exists()


def test_missing_binary_message(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stack.shutil, "which", lambda _name: None)
    monkeypatch.setattr(stack, "Path", lambda *_a: Path("/nonexistent/influxd"))
    from ecgmon.errors import BinaryMissingError

    with pytest.raises(BinaryMissingError, match="apt-get install -y influxdb"):
        stack.influxd_binary()
