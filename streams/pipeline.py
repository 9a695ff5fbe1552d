"""The order of the steps for every window, as plain code the Faust agent calls (no Faust here).

``ingest(incoming)`` runs in the agent, in consumption order: decode or dead-letter, decide on
reconstruction and on live waveform points, hand the window to the bounded executor (waits when
full), and queue the pending result in an ordered, bounded in-flight queue. ``complete()`` runs as
one task and takes the in-flight windows in the same order: it waits for the window's inference result, steps the
patient's alert state (``AlertEngine.step``; the new state is kept in memory at once, for the
patient's next window), publishes the prediction, reconstruction and alerts to Kafka and hands the
InfluxDB lines to the sink. ``settle()``, a second task, takes the completed windows in the same
order again and waits until the sink has stored the window's points and Kafka has accepted its
outputs (an output that failed for a reason a retry can fix is sent again, with back-off, until it
is written or the window's partition is revoked); only then does it write the patient's new state
to the table's changelog (the window's own partition, so the changelog matches the source topic)
and settle the record.

Every record is claimed on the ``OffsetLedger`` (``streams.offsets``) when ``ingest`` takes it and
settled there once written; the consumer commits only what the ledger allows, so the committed
offset never passes a window in flight, waiting for a retry, or dropped on a revocation, and the
changelog never holds a state whose alerts were not yet written: a crash (kill -9) replays every
window after the last committed offset from the last persisted state, and the replay produces the
same predictions (inference seeds its MC dropout from the window, ``streams.inference``) and the
same alerts with the same ids and timestamps (at-least-once; InfluxDB points are keyed by
measurement, tags and time, so a replayed window overwrites itself and ends as one row; Kafka
consumers de-duplicate alerts by ``alert_id``). An alert open before the crash is in the restored
state, so it is neither re-opened nor lost.

Rebalance: when partitions are revoked (a worker joined, left or died), the windows of those
partitions still in flight are dropped: not stepped, not written, not acknowledged, and the
in-memory state of their patients goes back to the last persisted state. Their new owner (or this
worker, if the partition comes back) replays them from the committed offset. This keeps the
revocation short (no waiting for up to ``queue_windows`` windows of inference, nor for an InfluxDB
outage to end), and only the partition's owner ever writes its changelog.

Because one task completes windows in consumption order, a patient's windows (one key, one
partition) always reach the alert engine in order.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal, Protocol

from ecgmon import points
from ecgmon.contracts import Alert, DeadLetter
from ecgmon.settings import Settings
from streams.alerts import AlertEngine, Observation, open_alerts
from streams.batching import BatchExecutor
from streams.health import Health
from streams.inference import Request, Result
from streams.ingress import Record, dead_letter, decode_or_dead_letter
from streams.offsets import Claim, OffsetLedger
from streams.reconstruction_policy import live_waveform, should_reconstruct
from streams.sink import InfluxSink

log = logging.getLogger(__name__)

_FIRST_RETRY_S = 0.1

Output = Literal["predictions", "reconstructions", "alerts", "deadletter"]
Publish = Callable[[Output, bytes | str | None, bytes], Awaitable["asyncio.Future[Any]"]]
"""Sends one record (key, value) to an output topic; returns a future that resolves when Kafka has it."""


class StateStore(Protocol):
    """Per-patient alert state (a Faust table in the worker, a dict in tests)."""

    def get(self, patient_id: str) -> dict[str, Any] | None:
        """The patient's state, or None before the first window."""
        ...

    def set(self, patient_id: str, state: dict[str, Any] | None) -> None:
        """Keep the state in memory (None forgets the patient); nothing is persisted yet."""
        ...

    def persist(self, patient_id: str, state: dict[str, Any], partition: int) -> None:
        """Write the state to the changelog; ``partition`` is the source record's, so it lands alongside."""
        ...


@dataclass(frozen=True)
class Incoming:
    """A consumed record and how to acknowledge it to Faust once settled (the ledger decides the commit).

    ``epoch`` is ``Pipeline.epoch`` when the record was consumed: a later revocation of its
    partition makes the record stale (see ``Pipeline.revoke``).
    """

    record: Record
    ack: Callable[[], Any]
    t_in: float
    epoch: int = 0


@dataclass
class _Output:
    """One output of a window: its write in progress, and how to send it again if that fails."""

    future: asyncio.Future[Any]
    resend: Callable[[], Awaitable[asyncio.Future[Any]]]


@dataclass
class _Done:
    """A completed window waiting for its outputs before its state is persisted and it is settled."""

    incoming: Incoming
    patient_id: str
    state: dict[str, Any] | None
    outputs: list[_Output]
    claim: Claim | None = None


def retry_needed(future: asyncio.Future[Any]) -> BaseException | None:
    """The failure of a finished output write that a retry can fix (cancelled, or a retriable error), else None.

    A refusal that no retry can fix (``retriable`` False: InfluxDB rejected the points themselves, Kafka
    refused the record as too large) counts as done: it is logged and the window is settled anyway.
    """
    if future.cancelled():
        return asyncio.CancelledError("the write was cancelled")
    exc = future.exception()
    if exc is not None and getattr(exc, "retriable", True):
        return exc
    return None


def _record_name(record: Record) -> str:
    return f"{record.topic}[{record.partition}]@{record.offset}"


class Pipeline:
    """Routes windows through the executor, the alert engine and the outputs, keeping order."""

    def __init__(
        self,
        settings: Settings,
        *,
        executor: BatchExecutor[Request, Result],
        engine: AlertEngine,
        sink: InfluxSink,
        publish: Publish,
        store: StateStore,
        health: Health,
        ledger: OffsetLedger | None = None,
    ) -> None:
        self.settings = settings
        self.ledger = ledger
        """The commit rule (``streams.offsets``); None: every record is processed and nothing is claimed."""
        self.executor = executor
        self.engine = engine
        self.sink = sink
        self.publish = publish
        self.store = store
        self.health = health
        self._inflight: asyncio.Queue[tuple[Incoming, str, asyncio.Future[Result] | DeadLetter, Claim | None]] = (
            asyncio.Queue(maxsize=settings.queue_windows + settings.max_batch)
        )
        self._unsettled: asyncio.Queue[_Done] = asyncio.Queue(maxsize=settings.queue_windows + settings.max_batch)
        self.epoch = 0
        self._revoked_at: dict[tuple[str, int], int] = {}
        self._persisted: dict[str, tuple[dict[str, Any] | None, int, int]] = {}
        """patient -> (last persisted state, source partition, windows stepped but not yet persisted)."""
        self.dropped_total = 0
        self.rebalances = 0

    @property
    def inflight(self) -> int:
        """Windows submitted and not yet settled (completed, written, acknowledged)."""
        return self._inflight.qsize() + self._unsettled.qsize()

    def stale(self, incoming: Incoming) -> bool:
        """True when the record's partition was revoked after it was consumed."""
        record = incoming.record
        return self._revoked_at.get((record.topic, record.partition), -1) > incoming.epoch

    def revoke(self, partitions: set[tuple[str, int]]) -> None:
        """Partitions were revoked: their in-flight windows become stale and are dropped unwritten.

        The patients of those partitions go back to their last persisted state in memory, so if a
        partition comes back to this worker, the replayed windows step from the same state the
        changelog holds (a new owner restores exactly that state from the changelog).
        """
        if not partitions:
            return
        self.rebalances += 1
        self.epoch += 1
        for tp in partitions:
            self._revoked_at[tp] = self.epoch
        numbers = {p for _, p in partitions}
        for patient_id, (state, partition, _) in list(self._persisted.items()):
            if partition in numbers:
                self.store.set(patient_id, state)
                del self._persisted[patient_id]
        log.warning(
            "Partitions revoked: %s; their windows in flight are dropped and replayed by the owner.",
            ", ".join(f"{t}[{p}]" for t, p in sorted(partitions)),
        )

    async def ingest(self, incoming: Incoming) -> None:
        """Claim one record on the ledger, decode it and hand it on; waits when the executor or queue is full.

        A record the ledger does not accept is dropped unprocessed: its partition was revoked since
        it was consumed (the owner reads it again), or it is not the partition's next record (a
        duplicate, or ahead of one Faust skipped: the consumer reads the partition again from there).
        """
        record = incoming.record
        if self.stale(incoming):  # before claiming: a stale record must never take the new generation's turn
            self.dropped_total += 1
            return
        claim = None
        if self.ledger is not None:
            claim = self.ledger.consume((record.topic, record.partition), record.offset)  # before any await
            if claim is None:
                self.dropped_total += 1
                return
        s = self.settings
        decoded = decode_or_dead_letter(
            incoming.record, max_bytes=s.max_message_bytes, keep_bytes=s.deadletter_keep_bytes
        )
        if isinstance(decoded, DeadLetter):
            # Queued behind the windows consumed before it and settled in the same order (its claim holds
            # the commit like any window's until the dead letter is in Kafka).
            await self._inflight.put((incoming, "", decoded, claim))
            return
        window = decoded
        open_types = open_alerts(self.store.get(window.patient_id))
        reconstruct = should_reconstruct(
            s.reconstruction_policy,
            seq=window.seq,
            every_k=s.reconstruction_every_k,
            open_alert_types=open_types,
        )
        live = live_waveform(s.live_waveform, open_alert_types=open_types)
        future = await self.executor.submit(Request(window, reconstruct, incoming.t_in, live=live))
        await self._inflight.put((incoming, window.patient_id, future, claim))

    async def complete(self) -> None:
        """Complete in-flight windows in order, forever (run it as one task).

        A window whose inference or output fails is dead-lettered with the reason; the loop goes on.
        A window whose partition was revoked since it was consumed is dropped (see ``revoke``).
        """
        while True:
            incoming, patient_id, pending, claim = await self._inflight.get()
            if isinstance(pending, DeadLetter):
                await self._dead_letter(incoming, pending, claim)  # ``settle`` skips it if its partition was revoked
                continue
            future = pending
            if self.stale(incoming):
                self._drop(future)
                continue
            step = "inference"
            try:
                result = await future
                if self.stale(incoming):  # revoked while its inference ran
                    self._drop(future)
                    continue
                step = "processing"
                await self._finish(incoming, result, claim)  # steps and keeps state before its first await
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # one window's failure must not stop the completer
                log.exception("The %s of a window of %s failed.", step, patient_id)
                reason = f"{step} failed: {type(exc).__name__}: {exc}"
                keep = self.settings.deadletter_keep_bytes
                await self._dead_letter(incoming, dead_letter(incoming.record, reason, keep_bytes=keep), claim)

    def _drop(self, future: asyncio.Future[Result]) -> None:
        self.dropped_total += 1
        if not future.done():
            future.cancel()  # the batcher skips cancelled items

    async def settle(self) -> None:
        """Persist state and settle completed windows in order, once written (run it as one task)."""
        while True:
            done = await self._unsettled.get()
            if not await self._written(done):  # revoked meanwhile: the owner replays it; ``revoke`` reset the state
                self.dropped_total += 1
                continue
            record = done.incoming.record
            if done.state is not None:
                self.store.persist(done.patient_id, done.state, record.partition)
                entry = self._persisted.get(done.patient_id)
                if entry is not None:
                    if entry[2] <= 1:
                        del self._persisted[done.patient_id]
                    else:
                        self._persisted[done.patient_id] = (done.state, entry[1], entry[2] - 1)
            done.incoming.ack()
            if self.ledger is not None:
                self.ledger.settle(done.claim)

    async def _written(self, done: _Done) -> bool:
        """Wait until every output of ``done`` is written, sending failed ones again; False if it went stale.

        The retries wait ``_FIRST_RETRY_S`` doubling up to ``influx_retry_max_s``, for as long as it
        takes: the window is settled in order, so the windows behind it wait too (back-pressure,
        as during an InfluxDB outage), and its offset stays uncommitted meanwhile.
        """
        backoff_s = _FIRST_RETRY_S
        what = _record_name(done.incoming.record)
        while True:
            pending = [o.future for o in done.outputs if not o.future.done()]
            if pending:
                await asyncio.wait(pending)
            if self.stale(done.incoming):
                return False
            failed = [(o, exc) for o in done.outputs if (exc := retry_needed(o.future)) is not None]
            if not failed:
                for o in done.outputs:
                    if o.future.exception() is not None:
                        log.error(
                            "An output of %s was refused for good (%s); settling it anyway.", what, o.future.exception()
                        )
                return True
            log.warning(
                "%d output(s) of %s were not written (%s); sending them again in %.1f s.",
                len(failed),
                what,
                failed[0][1],
                backoff_s,
            )
            await asyncio.sleep(backoff_s)
            backoff_s = min(2 * backoff_s, max(self.settings.influx_retry_max_s, _FIRST_RETRY_S))
            for output, _ in failed:
                if self.stale(done.incoming):
                    return False
                try:
                    output.future = await output.resend()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # the next round waits and tries again
                    output.future = asyncio.get_running_loop().create_future()
                    output.future.set_exception(exc)

    async def _send(self, output: Output, key: bytes | str | None, value: bytes) -> _Output:
        """Publish one record; the returned output can publish it again."""
        return _Output(await self.publish(output, key, value), partial(self.publish, output, key, value))

    async def _finish(self, incoming: Incoming, result: Result, claim: Claim | None) -> None:
        window, prediction = result.window, result.prediction
        record = incoming.record
        before = self.store.get(window.patient_id)
        state, alerts = self.engine.step(before, self._observation(result))
        self.store.set(window.patient_id, state)
        base = self._persisted.get(window.patient_id)
        self._persisted[window.patient_id] = (
            (before, record.partition, 1) if base is None else (base[0], base[1], base[2] + 1)
        )
        outputs = [await self._send("predictions", window.patient_id, prediction.to_bytes())]
        if result.reconstruction is not None:
            outputs.append(await self._send("reconstructions", window.patient_id, result.reconstruction))
        for alert in alerts:
            outputs.append(await self._send("alerts", window.patient_id, alert.to_bytes()))
        lines = result.lines + [points.alert_line(a) for a in alerts]
        outputs.append(_Output(await self.sink.write(lines), partial(self.sink.write, lines)))
        self.health.window_done(time.monotonic() - incoming.t_in)
        await self._unsettled.put(_Done(incoming, window.patient_id, state, outputs, claim))
        for alert in alerts:
            self._log_alert(alert)

    def _observation(self, result: Result) -> Observation:
        p = result.prediction
        return Observation(
            patient_id=p.patient_id,
            seq=p.seq,
            t_end_ns=p.t_end_ns,
            label=p.label,
            confidence=p.confidence,
            uncertainty=p.uncertainty,
            probs=dict(p.probs),
            hr_bpm=p.hr_bpm,
            sqi=p.sqi,
            max_rr_s=result.max_rr_s,
            rr_irregularity=p.rr_irregularity,
            lead_off=result.lead_off,
            p_wave_coherence=p.p_wave_coherence,
        )

    async def _dead_letter(self, incoming: Incoming, envelope: DeadLetter, claim: Claim | None) -> None:
        self.health.dead_lettered()
        log.info("Dead-lettered %s[%d]@%d: %s", envelope.topic, envelope.partition, envelope.offset, envelope.reason)
        output = await self._send("deadletter", incoming.record.key, envelope.to_bytes())  # the original key
        await self._unsettled.put(_Done(incoming, "", None, [output], claim))

    @staticmethod
    def _log_alert(alert: Alert) -> None:
        log.info(
            "Alert %s %s for %s (%s): %s", alert.type, alert.state, alert.patient_id, alert.severity, alert.message
        )

    def health_line(
        self,
        consumer_lag: int | None = None,
        flow: dict[str, int | None] | None = None,
        model_cpu_s: float | None = None,
    ) -> str:
        """The ``pipeline`` point for now (resets the interval counters); ``flow`` adds the consumer's gates."""
        fields = self.health.fields(
            stats=self.executor.stats.take(),
            queue_depth=self.executor.queue_depth,
            inflight=self.inflight,
            sink_buffered=self.sink.buffered_points,
            sink_retries=self.sink.stats.retries,
            consumer_lag=consumer_lag,
            sink_down_s=self.sink.down_s(),
            rebalances=self.rebalances,
            dropped_total=self.dropped_total,
            model_cpu_s=model_cpu_s,
        )
        fields.update(flow or {})
        return points.pipeline_line(self.health.worker, fields, time.time_ns())
