"""Shared fixtures: one real broker and one real influxd per test run, on free ports.

Never the default ports, so a developer's running stack is never touched.
"""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ecgmon import stack
from ecgmon.influx import InfluxClient
from ecgmon.settings import Settings
from tools.processes import WorkerProcess, stack_env

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def eval_mini_cinc2017(source: Path, rows: list[str], folder: Path) -> dict[str, Any]:
    """``ecgmon eval classifier`` (student vs baseline, ``auto`` aggregation) on the ``name,label`` ``rows``
    of ``source`` copied into ``folder``, laid out like cinc2017; returns the JSON it wrote."""
    from tools.cli.classifier import evaluate

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


TEST_WORKER_ENV = {
    "ECGMON_MODEL_WEIGHTS": "0",  # untrained models: these tests check wiring and delivery, not accuracy
    "ECGMON_MC_SAMPLES": "1",
    "ECGMON_TORCH_THREADS": "1",
    "ECGMON_RECONSTRUCTION_POLICY": "never",
    "ECGMON_HEALTH_INTERVAL_S": "1",
    "ECGMON_LOG_LEVEL": "info",
    "ECGMON_INFLUX_RETRY_MAX_S": "1",
    "ECGMON_INFLUX_BUFFER_POINTS": "20000",  # an outage fills it in seconds: back-pressure is exercised
    # Tansu makes a join wait about the rebalance timeout, and forgets a stopped member only after
    # its session times out: short ones keep restart and takeover tests short.
    "ECGMON_KAFKA_SESSION_TIMEOUT_S": "10",
    "ECGMON_KAFKA_REBALANCE_TIMEOUT_S": "10",
    "ECGMON_SIM_ARTEFACT_RATE_PER_H": "90",  # lead-off and noise spans: technical alerts open and resolve
}
"""What every test worker (and its simulator) runs with, unless a test overrides it."""

WORKER_READY_S = 150.0
"""How long a test waits for a worker to join its group (models load and Tansu's join wait on 2 shared cores)."""


def make_worker(s: Settings, name: str, log_dir: Path, **overrides: str) -> WorkerProcess:
    """An ``ecgmon worker`` (not started) on the test stack with ``s``'s app id and topics.

    Nothing of the calling shell's ``ECGMON_*`` reaches it; ``TEST_WORKER_ENV``, then ``overrides``.
    """
    return WorkerProcess(
        s, log_dir / f"{name}.log", name=name, inherit=False, overrides={**TEST_WORKER_ENV, **overrides}
    )


def sibling_env(s: Settings, name: str, **overrides: str) -> dict[str, str]:
    """The environment of another ``ecgmon`` subprocess (a simulator) beside ``make_worker``."""
    return stack_env(s, name, inherit=False, overrides={**TEST_WORKER_ENV, **overrides})


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
