"""The command line: help works, user errors end in one line and exit 1."""

from __future__ import annotations

import subprocess
import sys


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tools.cli.main", *args], capture_output=True, text=True, timeout=120)


def test_help_lists_the_commands() -> None:
    out = _run("--help").stdout
    for command in ("up", "down", "status", "settings", "train", "eval", "strip"):
        assert command in out


def test_bad_option_value_is_one_line() -> None:
    result = _run("up", "--only", "zookeeper")
    assert result.returncode == 1
    assert result.stderr.strip() == "ConfigError: --only 'zookeeper' is unknown; use kafka or influxdb."


def test_settings_masks_secrets() -> None:
    import os

    env = {**os.environ, "ECGMON_INFLUX_TOKEN": "s3cr3t-token", "COLUMNS": "250"}
    result = subprocess.run(
        [sys.executable, "-m", "tools.cli.main", "settings"], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == 0
    assert "ECGMON_ALERT_BRADY_BPM" in result.stdout
    assert "s3cr3t-token" not in result.stdout


def test_namespaced_settings_rename_app_and_every_topic() -> None:
    from ecgmon.settings import Settings

    base = Settings()
    ns = base.namespaced("t1")
    assert ns.app_id == "t1-app"
    assert ns.topics() == [
        "t1.windows", "t1.predictions", "t1.reconstructions", "t1.alerts", "t1.deadletter", "t1.actions"
    ]
    assert ns.kafka_port == base.kafka_port


def test_aiokafka_options_carry_sasl_without_leaking_into_repr() -> None:
    from pydantic import SecretStr

    from ecgmon.settings import Settings

    s = Settings(kafka_security_protocol="SASL_PLAINTEXT", kafka_sasl_username="u", kafka_sasl_password=SecretStr("pw"))
    options = s.aiokafka_options()
    assert options["sasl_plain_username"] == "u" and options["sasl_plain_password"] == "pw"
    assert "pw" not in repr(s)
