"""Security basics: Kafka SASL/SSL settings reach the worker's client; secrets never reach a log line."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import faust
import hypothesis  # noqa: F401  - see below
import pytest

from ecgmon.errors import SinkError
from ecgmon.settings import Settings
from ecgmon.stack import free_port
from streams.app import broker_credentials
from streams.sink import InfluxSink

SECRET = "s3cret-token-never-logged"
# hypothesis is imported up front because CPython 3.11.7 here raised "SystemError: AST constructor
# recursion depth mismatch" when pytest's assertion rewriter parsed a module imported after the
# failed aiohttp connections below (the hypothesis plugin imports hypothesis at session end).


def test_plaintext_has_no_credentials(tmp_path: Path) -> None:
    assert broker_credentials(Settings(state_dir=tmp_path, kafka_security_protocol="PLAINTEXT")) is None


def test_sasl_ssl_uses_the_configured_mechanism_user_and_tls(tmp_path: Path) -> None:
    s = Settings(
        state_dir=tmp_path,
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="ecg",
        kafka_sasl_password=SECRET,
    )
    creds = broker_credentials(s)
    assert isinstance(creds, faust.SASLCredentials)
    assert creds.username == "ecg" and creds.password == SECRET and creds.ssl_context is not None
    assert str(creds.mechanism.value if hasattr(creds.mechanism, "value") else creds.mechanism) == "SCRAM-SHA-512"
    assert SECRET not in repr(s) and SECRET not in str(s.model_dump())  # SecretStr masks it


def test_ssl_alone_gives_tls_credentials(tmp_path: Path) -> None:
    creds = broker_credentials(Settings(state_dir=tmp_path, kafka_security_protocol="SSL"))
    assert isinstance(creds, faust.SSLCredentials)


def test_the_influx_token_never_reaches_the_log(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A 2.x sink failing against an absent InfluxDB logs its retries, never the token."""
    s = Settings(
        state_dir=tmp_path,
        influx_url=f"http://127.0.0.1:{free_port()}",
        influx_version=2,
        influx_token=SECRET,
        influx_retry_max_s=0.2,
    )
    sink = InfluxSink(s)
    caplog.set_level(logging.DEBUG, logger="streams.sink")

    async def run() -> None:
        await sink.start()
        future = await sink.write(["m v=1i 1"])
        await asyncio.sleep(1.0)
        assert not future.done() and sink.down_s() > 0.5 and sink.stats.retries >= 2
        await sink.stop(timeout_s=1.0)
        assert isinstance(future.exception(), SinkError)  # unwritten at stop: retriable, never acknowledged

    asyncio.run(run())
    assert "retrying" in caplog.text
    assert SECRET not in caplog.text and SECRET not in repr(sink)
