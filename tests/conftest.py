"""Shared fixtures: one real broker and one real influxd per test run, on free ports.

Never the default ports, so a developer's running stack is never touched.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ecgmon import stack
from ecgmon.influx import InfluxClient
from ecgmon.settings import Settings

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def wait_for(condition: Callable[[], bool], timeout_s: float, interval_s: float = 0.2, what: str = "condition") -> None:
    """Poll ``condition`` until it is true; fail the test after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """../shared/data, read in place."""
    if not DATA.exists():
        pytest.skip(f"shared data not found at {DATA}")
    return DATA


@pytest.fixture(scope="session")
def stack_settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """Settings pointing at a real Tansu broker and influxd started for this test run."""
    settings = Settings(
        state_dir=tmp_path_factory.mktemp("stack"),
        kafka_port=stack.free_port(),
        influx_port=stack.free_port(),
        web_port=stack.free_port(),
        partitions=4,
    )
    stack.up(settings)
    try:
        yield settings
    finally:
        stack.down(settings)


@pytest.fixture()
def influx(stack_settings: Settings) -> InfluxClient:
    """A client for the test InfluxDB."""
    return InfluxClient(stack_settings)


@pytest.fixture()
def topic_prefix() -> str:
    """A fresh name part so each test uses its own topics."""
    return f"t{uuid.uuid4().hex[:8]}"
