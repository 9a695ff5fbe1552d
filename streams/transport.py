"""Faust's aiokafka transport with the consumer's fetch wait taken from settings.

faust-streaming 0.15 builds its worker consumer with ``fetch_max_wait_ms=1500`` written into the
code. Real Kafka answers a fetch as soon as one byte is ready, so the wait rarely matters there;
the embedded Tansu broker holds every fetch for most of it, which put ~430 ms on the median
end-to-end latency (measured by ``ecgmon bench``, see BENCHMARKS.md). This module changes
that one number (``ECGMON_KAFKA_FETCH_MAX_WAIT_MS``), and checks the end offsets Faust's table recovery
reads changelogs up to (``true_end_offsets``: the embedded broker reports them wrong).

Its consumer also takes every commit from ``streams.offsets`` (the app's ``offset_ledger``): the
pipeline claims each record it consumes and settles it once written, and the committed offset of a
partition never passes the lowest record consumed and not yet settled. Faust's own acknowledgements
still flow (its bookkeeping of unacknowledged messages needs them), but they no longer decide what
is committed; see ``streams/offsets.py`` for why.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator, Mapping
from typing import Any

import faust
from faust.transport.consumer import ensure_TP
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

from streams.offsets import OffsetLedger

log = logging.getLogger(__name__)


def offset_ledger(app: Any) -> OffsetLedger:
    """The app's commit rule (``App.offset_ledger``); any other app gets one on first use."""
    ledger = getattr(app, "offset_ledger", None)
    if not isinstance(ledger, OffsetLedger):
        ledger = OffsetLedger()
        app.offset_ledger = ledger
    return ledger


def true_end_offsets(bootstrap: list[str], reported: Mapping[TP, int], *, timeout_s: float = 5.0) -> dict[TP, int]:
    """End offsets checked by reading the last record batch: ``reported`` raised where more records follow.

    Tansu 0.6, the embedded broker, answers ListOffsets(latest) with the base offset of a partition's last
    record batch + 1, not its last offset + 1: after a batch of 3 records at offsets 0-2 it says 1.
    Faust's table recovery reads a changelog up to that end, so the states sent together in the last
    batch were lost on a restart (the worker restored an older alert state). Reading from ``reported - 1``
    returns that whole batch; its last offset + 1 is the true end. On Kafka the read returns the one
    record at ``reported - 1`` and nothing changes. kafka-python, in the caller's thread.
    """
    from kafka import KafkaConsumer
    from kafka import TopicPartition as KafkaTP

    todo = {tp: end for tp, end in reported.items() if end > 0}
    out = dict(reported)
    if not todo:
        return out
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    try:
        wanted = {KafkaTP(tp.topic, tp.partition): tp for tp in todo}
        consumer.assign(list(wanted))
        for ktp, tp in wanted.items():
            consumer.seek(ktp, todo[tp] - 1)
        pending = set(wanted)
        deadline = time.monotonic() + timeout_s
        while pending and time.monotonic() < deadline:
            for ktp, records in consumer.poll(timeout_ms=200).items():
                tp = wanted[ktp]
                out[tp] = max(out[tp], max(r.offset for r in records) + 1)
                pending.discard(ktp)
        if pending:
            log.warning("end offsets of %d changelog partitions could not be checked", len(pending))
    finally:
        consumer.close()
    return out


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # aiokafka reads this attribute when it starts its fetcher (AIOKafkaConsumer.start).
        consumer._fetch_max_wait_ms = int(getattr(self.app, "fetch_max_wait_ms", 1500))
        return consumer

    async def _highwaters(self, partitions: list[TP]) -> Mapping[TP, int]:
        """Faust's table recovery reads changelogs up to these: checked by ``true_end_offsets``."""
        reported = await super()._highwaters(partitions)
        if self.consumer.in_transaction:
            return reported
        transport: Any = self.transport
        servers = faust_aiokafka.server_list(transport.url, transport.default_port)
        return await asyncio.to_thread(true_end_offsets, servers, reported)


class _Consumer(faust_aiokafka.Consumer):
    """Faust's aiokafka consumer whose commits come from the app's ``OffsetLedger``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._delivered: dict[TP, int] = {}
        """The last offset of each partition handed to Faust's streams (``OffsetLedger.idle_gap``)."""
        deliver = self.callback

        async def callback(message: Any) -> Any:
            self._delivered[message.tp] = message.offset
            return await deliver(message)

        self.callback = callback

    def _new_consumer_thread(self) -> _ConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    @property
    def ledger(self) -> OffsetLedger:
        return offset_ledger(self.app)

    def _governed(self, tp: Any) -> bool:
        """The ledger rules the partitions of the topics streams acknowledge (the windows), not changelogs."""
        return bool(self.app.topics.acks_enabled_for(tp.topic))

    async def seek_to_committed(self) -> Mapping[TP, int]:
        """Seek as Faust does (after every assignment); the ledger learns where each commit stands."""
        committed = await super().seek_to_committed()
        unknown = [tp for tp, offset in committed.items() if (offset is None or offset < 0) and self._governed(tp)]
        starts: Mapping[Any, int] = await self.earliest_offsets(*unknown) if unknown else {}
        positions = []
        for tp, offset in sorted(committed.items()):
            if not self._governed(tp):
                continue
            position = int((offset if offset is not None and offset >= 0 else starts.get(tp)) or 0)
            self.ledger.position(ensure_TP(tp), position)
            positions.append(f"{tp.topic}[{tp.partition}]@{position}")
        log.info("Reading from the committed offsets: %s.", ", ".join(positions))
        return committed

    async def on_partitions_revoked(self, revoked: set[TP]) -> None:
        """Nothing of a revoked partition is committed here any more; then Faust's own handling."""
        self.ledger.revoke(revoked)
        for tp in revoked:
            self._delivered.pop(tp, None)
        await super().on_partitions_revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[TP], generation_id: int = 0) -> None:
        """A new ledger generation per partition (before Faust resumes and seeks them); then Faust's handling."""
        self.ledger.expect(ensure_TP(tp) for tp in assigned if self._governed(tp))
        await super().on_partitions_assigned(assigned, generation_id)

    async def commit(self, topics: Any = None, start_new_transaction: bool = True) -> bool:
        """Read again from any offset the pipeline was never given (``hole``, ``idle_gap``); then commit."""
        if not self.app.rebalancing:
            assignment = self.assignment()
            for tp in self.ledger.assigned():
                if tp not in assignment:
                    continue
                hole = self.ledger.hole(tp)
                delivered = self._delivered.get(ensure_TP(tp))
                if hole is None and delivered is not None:
                    hole = self.ledger.idle_gap(tp, delivered)
                if hole is not None:
                    log.warning("%s[%d]: reading again from offset %d, which was skipped.", tp[0], tp[1], hole)
                    try:
                        await self.seek(ensure_TP(tp), hole)
                    except Exception as exc:  # e.g. revoked meanwhile: the commit simply keeps holding
                        log.warning("Could not read %s[%d] again from %d: %s", tp[0], tp[1], hole, exc)
        return bool(await super().commit(topics, start_new_transaction))

    def _filter_tps_with_pending_acks(self, topics: Any = None) -> Iterator[TP]:
        tps = set(self._acked) | {ensure_TP(tp) for tp in self.ledger.assigned()}
        return (tp for tp in tps if topics is None or tp in topics or tp.topic in topics)

    def _new_offset(self, tp: TP) -> int | None:
        """The ledger's offset for ``tp``; Faust's acknowledged runs and gaps only say what it would have done."""
        faust_offset = super()._new_offset(tp) if self._acked.get(tp) else None
        self._acked.pop(tp, None)
        self._acked_index.pop(tp, None)
        self._gap.pop(tp, None)
        limit = self.ledger.limit(tp)
        if faust_offset is not None and limit is not None and faust_offset > limit:
            log.warning(
                "%s[%d]: Faust's acknowledgements would commit %d, past %d (consumed, not yet written); holding at %d.",
                tp.topic, tp.partition, faust_offset, limit, limit,
            )  # fmt: skip
        return self.ledger.committable(tp)

    async def _commit_offsets(self, offsets: Mapping[TP, int], start_new_transaction: bool = True) -> bool:
        did_commit = bool(await super()._commit_offsets(offsets, start_new_transaction))
        if did_commit:
            for tp, offset in offsets.items():
                self.ledger.committed(tp, offset)
            log.debug("Committed %s.", ", ".join(f"{tp.topic}[{tp.partition}]@{o}" for tp, o in offsets.items()))
        return did_commit


class Transport(faust_aiokafka.Transport):
    """The aiokafka transport whose worker consumer waits at most ``app.fetch_max_wait_ms`` per fetch."""

    Consumer = _Consumer


class App(faust.App):
    """A Faust app that uses ``Transport`` above; ``fetch_max_wait_ms`` bounds the broker's fetch wait.

    ``offset_ledger`` is the commit rule its consumer applies; the pipeline claims and settles on it.
    """

    def __init__(self, *args: Any, fetch_max_wait_ms: int = 1500, **kwargs: Any) -> None:
        self.fetch_max_wait_ms = fetch_max_wait_ms
        self.offset_ledger = OffsetLedger()
        super().__init__(*args, **kwargs)

    def _new_transport(self) -> Any:
        return Transport(self.conf.broker_consumer, self)
