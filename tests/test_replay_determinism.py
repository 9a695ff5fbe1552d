"""A replayed window gives the same bits: MC dropout seeded from the window, batch-size-free arithmetic.

The same window goes through the committed models alone, at the start of a batch and deep inside a
larger batch of other windows; its probabilities, uncertainty and reconstruction must be identical
(``np.array_equal``, not close), and so must the whole ``Inference`` result the worker writes. Then
through a real worker: a window sent alone and sent again amid a burst of other patients' windows
gets the same prediction and reconstruction records, and its InfluxDB row is overwritten unchanged.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from kafka import KafkaProducer

from ecgmon.contracts import Prediction, Window, encode_window
from ecgmon.influx import InfluxClient
from ecgmon.settings import Settings
from ecgmon.stack import create_topics, free_port
from models import registry
from models.interfaces import PatientMeta
from streams.inference import Inference, Request, window_seed
from tests.conftest import WORKER_READY_S, make_worker
from tools.delivery import consume_all
from tools.processes import wait_until


def _windows(n: int, seed: int, samples: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(samples) / 100.0
    beats = np.sin(2 * np.pi * rng.uniform(0.8, 2.0, (n, 1)) * t) ** 31  # peaky, ECG-like
    return (beats + rng.normal(0.0, 0.05, (n, samples))).astype(np.float32)


def _placements(x: np.ndarray, others: np.ndarray) -> list[tuple[np.ndarray, int]]:
    """``x`` alone, first of 5, and at row 20 of 37 (a padded third chunk), among other windows."""
    return [(x[None], 0), (np.concatenate([x[None], others[:4]]), 0), (np.insert(others[:36], 20, x, axis=0), 20)]


@pytest.fixture(scope="module")
def classifier() -> Any:
    return registry.load("student", device="cpu", weights=True, mc_mode="head")


@pytest.fixture(scope="module")
def reconstructor() -> Any:
    return registry.load("dual_branch", device="cpu", weights=True, mc_mode="head")


def _same_at_every_placement(
    x: np.ndarray,
    others: np.ndarray,
    seed: int,
    run: Callable[[np.ndarray, list[int]], tuple[np.ndarray, np.ndarray]],
) -> tuple[np.ndarray, np.ndarray]:
    """``run(batch, seeds)`` with ``x`` (seeded ``seed``) at every placement among ``others``: its two
    outputs for ``x`` must be bit-identical every time; returns them."""
    runs = []
    for batch, row in _placements(x, others):
        seeds = [window_seed("other", i) for i in range(len(batch))]
        seeds[row] = seed
        a, b = run(batch, seeds)
        runs.append((a[row], b[row]))
    for a, b in runs[1:]:
        assert np.array_equal(a, runs[0][0]) and np.array_equal(b, runs[0][1])
    return runs[0]


def _classify(model: Any) -> Callable[[np.ndarray, list[int]], tuple[np.ndarray, np.ndarray]]:
    """``(batch, seeds) -> (probs, uncertainty)`` of ``model`` with 8 seeded MC passes."""

    def run(batch: np.ndarray, seeds: list[int]) -> tuple[np.ndarray, np.ndarray]:
        out = model.predict(batch, mc_samples=8, seeds=seeds)
        return out.probs, out.uncertainty

    return run


def _stored_rows(series: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows of a ``SELECT *`` as ``{column: value}`` without empty columns: a field other patients'
    rows carry (and this window lacks, e.g. a P-wave coherence without enough beats) shows as null."""
    columns = series[0]["columns"]
    return [{c: v for c, v in zip(columns, row, strict=True) if v is not None} for row in series[0]["values"]]


@pytest.mark.parametrize("mc_mode", ["head", "full"])
def test_classifier_outputs_do_not_depend_on_the_batch(classifier: Any, mc_mode: str) -> None:
    classifier.mc_mode = mc_mode
    try:
        x = _windows(1, 0, classifier.window_samples)[0]
        others = _windows(40, 1, classifier.window_samples)
        seed = window_seed("p-1", 7)

        probs, _ = _same_at_every_placement(x, others, seed, _classify(classifier))
        # The dropout is live: another seed gives another sample of the same window.
        other = classifier.predict(x[None], mc_samples=8, seeds=[seed + 1])
        assert not np.array_equal(other.probs[0], probs)
    finally:
        classifier.mc_mode = "head"


def test_a_smaller_classifier_chunk_is_replayable_too() -> None:
    """``ECGMON_CLASSIFIER_REPLAY_CHUNK`` trades padding at light loads for speed at full batches; any
    fixed chunk keeps a window's bits independent of its batch."""
    small = registry.load("student", device="cpu", weights=True, mc_mode="head", replay_chunk=4)
    assert small.replay_chunk == 4
    x = _windows(1, 4, small.window_samples)[0]
    others = _windows(40, 5, small.window_samples)
    _same_at_every_placement(x, others, window_seed("p-4", 1), _classify(small))


@pytest.mark.parametrize("mc_mode", ["head", "full"])
def test_reconstruction_does_not_depend_on_the_batch(reconstructor: Any, mc_mode: str) -> None:
    reconstructor.mc_mode = mc_mode
    try:
        x = _windows(1, 2, reconstructor.window_samples)[0]
        others = _windows(40, 3, reconstructor.window_samples)
        seed = window_seed("p-2", 3)

        def run(batch: np.ndarray, seeds: list[int]) -> tuple[np.ndarray, np.ndarray]:
            meta = PatientMeta(np.full(len(batch), 61.0), np.zeros(len(batch)))
            mean, std = reconstructor.reconstruct(batch, meta, samples=4, seeds=seeds)
            return mean, std

        _, std = _same_at_every_placement(x, others, seed, run)
        meta1 = PatientMeta(np.full(1, 61.0), np.zeros(1))
        assert not np.array_equal(reconstructor.reconstruct(x[None], meta1, samples=4, seeds=[seed + 1])[1], std)
    finally:
        reconstructor.mc_mode = "head"


def _window(patient: str, seq: int, rng: np.random.Generator) -> Window:
    t = np.arange(2500) / 250.0
    samples = np.sin(2 * np.pi * rng.uniform(0.9, 1.8) * t) ** 31 + rng.normal(0.0, 0.03, 2500)
    return Window(
        patient_id=patient, device_id="d", seq=seq, t_start_ns=1_700_000_000_000_000_000 + seq * 10**10,
        fs_hz=250.0, samples=samples, age=55.0, sex=1,
    )  # fmt: skip


def _comparable(result: Any) -> tuple[Any, ...]:
    """What the worker writes for a window: its prediction record, InfluxDB lines as rendered, reconstruction."""
    lines = [line if isinstance(line, str) else line.lines() for line in result.lines]
    return (result.prediction.to_bytes(), lines, result.reconstruction)


def test_inference_gives_a_window_the_same_outputs_in_any_batch() -> None:
    s = Settings(mc_samples=8, reconstruction_policy="every", torch_threads=1)
    engine = Inference.load(s)
    rng = np.random.default_rng(5)
    window = _window("p-replay", 11, rng)
    others = [_window(f"p{i}", i, rng) for i in range(40)]
    results = []
    for batch, row in ([window], 0), ([*others[:3], window], 3), ([*others[:20], window, *others[20:]], 20):
        requests = [Request(w, True, 0.0) for w in batch]
        results.append(_comparable(engine(requests)[row]))
    assert results[1] == results[0] and results[2] == results[0]


def test_window_seed_is_stable_and_distinct() -> None:
    assert window_seed("p-1", 7) == window_seed("p-1", 7)
    assert len({window_seed("p-1", i) for i in range(100)} | {window_seed("p-2", i) for i in range(100)}) == 200
    assert 0 <= window_seed("x" * 64, 2**40) < 2**63


# --- through the real worker ---------------------------------------------------------------------

REPLAY_ENV = {
    "ECGMON_MODEL_WEIGHTS": "1",  # the committed weights: their dropout is what must replay
    "ECGMON_MC_SAMPLES": "8",
    "ECGMON_RECONSTRUCTION_POLICY": "every",
}


def _records(s: Settings, topic: str) -> list[tuple[bytes | None, bytes]]:
    return [(k, v) for k, v, _, _ in consume_all(s, topic, idle_ms=1500)]


@pytest.mark.integration
def test_a_window_replayed_through_the_worker_in_another_batch_is_stored_the_same(
    stack_settings: Settings, influx: InfluxClient, tmp_path: Path
) -> None:
    s = stack_settings.namespaced(f"rp{os.getpid()}x{free_port()}").model_copy(update={"web_port": free_port()})
    create_topics(s.bootstrap, s.topics(), s.partitions)
    worker = make_worker(s, s.app_id, tmp_path, **REPLAY_ENV)
    rng = np.random.default_rng(9)
    target = _window(f"{s.app_id}-target", 4, rng)
    crowd = [_window(f"{s.app_id}-c{i}", i, rng) for i in range(24)]
    producer = KafkaProducer(bootstrap_servers=s.bootstrap, linger_ms=50)
    query = f"SELECT * FROM prediction WHERE patient_id = '{target.patient_id}'"
    try:
        worker.start().wait_ready(WORKER_READY_S)
        # First pass: the window alone (a batch of one).
        producer.send(s.topic_windows, key=target.patient_id.encode(), value=encode_window(target))
        producer.flush()
        wait_until(lambda: bool(influx.query(query)), timeout_s=120, interval_s=0.5, what="the first prediction")
        first_row = _stored_rows(influx.query(query))
        # The replay: the same window again, in the middle of a burst of other patients' windows.
        for w in [*crowd[:12], target, *crowd[12:]]:
            producer.send(s.topic_windows, key=w.patient_id.encode(), value=encode_window(w))
        producer.flush()

        def replayed() -> bool:
            preds = [Prediction.from_bytes(v) for _, v in _records(s, s.topic_predictions)]
            return len(preds) == 2 + len(crowd)

        wait_until(replayed, timeout_s=120, interval_s=1.0, what="the replayed window and the crowd predicted")
        key = target.patient_id.encode()
        preds = [v for k, v in _records(s, s.topic_predictions) if k == key]
        recs = [v for k, v in _records(s, s.topic_reconstructions) if k == key]
        assert len(preds) == 2 and len(recs) == 2
        assert preds[0] == preds[1], "a replayed window must get the same prediction, bit for bit"
        assert recs[0] == recs[1], "and the same reconstruction"
        assert Prediction.from_bytes(preds[0]).uncertainty > 0.0  # MC dropout was live
        wait_until(lambda: _stored_rows(influx.query(query)) == first_row, timeout_s=30, what="the stored row")
        assert len(first_row) == 1  # overwritten in place: one row

        def batched() -> bool:  # the burst really ran in batches of several windows
            rows = influx.query(f"SELECT max(batch_size_mean) FROM pipeline WHERE worker = '{s.app_id}'")
            return bool(rows) and (rows[0]["values"][0][1] or 0) > 1

        wait_until(batched, timeout_s=30, interval_s=1.0, what="a health point with batches of several windows")
    finally:
        producer.close()
        worker.stop()
