"""Shared fixtures: one real broker and one real influxd per test run, on free ports.

Never the default ports, so a developer's running stack is never touched.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ecgmon import stack
from ecgmon.influx import InfluxClient
from ecgmon.settings import Settings

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def stop_process_group(proc: subprocess.Popen[bytes] | None, timeout_s: float = 30) -> None:
    """SIGTERM a subprocess started with ``start_new_session=True`` and its children; SIGKILL after ``timeout_s``."""
    if proc is None or proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def eval_mini_cinc2017(source: Path, rows: list[str], folder: Path) -> dict[str, Any]:
    """``ecgmon eval classifier`` (student vs baseline, ``auto`` aggregation) on the ``name,label`` ``rows``
    of ``source`` copied into ``folder``, laid out like cinc2017; returns the JSON it wrote."""
    from ecgmon.cli.classifier import evaluate

    folder.mkdir()
    for row in rows:
        name = row.split(",")[0]
        for ext in (".hea", ".mat"):
            shutil.copy(source / f"{name}{ext}", folder / f"{name}{ext}")
    (folder / "REFERENCE.csv").write_text("".join(f"{row}\n" for row in rows))
    out = folder.parent / "eval.json"
    evaluate(
        dataset="cinc2017",
        path=folder,
        json_out=out,
        records=None,
        model="student",
        baseline="baseline",
        device="cpu",
        hop_s=5.0,
        bootstrap=0,
        aggregate="auto",
    )
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def wait_for(condition: Callable[[], bool], timeout_s: float, interval_s: float = 0.2, what: str = "condition") -> None:
    """Poll ``condition`` until it is true; fail the test after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")


def subprocess_env(s: Settings, name: str, **overrides: str) -> dict[str, str]:
    """Environment for an ``ecgmon`` subprocess on the test stack with ``s``'s app id and topics.

    Any ``ECGMON_*`` of the calling shell is dropped; ``overrides`` (``ECGMON_...=value``) come last.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("ECGMON_")}
    env.update(
        {
            "ECGMON_STATE_DIR": str(s.state_dir),
            "ECGMON_KAFKA_PORT": str(s.kafka_port),
            "ECGMON_INFLUX_PORT": str(s.influx_port),
            "ECGMON_WEB_PORT": str(s.web_port),
            "ECGMON_PARTITIONS": str(s.partitions),
            "ECGMON_APP_ID": s.app_id,
            "ECGMON_WORKER_NAME": name,
            "ECGMON_TOPIC_WINDOWS": s.topic_windows,
            "ECGMON_TOPIC_PREDICTIONS": s.topic_predictions,
            "ECGMON_TOPIC_RECONSTRUCTIONS": s.topic_reconstructions,
            "ECGMON_TOPIC_ALERTS": s.topic_alerts,
            "ECGMON_TOPIC_DEADLETTER": s.topic_deadletter,
            **overrides,
        }
    )
    return env


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
