"""Wiring only: the ingest agent, the completion task, the health timer and the readiness signal.

Everything that decides lives in ``streams.pipeline`` and the modules it calls. The pipeline (models,
executor, sink) is built once per worker process by ``run_pipeline``; ``ecgmon worker`` loads the
models before Faust starts (``preload``) so a missing weight file is one clear error line.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import Any

from faust.types import StreamT

from streams.alerts import AlertEngine
from streams.app import (
    alert_state,
    alerts_topic,
    app,
    deadletter_topic,
    predictions_topic,
    reconstructions_topic,
    settings,
    windows_topic,
)
from streams.batching import BatchExecutor
from streams.health import Health, worker_name
from streams.inference import Inference
from streams.ingress import Record
from streams.pipeline import Incoming, Output, Pipeline
from streams.sink import InfluxSink
from streams.transport import offset_ledger

log = logging.getLogger(__name__)

_TOPICS = {
    "predictions": predictions_topic,
    "reconstructions": reconstructions_topic,
    "alerts": alerts_topic,
    "deadletter": deadletter_topic,
}


class _Runtime:
    """The one pipeline of this worker process, and the event agents wait on until it exists."""

    def __init__(self) -> None:
        self.inference: Inference | None = None
        self.pipeline: Pipeline | None = None
        self.built = asyncio.Event()


runtime = _Runtime()


def preload(inference: Inference) -> None:
    """Use models loaded before the worker started (``ecgmon worker`` does this)."""
    runtime.inference = inference


class _TableStore:
    """The alert-state table; persisted writes go to the changelog partition of the window's own record."""

    def get(self, patient_id: str) -> dict[str, Any] | None:
        value = alert_state.get(patient_id)
        return value if isinstance(value, dict) else None

    def set(self, patient_id: str, state: dict[str, Any] | None) -> None:
        if state is None:
            alert_state.data.pop(patient_id, None)
        else:
            alert_state.data[patient_id] = state

    def persist(self, patient_id: str, state: dict[str, Any], partition: int) -> None:
        alert_state.send_changelog(partition, patient_id, state)


async def _publish(output: Output, key: bytes | str | None, value: bytes) -> asyncio.Future[Any]:
    """Hand one record to Faust's producer (aiokafka underneath); the future resolves once Kafka has it.

    Straight to ``app.producer.send``, not ``Topic.send``: the channel layer (a ``FutureMessage`` and
    the sensors' callbacks per record) held the event loop's GIL for ~5 % of the worker's time in a
    ``py-spy --gil`` profile, for nothing the pipeline uses (keys and values are bytes already).
    """
    key_bytes = key.encode("utf-8") if isinstance(key, str) else key
    topic = _TOPICS[output].get_topic_name()
    return await app.producer.send(topic, key_bytes, value, None, None, None)  # type: ignore[return-value]


@app.task
async def run_pipeline() -> None:
    """Build the pipeline, then complete windows in order until the worker stops."""
    inference = runtime.inference
    if inference is None:
        inference = await asyncio.get_running_loop().run_in_executor(None, Inference.load, settings)
    executor = BatchExecutor(
        inference, max_batch=settings.max_batch, max_delay_ms=settings.max_delay_ms, queue_items=settings.queue_windows
    )
    sink = InfluxSink(settings)
    await sink.start()
    pipeline = Pipeline(
        settings,
        executor=executor,
        engine=AlertEngine(settings),
        sink=sink,
        publish=_publish,
        store=_TableStore(),
        health=Health(worker_name(settings.worker_name)),
        ledger=offset_ledger(app),  # the commit rule the consumer applies (streams.offsets)
    )
    runtime.inference = inference
    runtime.pipeline = pipeline
    runtime.built.set()
    log.info(
        "Pipeline built: classifier %s (%s), reconstructor %s.",
        inference.model_tag,
        "bf16" if inference.classifier_bf16 else "fp32" if not inference.cuda else "cuda autocast",
        inference.recon_tag or "none",
    )
    await asyncio.gather(pipeline.complete(), pipeline.settle())


@app.agent(windows_topic, name="ingest")
async def ingest(stream: StreamT[bytes]) -> None:
    """Every record of ``ecg.windows``: into the pipeline (acknowledged later, once written)."""
    await runtime.built.wait()
    pipeline = runtime.pipeline
    assert pipeline is not None
    async for event in stream.noack().events():  # type: ignore[attr-defined]
        message = event.message
        record = Record(event.key, event.value, message.topic, message.partition, message.offset)
        await pipeline.ingest(Incoming(record, event.ack, time.monotonic(), pipeline.epoch))


def consumer_lag() -> int | None:
    """Records of the input topic behind the committed offsets, from what Faust's monitor already tracks."""
    monitor = app.monitor
    try:
        assigned = [tp for tp in app.consumer.assignment() if tp.topic == windows_topic.get_topic_name()]
    except Exception:  # the consumer is not started yet
        return None
    if not assigned:
        return None
    lag = 0
    for tp in assigned:
        end = monitor.tp_end_offsets.get(tp)
        if end is not None:
            lag += max(0, end - (monitor.tp_committed_offsets.get(tp) or 0))
    return lag


def consumer_flow() -> dict[str, int | None]:
    """Whether Faust is fetching: partitions of the input topic it fetches from, flow control, producer buffer.

    A worker with ``consumer_lag`` > 0 and nothing in flight has stopped fetching (docs/reliability.md,
    known issue); these say which gate is shut: no fetching partitions (paused or "buffer full"),
    flow control suspended (a rebalance that never resumed), or Faust's producer buffer not draining.
    """
    try:
        source = windows_topic.get_topic_name()
        assigned = {tp for tp in app.consumer.assignment() if tp.topic == source}
        active = getattr(app.consumer, "_active_partitions", None)  # Faust's fetch set: assigned - paused/full
        fetching = None if active is None else len(assigned & set(active))
        return {
            "partitions_assigned": len(assigned),
            "partitions_fetching": fetching,
            "flow_suspended": int(not app.flow_control.is_active()),
            "producer_buffer": int(app.producer.buffer.size),
        }
    except Exception:  # the consumer or producer is not started yet
        return {}


@app.timer(settings.health_interval_s)
async def report_health() -> None:
    """One ``pipeline`` point per interval."""
    if runtime.pipeline is not None:
        model_cpu_s = None if runtime.inference is None else runtime.inference.model_cpu_s
        line = runtime.pipeline.health_line(consumer_lag(), consumer_flow(), model_cpu_s)
        await runtime.pipeline.sink.write([line])


@app.on_rebalance_complete.connect  # type: ignore[arg-type]
async def _on_ready(sender: Any, **kwargs: Any) -> None:
    """Write this process's readiness file (``Settings.worker_ready_path``): whatever started it waits on it."""
    path = settings.worker_ready_path(os.getpid())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{os.getpid()} {time.time():.3f}\n")
    log.warning("ecgmon worker ready: partitions assigned, tables recovered (%s).", path)


@app.on_partitions_revoked.connect  # type: ignore[arg-type]
async def _on_revoked(sender: Any, revoked: Any = (), **kwargs: Any) -> None:
    """Drop the in-flight windows of revoked partitions (``Pipeline.revoke``); their owner replays them."""
    source = windows_topic.get_topic_name()
    partitions = {(tp.topic, tp.partition) for tp in revoked if tp.topic == source}
    if runtime.pipeline is not None:
        runtime.pipeline.revoke(partitions)


@app.on_before_shutdown.connect  # type: ignore[arg-type]
async def _on_shutdown(sender: Any, **kwargs: Any) -> None:
    settings.worker_ready_path(os.getpid()).unlink(missing_ok=True)
    if runtime.pipeline is not None:
        await runtime.pipeline.sink.stop()
        await runtime.pipeline.executor.stop()
