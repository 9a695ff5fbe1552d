"""The gateway through the real broker: exact replay, truth, faults, pacing and Ctrl-C (issue 6)."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import wfdb
from aiokafka import AIOKafkaConsumer

from ecgmon import stack
from ecgmon.contracts import Window, decode_window
from ecgmon.settings import Settings
from simulators.run import SimulateOptions, simulate

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


def _settings(base: Settings, prefix: str) -> Settings:
    settings = base.model_copy(update={"topic_windows": f"{prefix}.windows"})
    stack.create_topics(settings.bootstrap, [settings.topic_windows], settings.partitions)
    return settings


async def _consume(settings: Settings, n: int, timeout_s: float = 60.0) -> list[tuple[str, int, Window]]:
    """(key, partition, window) of the first ``n`` messages of the windows topic."""
    consumer = AIOKafkaConsumer(
        settings.topic_windows, bootstrap_servers=settings.bootstrap, auto_offset_reset="earliest",
        group_id=None, enable_auto_commit=False,
    )
    await consumer.start()
    out: list[tuple[str, int, Window]] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(out) < n and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=1000)
            for tp, records in batch.items():
                for r in records:
                    out.append((r.key.decode(), tp.partition, decode_window(r.value)))
    finally:
        await consumer.stop()
    return out


def test_cinc2017_replay_arrives_within_0_002_mv_with_consecutive_seq(
    stack_settings: Settings, topic_prefix: str, data_dir: Path
) -> None:
    settings = _settings(stack_settings, topic_prefix)
    record = data_dir / "cinc2017" / "A00005"
    source = wfdb.rdrecord(str(record)).p_signal[:, 0]
    start_ns = 1_700_000_000_000_000_000
    opts = SimulateOptions(source="replay", path=record, speed=0.0, start_ns=start_ns)
    summary: Any = asyncio.run(simulate(settings, opts))
    n = source.size // 3000
    assert summary["windows"] == n and summary["errors"] == 0 and summary["acked"] == n
    got = asyncio.run(_consume(settings, n))
    assert len(got) == n
    windows = sorted((w for _, _, w in got), key=lambda w: w.seq)
    assert [w.seq for w in windows] == list(range(n))
    assert {key for key, _, _ in got} == {"cinc2017-A00005"}
    assert len({p for _, p, _ in got}) == 1  # keyed by patient: one partition, in order
    steps = np.diff([w.t_start_ns for w in windows])
    assert np.all(steps == 3000 * 1_000_000_000 // 300)  # exactly one 10 s hop at 300 Hz
    assert abs(windows[0].t_start_ns - start_ns) < 200_000_000  # the device clock error is small
    for w in windows:
        assert w.fs_hz == 300.0 and w.lead == "I" and w.truth == "AF"
        assert np.max(np.abs(w.samples - source[w.seq * 3000 : (w.seq + 1) * 3000])) <= 0.002
        assert np.max(np.abs(w.samples - source[w.seq * 3000 : (w.seq + 1) * 3000])) <= 0.0005


def test_synthetic_truth_duplicates_and_reordering_arrive_as_counted(
    stack_settings: Settings, topic_prefix: str
) -> None:
    settings = _settings(stack_settings, topic_prefix)
    opts = SimulateOptions(patients=6, duration_s=80.0, speed=0.0, seed=3, dup_prob=0.2, reorder_prob=0.2)
    summary: Any = asyncio.run(simulate(settings, opts))
    per = summary["per_patient"]
    dups = sum(p["duplicates"] for p in per.values())
    reordered = sum(p["reordered"] for p in per.values())
    assert summary["windows"] == 6 * 8 and dups > 0 and reordered > 0
    assert summary["messages"] == summary["windows"] + dups
    got = asyncio.run(_consume(settings, summary["messages"]))
    assert len(got) == summary["messages"]
    by_patient: dict[str, list[int]] = defaultdict(list)
    for key, _, w in got:
        assert w.patient_id == key and w.truth and w.fs_hz == settings.sim_fs_hz and w.samples.size == 2500
        assert w.age is not None and w.sex in (0, 1)
        by_patient[key].append(w.seq)
    out_of_order = 0
    for pid, seqs in by_patient.items():
        assert sorted(set(seqs)) == list(range(8))
        assert len(seqs) - 8 == per[pid]["duplicates"]
        out_of_order += sum(1 for a, b in itertools.pairwise(seqs) if b < a)
    assert out_of_order >= 1
    truths = {t for p in per.values() for t in p["truth"]}
    assert truths and all(sum(p["truth"].values()) == 8 for p in per.values())


def test_pacing_within_10_percent_of_the_asked_rate(stack_settings: Settings, topic_prefix: str) -> None:
    settings = _settings(stack_settings, topic_prefix)
    opts = SimulateOptions(patients=30, duration_s=100.0, speed=30.0, seed=1)
    summary: Any = asyncio.run(simulate(settings, opts))
    asked = 30 * 30.0 / settings.hop_s  # 90 windows per second
    assert summary["asked_rate_windows_per_s"] == pytest.approx(asked)
    assert summary["windows"] == 300
    assert summary["rate_windows_per_s"] == pytest.approx(asked, rel=0.10)


def test_ltafdb_patients_stream_with_annotated_truth(
    stack_settings: Settings, topic_prefix: str, data_dir: Path
) -> None:
    settings = _settings(stack_settings, topic_prefix)
    opts = SimulateOptions(source="ltafdb", path=data_dir / "ltafdb", records=("01",), start_h=1.0, duration_s=60.0,
                           speed=0.0)
    summary: Any = asyncio.run(simulate(settings, opts))
    assert summary["windows"] == 6 and "synthetic morphology on real timing" in summary["morphology"]
    got = asyncio.run(_consume(settings, 6))
    assert [w.seq for _, _, w in sorted(got, key=lambda g: g[2].seq)] == list(range(6))
    assert all(w.truth in ("N", "AF", "AB", "SVTA", "BRADY", "VT", "BIGEMINY", "TRIGEMINY", "IVR") for _, _, w in got)


def test_cli_ctrl_c_stops_cleanly_and_writes_the_summary(
    stack_settings: Settings, topic_prefix: str, tmp_path: Path
) -> None:
    settings = _settings(stack_settings, topic_prefix)
    out = tmp_path / "summary.json"
    env = {**os.environ, "ECGMON_KAFKA_BOOTSTRAP": settings.bootstrap, "ECGMON_TOPIC_WINDOWS": settings.topic_windows}
    cmd = [sys.executable, "-m", "tools.cli.main", "simulate", "--patients", "40", "--speed", "2", "--json", str(out)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        got = asyncio.run(_consume(settings, 3, timeout_s=60))  # it is running: windows arrive
        assert len(got) >= 3
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr
    summary = json.loads(out.read_text())
    assert summary["interrupted"] is True and summary["windows"] >= 3 and summary["errors"] == 0
    assert summary["acked"] == summary["messages"]
    assert json.loads(stdout.strip().splitlines()[-1])["windows"] == summary["windows"]
