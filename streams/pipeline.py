"""The order of the steps for every window, as plain code the Faust agent calls (no Faust here).

``ingest(incoming)`` runs in the agent, in consumption order: decode or dead-letter, decide on
reconstruction, hand the window to the bounded executor (waits when full), and queue the pending
result in an ordered, bounded in-flight queue. ``complete()`` runs as one task and takes the
in-flight windows in the same order: it waits for the window's inference result, steps the
patient's alert state (``AlertEngine.step``, state written back through ``StateStore`` with the
window's own partition, so the changelog matches the source topic), publishes the prediction,
reconstruction and alerts to Kafka, hands the InfluxDB lines to the sink, and acknowledges the
Kafka record only when the sink has stored its points and Kafka has accepted its outputs. So the
consumer commits offsets only for windows safely written, and a crash replays the rest
(at-least-once; outputs are keyed and stamped by the window, so a replay overwrites itself, and
the alert engine ignores windows it has already seen).

Because one task completes windows in consumption order, a patient's windows (one key, one
partition) always reach the alert engine in order.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from ecgmon.contracts import Alert, DeadLetter
from ecgmon.settings import Settings
from streams import points
from streams.alerts import AlertEngine, Observation, open_alerts
from streams.batching import BatchExecutor
from streams.health import Health
from streams.inference import Request, Result
from streams.ingress import Record, dead_letter, decode_or_dead_letter
from streams.reconstruction_policy import should_reconstruct
from streams.sink import InfluxSink

log = logging.getLogger(__name__)

Output = Literal["predictions", "reconstructions", "alerts", "deadletter"]
Publish = Callable[[Output, bytes | str | None, bytes], Awaitable["asyncio.Future[Any]"]]
"""Sends one record (key, value) to an output topic; returns a future that resolves when Kafka has it."""


class StateStore(Protocol):
    """Per-patient alert state (a Faust table in the worker, a dict in tests)."""

    def get(self, patient_id: str) -> dict[str, Any] | None:
        """The patient's state, or None before the first window."""
        ...

    def set(self, patient_id: str, state: dict[str, Any], partition: int) -> None:
        """Store the state; ``partition`` is the source record's, so its changelog lands alongside."""
        ...


@dataclass(frozen=True)
class Incoming:
    """A consumed record and how to acknowledge it (commit its offset once everything is written)."""

    record: Record
    ack: Callable[[], Any]
    t_in: float


def _ack_when_done(futures: list[asyncio.Future[Any]], ack: Callable[[], Any], what: str) -> None:
    """Call ``ack`` once every future is done; a Kafka failure leaves the record unacknowledged."""
    pending = [f for f in futures if not f.done()]
    remaining = len(pending)

    def finish() -> None:
        for f in futures:
            exc = None if f.cancelled() else f.exception()
            if f.cancelled() or (exc is not None and getattr(exc, "retriable", True)):
                log.error("Outputs of %s were not all written (%s); its offset stays uncommitted.", what, exc)
                return
            if exc is not None:
                log.error("InfluxDB refused points of %s for good (%s); acknowledging anyway.", what, exc)
        ack()

    if not remaining:
        finish()
        return

    def one_done(_: asyncio.Future[Any]) -> None:
        nonlocal remaining
        remaining -= 1
        if remaining == 0:
            finish()

    for f in pending:
        f.add_done_callback(one_done)


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
    ) -> None:
        self.settings = settings
        self.executor = executor
        self.engine = engine
        self.sink = sink
        self.publish = publish
        self.store = store
        self.health = health
        self._inflight: asyncio.Queue[tuple[Incoming, str, asyncio.Future[Result]]] = asyncio.Queue(
            maxsize=settings.queue_windows + settings.max_batch
        )

    @property
    def inflight(self) -> int:
        """Windows submitted and not yet completed."""
        return self._inflight.qsize()

    async def ingest(self, incoming: Incoming) -> None:
        """Decode one record and hand it on; waits when the executor or the in-flight queue is full."""
        s = self.settings
        decoded = decode_or_dead_letter(
            incoming.record, max_bytes=s.max_message_bytes, keep_bytes=s.deadletter_keep_bytes
        )
        if isinstance(decoded, DeadLetter):
            await self._dead_letter(incoming, decoded)
            return
        window = decoded
        reconstruct = should_reconstruct(
            s.reconstruction_policy,
            seq=window.seq,
            every_k=s.reconstruction_every_k,
            open_alert_types=open_alerts(self.store.get(window.patient_id)),
        )
        future = await self.executor.submit(Request(window, reconstruct, incoming.t_in))
        await self._inflight.put((incoming, window.patient_id, future))

    async def complete(self) -> None:
        """Complete in-flight windows in order, forever (run it as one task).

        A window whose inference or output fails is dead-lettered with the reason; the loop goes on.
        """
        while True:
            incoming, patient_id, future = await self._inflight.get()
            step = "inference"
            try:
                result = await future
                step = "processing"
                await self._finish(incoming, result)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # one window's failure must not stop the completer
                log.exception("The %s of a window of %s failed.", step, patient_id)
                reason = f"{step} failed: {type(exc).__name__}: {exc}"
                keep = self.settings.deadletter_keep_bytes
                await self._dead_letter(incoming, dead_letter(incoming.record, reason, keep_bytes=keep))

    async def _finish(self, incoming: Incoming, result: Result) -> None:
        window, prediction = result.window, result.prediction
        record = incoming.record
        state, alerts = self.engine.step(self.store.get(window.patient_id), self._observation(result))
        self.store.set(window.patient_id, state, record.partition)
        futures = [await self.publish("predictions", window.patient_id, prediction.to_bytes())]
        if result.reconstruction is not None:
            futures.append(await self.publish("reconstructions", window.patient_id, result.reconstruction))
        for alert in alerts:
            futures.append(await self.publish("alerts", window.patient_id, alert.to_bytes()))
        lines = result.lines + [points.alert_line(a) for a in alerts]
        futures.append(await self.sink.write(lines))
        self.health.window_done(time.monotonic() - incoming.t_in)
        _ack_when_done(futures, incoming.ack, f"{record.topic}[{record.partition}]@{record.offset}")
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
        )

    async def _dead_letter(self, incoming: Incoming, envelope: DeadLetter) -> None:
        self.health.dead_lettered()
        log.info("Dead-lettered %s[%d]@%d: %s", envelope.topic, envelope.partition, envelope.offset, envelope.reason)
        future = await self.publish("deadletter", incoming.record.key, envelope.to_bytes())  # the original key
        _ack_when_done([future], incoming.ack, f"{envelope.topic}[{envelope.partition}]@{envelope.offset}")

    @staticmethod
    def _log_alert(alert: Alert) -> None:
        log.info(
            "Alert %s %s for %s (%s): %s", alert.type, alert.state, alert.patient_id, alert.severity, alert.message
        )

    def health_line(self, consumer_lag: int | None = None) -> str:
        """The ``pipeline`` point for now (resets the interval counters)."""
        fields = self.health.fields(
            stats=self.executor.stats.take(),
            queue_depth=self.executor.queue_depth,
            inflight=self.inflight,
            sink_buffered=self.sink.buffered_points,
            sink_retries=self.sink.stats.retries,
            consumer_lag=consumer_lag,
        )
        return points.pipeline_line(self.health.worker, fields, time.time_ns())
