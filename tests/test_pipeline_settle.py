"""``streams.pipeline.Pipeline``'s ordering, settlement, retries, revocation and drops, without a broker.

The pipeline runs for real (its ``complete`` and ``settle`` tasks, the real alert engine and offset
ledger); inference, the InfluxDB sink and Kafka publishing are fakes whose every write stays pending
until the test says it succeeded or failed. The property test replays random interleavings of
consume, inference, write success, write failure (retried by the pipeline), revoke, reassign, crash,
commit and records Faust reads but never hands over (re-read when the ledger reports the gap),
checking after each step that the committed offset never passes a window consumed and not yet
settled, that every window below it was written and that each partition's windows are accepted in
offset order without a gap; at the end every window was written and no record was acknowledged twice
by one consumer generation.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import streams.pipeline as pipeline_module
from ecgmon.contracts import Prediction, Window, encode_window
from ecgmon.errors import SinkError
from ecgmon.settings import Settings
from streams.alerts import AlertEngine
from streams.batching import BatchStats
from streams.health import Health
from streams.inference import Request, Result
from streams.ingress import Record
from streams.offsets import OffsetLedger
from streams.pipeline import Incoming, Pipeline

TOPIC = "ecg.windows"
PARTITIONS = 2
RECORDS = 6  # per partition
SETTINGS = Settings(queue_windows=64, max_batch=8, influx_retry_max_s=0.001)


def _window(patient: str, seq: int) -> Window:
    return Window(
        patient_id=patient,
        device_id="d",
        seq=seq,
        t_start_ns=1_700_000_000_000_000_000 + seq * 10**10,
        fs_hz=250.0,
        samples=np.sin(np.arange(2500) / 20.0),
    )


def _log(partition: int) -> list[Record]:
    """One patient per partition; the third record of partition 1 is garbage (a dead letter)."""
    patient = f"p{partition}"
    out = []
    for offset in range(RECORDS):
        value = b"garbage" if (partition, offset) == (1, 2) else encode_window(_window(patient, offset))
        out.append(Record(patient.encode(), value, TOPIC, partition, offset))
    return out


LOGS = {p: _log(p) for p in range(PARTITIONS)}


class FakeExecutor:
    """``submit`` parks the request; ``run`` answers every parked one (what the inference thread does)."""

    def __init__(self) -> None:
        self.parked: list[tuple[Request, asyncio.Future[Result]]] = []
        self.stats = BatchStats()
        self.queue_depth = 0

    async def submit(self, request: Request) -> asyncio.Future[Result]:
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self.parked.append((request, future))
        return future

    def run(self) -> None:
        for request, future in self.parked:
            if not future.done():
                w = request.window
                prediction = Prediction(
                    patient_id=w.patient_id, seq=w.seq, t_end_ns=w.t_end_ns, label="N", confidence=0.9,
                    uncertainty=0.1, probs={"N": 0.9, "A": 0.05, "O": 0.04, "~": 0.01}, hr_bpm=60.0, sqi=0.9,
                    model="fake",
                )  # fmt: skip
                future.set_result(Result(w, prediction, 1.0, False, [f"prediction {w.patient_id} {w.seq}"]))
        self.parked.clear()


@dataclass
class Outputs:
    """The InfluxDB sink and the Kafka producer: each write waits for the test's verdict."""

    pending: list[tuple[tuple[Any, ...], asyncio.Future[None]]] = field(default_factory=list)
    stored: Counter[tuple[Any, ...]] = field(default_factory=Counter)
    buffered_points = 0

    async def write(self, lines: list[Any]) -> asyncio.Future[None]:
        return self._park(("influx", *lines))

    async def publish(self, output: str, key: bytes | str | None, value: bytes) -> asyncio.Future[None]:
        return self._park(("kafka", output, key, value))

    def _park(self, what: tuple[Any, ...]) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.pending.append((what, future))
        return future

    def answer(self, i: int, ok: bool) -> None:
        what, future = self.pending.pop(i % len(self.pending))
        if ok:
            self.stored[what] += 1
            future.set_result(None)
        else:
            future.set_exception(SinkError("refused for now", retriable=True))


class Store:
    def __init__(self) -> None:
        self.memory: dict[str, dict[str, Any] | None] = {}
        self.changelog: list[tuple[str, int]] = []

    def get(self, patient_id: str) -> dict[str, Any] | None:
        return self.memory.get(patient_id)

    def set(self, patient_id: str, state: dict[str, Any] | None) -> None:
        self.memory[patient_id] = state

    def persist(self, patient_id: str, state: dict[str, Any], partition: int) -> None:
        self.changelog.append((patient_id, partition))


class Worker:
    """One worker process: a pipeline, its ledger and the consumer's positions; ``crash`` loses it all."""

    def __init__(self, outputs: Outputs, committed: dict[int, int]) -> None:
        self.outputs, self.committed = outputs, committed
        self.ledger = OffsetLedger()
        self.executor = FakeExecutor()
        self.pipeline = Pipeline(
            SETTINGS,
            executor=self.executor,  # type: ignore[arg-type]
            engine=AlertEngine(SETTINGS),
            sink=outputs,  # type: ignore[arg-type]
            publish=outputs.publish,  # type: ignore[arg-type]
            store=Store(),
            health=Health("test"),
            ledger=self.ledger,
        )
        self.position: dict[int, int] = {}
        self.generation: dict[int, int] = {}
        self.acks: Counter[tuple[int, int, int]] = Counter()  # (partition, generation, offset)
        self.consumed: dict[int, set[int]] = {}  # offsets the pipeline accepted, per partition generation
        self.accepted: dict[int, list[int]] = {}
        self.tasks = [asyncio.ensure_future(self.pipeline.complete()), asyncio.ensure_future(self.pipeline.settle())]

    def assign(self, p: int) -> None:
        if p not in self.position:
            self.ledger.expect([(TOPIC, p)])  # what the transport does on assignment, then after its seek:
            self.ledger.position((TOPIC, p), self.committed[p])
            self.position[p] = self.committed[p]
            self.generation[p] = self.generation.get(p, 0) + 1
            self.consumed[p] = set()
            self.accepted[p] = []

    def revoke(self, p: int) -> None:
        if p in self.position:
            self.ledger.revoke([(TOPIC, p)])  # the consumer first (``streams.transport``), then the app signal
            self.pipeline.revoke({(TOPIC, p)})
            del self.position[p]

    async def consume(self, p: int) -> None:
        if p in self.position and self.position[p] < RECORDS:
            record = LOGS[p][self.position[p]]
            self.position[p] += 1
            key = (p, self.generation[p], record.offset)

            def ack(key: tuple[int, int, int] = key) -> None:
                self.acks[key] += 1

            dropped = self.pipeline.dropped_total
            await self.pipeline.ingest(Incoming(record, ack, time.monotonic(), self.pipeline.epoch))
            if self.pipeline.dropped_total == dropped:  # accepted: the partition's next record, in order
                done = self.accepted[p]
                assert record.offset == (done[-1] + 1 if done else self.committed[p]), (p, record.offset, done)
                done.append(record.offset)
                self.consumed[p].add(record.offset)

    def skip(self, p: int) -> None:
        """A record Faust reads but never hands to the pipeline (dropped around a rebalance, a stale fetch)."""
        if p in self.position and self.position[p] < RECORDS:
            self.position[p] += 1

    def reread(self, p: int) -> None:
        """What the transport does at its commit timer: read again from a hole or an idle gap."""
        if p in self.position:
            gap = self.ledger.hole((TOPIC, p))
            if gap is None:
                gap = self.ledger.idle_gap((TOPIC, p), self.position[p] - 1)
            if gap is not None:
                self.position[p] = gap

    def commit(self, p: int) -> None:
        self.reread(p)
        offset = self.ledger.committable((TOPIC, p))
        if offset is not None and offset > self.committed[p]:
            self.committed[p] = offset
            self.ledger.committed((TOPIC, p), offset)

    def unsettled(self, p: int) -> set[int]:
        """Offsets consumed in the partition's current generation and not yet acknowledged."""
        if p not in self.position:
            return set()
        return {o for o in self.consumed[p] if not self.acks[(p, self.generation[p], o)]}

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


async def _quiet() -> None:
    for _ in range(30):
        await asyncio.sleep(0)


def _written(outputs: Outputs, p: int, offset: int) -> bool:
    """Every output of the window is stored: its point in InfluxDB and its prediction in Kafka (or its dead letter)."""
    if (p, offset) == (1, 2):
        return any(what[:2] == ("kafka", "deadletter") for what in outputs.stored)
    in_kafka = any(
        what[:2] == ("kafka", "predictions") and Prediction.from_bytes(what[3]).seq == offset and what[2] == f"p{p}"
        for what in outputs.stored
    )
    return in_kafka and outputs.stored[("influx", f"prediction p{p} {offset}")] > 0


KINDS = 3 * ["consume"] + 3 * ["write_ok"] + 2 * ["write_fail"] + 2 * ["commit"]
KINDS += ["stall_inference", "infer", "revoke", "reassign", "crash", "skip"]
ACTIONS = st.tuples(st.sampled_from(KINDS), st.integers(0, 50), st.integers(1, 4))
"""(action, partition or which write, how many): the common steps drawn more often than faults."""


async def _play(actions: list[tuple[str, int, int]]) -> None:
    outputs = Outputs()
    committed = dict.fromkeys(range(PARTITIONS), 0)
    worker = Worker(outputs, committed)
    for p in range(PARTITIONS):
        worker.assign(p)
    stalled = False  # inference answers at once unless stalled (then windows wait in the executor)
    for kind, a, b in actions:
        if kind == "consume":
            for _ in range(b):
                await worker.consume(a % PARTITIONS)
        elif kind == "stall_inference":
            stalled = True
        elif kind == "infer":
            stalled = False
        elif kind in ("write_ok", "write_fail"):
            for _ in range(b):
                if outputs.pending:
                    outputs.answer(a, ok=kind == "write_ok")
        elif kind == "revoke":
            worker.revoke(a % PARTITIONS)
        elif kind == "reassign":
            worker.assign(a % PARTITIONS)
        elif kind == "crash":
            await worker.stop()
            outputs.pending.clear()  # whatever was not answered is lost with the process
            worker = Worker(outputs, committed)
        elif kind == "commit":
            worker.commit(a % PARTITIONS)
        elif kind == "skip":
            worker.skip(a % PARTITIONS)
        await _quiet()
        if not stalled:
            worker.executor.run()
            await _quiet()
        for p in range(PARTITIONS):
            unsettled = worker.unsettled(p)
            assert not unsettled or committed[p] <= min(unsettled), (p, committed[p], unsettled)
            lost = [o for o in range(committed[p]) if not _written(outputs, p, o)]
            assert not lost, f"partition {p}: committed {committed[p]} past unwritten {lost}"
        assert all(n == 1 for n in worker.acks.values()), "a record acknowledged twice in one generation"
    # Drain: the partitions read again from their committed offsets, every write answered.
    for p in range(PARTITIONS):
        worker.revoke(p)
        worker.assign(p)
        for _ in range(RECORDS):
            await worker.consume(p)
    for _ in range(10 * RECORDS * PARTITIONS):
        worker.executor.run()
        while outputs.pending:
            outputs.answer(0, ok=True)
        await _quiet()
    for p in range(PARTITIONS):
        worker.commit(p)
        assert committed[p] == RECORDS
        assert all(_written(outputs, p, o) for o in range(RECORDS))
    await worker.stop()


@pytest.fixture(autouse=True)
def _no_retry_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pipeline_module, "_FIRST_RETRY_S", 0.0)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(st.lists(ACTIONS, min_size=10, max_size=80))
def test_random_interleavings_never_commit_past_an_unwritten_window(actions: list[tuple[str, int, int]]) -> None:
    asyncio.run(_play(actions))


async def _scenario(failing: bool) -> tuple[Worker, Outputs, dict[int, int]]:
    outputs = Outputs()
    committed = dict.fromkeys(range(PARTITIONS), 0)
    worker = Worker(outputs, committed)
    worker.assign(0)
    for _ in range(3):
        await worker.consume(0)
    worker.executor.run()
    await _quiet()
    # Window 0's InfluxDB write fails; windows 1 and 2 are written.
    for what, future in list(outputs.pending):
        ok = not (failing and what == ("influx", "prediction p0 0"))
        outputs.answer(outputs.pending.index((what, future)), ok)
    await _quiet()
    return worker, outputs, committed


def test_a_failed_write_is_sent_again_and_holds_the_commit_until_written() -> None:
    async def run() -> None:
        worker, outputs, committed = await _scenario(failing=True)
        worker.commit(0)
        assert committed[0] == 0 and worker.unsettled(0) == {0, 1, 2}  # settled in order: 1 and 2 wait for 0
        assert [what for what, _ in outputs.pending] == [("influx", "prediction p0 0")]  # sent again
        outputs.answer(0, ok=True)
        await _quiet()
        worker.commit(0)
        assert committed[0] == 3 and worker.unsettled(0) == set()
        assert outputs.stored[("influx", "prediction p0 0")] == 1
        await worker.stop()

    asyncio.run(run())


def test_windows_of_a_revoked_partition_are_dropped_and_replayed_from_the_commit() -> None:
    async def run() -> None:
        worker, outputs, committed = await _scenario(failing=True)
        worker.revoke(0)
        await _quiet()
        outputs.answer(0, ok=True)  # the retried write lands after the revocation: nothing is settled
        await _quiet()
        assert worker.acks == Counter() and worker.pipeline.dropped_total == 3
        worker.assign(0)
        assert worker.position[0] == committed[0] == 0  # replayed, not skipped
        for _ in range(3):
            await worker.consume(0)
        worker.executor.run()
        await _quiet()
        while outputs.pending:
            outputs.answer(0, ok=True)
        await _quiet()
        worker.commit(0)
        assert committed[0] == 3
        await worker.stop()

    asyncio.run(run())


def test_a_refusal_for_good_settles_the_window() -> None:
    async def run() -> None:
        outputs = Outputs()
        worker = Worker(outputs, {0: 0, 1: 0})
        worker.assign(0)
        await worker.consume(0)
        worker.executor.run()
        await _quiet()
        for _, future in outputs.pending:
            future.set_exception(SinkError("InfluxDB answered 400: field type conflict", retriable=False))
        outputs.pending.clear()
        await _quiet()
        worker.commit(0)
        assert worker.committed[0] == 1
        await worker.stop()

    asyncio.run(run())
