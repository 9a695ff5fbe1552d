"""Faust's aiokafka transport with the consumer's fetch wait taken from settings.

faust-streaming 0.15 builds its worker consumer with ``fetch_max_wait_ms=1500`` written into the
code. Real Kafka answers a fetch as soon as one byte is ready, so the wait rarely matters there;
the embedded Tansu broker holds every fetch for most of it, which put ~430 ms on the median
end-to-end latency (measured by ``ecgmon bench``, see BENCHMARKS.md). This module changes only
that one number (``ECGMON_KAFKA_FETCH_MAX_WAIT_MS``) and leaves the rest of Faust's transport alone.
"""

from __future__ import annotations

from typing import Any

import faust
from faust.transport.drivers import aiokafka as faust_aiokafka


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # aiokafka reads this attribute when it starts its fetcher (AIOKafkaConsumer.start).
        consumer._fetch_max_wait_ms = int(getattr(self.app, "fetch_max_wait_ms", 1500))
        return consumer


class _Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> _ConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class Transport(faust_aiokafka.Transport):
    """The aiokafka transport whose worker consumer waits at most ``app.fetch_max_wait_ms`` per fetch."""

    Consumer = _Consumer


class App(faust.App):
    """A Faust app that uses ``Transport`` above; ``fetch_max_wait_ms`` bounds the broker's fetch wait."""

    def __init__(self, *args: Any, fetch_max_wait_ms: int = 1500, **kwargs: Any) -> None:
        self.fetch_max_wait_ms = fetch_max_wait_ms
        super().__init__(*args, **kwargs)

    def _new_transport(self) -> Any:
        return Transport(self.conf.broker_consumer, self)
