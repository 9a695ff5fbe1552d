"""Kafka and InfluxDB I/O of the console: follow ``ecg.alerts`` and ``ecg.actions``, publish actions.

Why the queue reads the alerts *topic* and not the ``alert`` measurement: the topic is the
worker's event stream itself, ordered per patient (key = patient id), so ``opened``, ``updated``
and ``resolved`` arrive in order and as soon as the worker sends them (no polling interval on top
of the sink's flush); it holds every episode whatever the alert's window time (a replayed
recording's alerts are stamped in the past, where a "last N hours" query would miss them); and
the console's own actions live in a topic beside it, so one consumer replays both from the
beginning on start and rebuilds the same state. InfluxDB is read for what the topic does not
carry: the full-disclosure strip and reconstructions (``ecg_strip``) and the per-window predictions.

The consumer has no group: it assigns itself every partition of both topics and reads from the
beginning, so several consoles can run side by side and none commits offsets. An action is
written first to Kafka (``acks=all``; this is the durable record, keyed by patient), then to
InfluxDB as an ``alert_action`` point for Grafana (``ecgmon.points.action_line``); a failed
InfluxDB write is logged and does not undo the action.
"""

from __future__ import annotations

import asyncio
import logging
import time

from ecgmon import stack
from ecgmon.contracts import Alert as AlertRecord
from ecgmon.contracts import AlertAction, ContractError
from ecgmon.errors import ConfigError, EcgmonError, SinkError
from ecgmon.influx import InfluxClient
from ecgmon.points import action_line
from ecgmon.settings import Settings
from tools.console.state import ConsoleState

log = logging.getLogger("ecgmon.console")

def ensure_topic(settings: Settings) -> None:
    """Create the actions topic on the embedded broker; elsewhere it must exist (``deploy/create-topics.sh``)."""
    if settings.kafka_bootstrap:
        return
    try:
        stack.create_topics(settings.bootstrap, [settings.topic_alerts, settings.topic_actions], settings.partitions)
    except Exception as exc:  # kafka-python raises many types
        raise ConfigError(
            f"Cannot reach the broker at {settings.bootstrap} to create {settings.topic_actions} ({exc}); "
            "is the stack up (`ecgmon up`)?"
        ) from None


class Bus:
    """One consumer that replays both topics into ``state``, one producer for actions."""

    def __init__(self, settings: Settings, state: ConsoleState) -> None:
        self.settings = settings
        self.state = state
        self.influx = InfluxClient(settings, timeout_s=10.0)
        self.caught_up = asyncio.Event()
        self.records = 0
        self._consumer: object | None = None
        self._producer: object | None = None
        self._end: dict[object, int] = {}

    async def start(self) -> None:
        """Connect, assign every partition of both topics from the beginning, start the producer."""
        from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

        s = self.settings
        await asyncio.to_thread(ensure_topic, s)
        consumer = AIOKafkaConsumer(
            **s.aiokafka_options(), group_id=None, enable_auto_commit=False, fetch_max_wait_ms=100,
            client_id="ecgmon-console",
        )  # fmt: skip
        producer = AIOKafkaProducer(**s.aiokafka_options(), acks="all", linger_ms=0, client_id="ecgmon-console")
        try:
            await consumer.start()
            await producer.start()
        except Exception as exc:
            await consumer.stop()
            raise ConfigError(f"The console cannot reach Kafka at {s.bootstrap}: {exc}.") from None
        self._consumer, self._producer = consumer, producer
        await consumer.topics()  # fetch metadata
        parts: list[TopicPartition] = []
        for topic in (s.topic_alerts, s.topic_actions):
            numbers = consumer.partitions_for_topic(topic)
            if not numbers:
                raise ConfigError(f"Topic {topic} does not exist on {s.bootstrap}; create it with the others.")
            parts += [TopicPartition(topic, p) for p in sorted(numbers)]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        self._end = {tp: off for tp, off in (await consumer.end_offsets(parts)).items() if off > 0}

    async def run(self) -> None:
        """Read forever, folding each record into the state; sets ``caught_up`` once the start's end is read."""
        from aiokafka import AIOKafkaConsumer

        consumer = self._consumer
        assert isinstance(consumer, AIOKafkaConsumer)
        if not self._end:
            self.caught_up.set()
        while True:
            try:
                batches = await consumer.getmany(timeout_ms=500, max_records=5000)
            except Exception as exc:  # the broker went away: aiokafka reconnects, we keep asking
                log.warning("reading the topics failed (%s); retrying", exc)
                await asyncio.sleep(1.0)
                continue
            now_ns = time.time_ns()
            for tp, records in batches.items():
                for rec in records:
                    self.records += 1
                    self._apply(tp.topic, rec.value, now_ns, rec.timestamp)
                if tp in self._end and records and records[-1].offset + 1 >= self._end[tp]:
                    del self._end[tp]
            if not self.caught_up.is_set() and not self._end:
                self.caught_up.set()
                log.info("caught up: %d alerts, %d actions", len(self.state.alerts), len(self.state.actions))

    def _apply(self, topic: str, value: bytes | None, now_ns: int, timestamp_ms: int) -> None:
        if value is None:
            return
        try:
            if topic == self.settings.topic_alerts:
                self.state.apply_alert(AlertRecord.from_bytes(value), seen_ns=now_ns, produced_ms=timestamp_ms)
            else:
                self.state.apply_action(AlertAction.from_bytes(value))
        except ContractError as exc:
            log.warning("skipped a record of %s: %s", topic, exc)

    async def publish(self, action: AlertAction) -> list[str]:
        """Store ``action`` in Kafka (durable, awaited) and InfluxDB, and fold it; returns warnings."""
        from aiokafka import AIOKafkaProducer

        producer = self._producer
        assert isinstance(producer, AIOKafkaProducer)
        try:
            await producer.send_and_wait(
                self.settings.topic_actions, action.to_bytes(), key=action.patient_id.encode()
            )
        except Exception as exc:
            raise EcgmonError(f"The action was not stored: Kafka refused it ({exc}). Try again.") from None
        self.state.apply_action(action)
        warnings: list[str] = []
        try:
            await asyncio.to_thread(self.influx.write_lines, [action_line(action)])
        except SinkError as exc:
            log.warning("alert_action point not written: %s", exc)
            warnings.append(f"Stored in Kafka, but not yet shown in Grafana: {exc}")
        return warnings

    async def stop(self) -> None:
        """Close the consumer and producer."""
        for client in (self._consumer, self._producer):
            if client is not None:
                await client.stop()  # type: ignore[attr-defined]

