"""The Faust app: every topic and the alert-state table, declared together from ``Settings``.

Importing it builds the app but registers no agent; ``streams.agents`` wires them onto it, so run
``ecgmon worker`` or ``faust -A streams.agents worker -l info``. Topics are created explicitly
(``streams.topics.ensure_topics``: ``ecgmon up``, the test fixtures and ``ecgmon worker``) with
``settings.partitions`` partitions, including the table's changelog, whose partitions must match
the source topic's; every topic here also names its partitions, so Faust's own declaration (the
``faust -A`` path) creates any missing one alike. Faust's web views are off unless
``ECGMON_WORKER_WEB=1``, and then bound to 127.0.0.1 only.
"""

from __future__ import annotations

import ssl
from typing import Any

import faust

from ecgmon.settings import Settings, get_settings
from streams.faust_worker import Worker
from streams.topics import ALERT_STATE_TABLE
from streams.transport import App as TunedApp


def broker_urls(settings: Settings) -> list[str]:
    """``kafka://host:port`` for each bootstrap server."""
    return [f"kafka://{server.strip()}" for server in settings.bootstrap.split(",") if server.strip()]


def broker_credentials(settings: Settings) -> Any:
    """Faust credentials for the configured security protocol (None for PLAINTEXT)."""
    protocol = settings.kafka_security_protocol
    context = None
    if protocol in ("SSL", "SASL_SSL"):
        context = ssl.create_default_context(cafile=settings.kafka_ssl_cafile or None)
    if protocol in ("SASL_PLAINTEXT", "SASL_SSL"):
        return faust.SASLCredentials(
            username=settings.kafka_sasl_username,
            password=settings.kafka_sasl_password.get_secret_value(),
            ssl_context=context,
            mechanism=settings.kafka_sasl_mechanism,
        )
    if protocol == "SSL":
        return faust.SSLCredentials(context)
    return None


def make_app(settings: Settings) -> faust.App:
    """The Faust app configured from ``settings`` (broker, security, app id, web bound to 127.0.0.1)."""
    (settings.state_dir / "faust").mkdir(parents=True, exist_ok=True)
    return TunedApp(
        settings.app_id,
        fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
        broker=broker_urls(settings),
        broker_credentials=broker_credentials(settings),
        topic_partitions=settings.partitions,
        topic_disable_leader=True,
        table_standby_replicas=settings.standby_replicas,
        datadir=str(settings.state_dir / "faust" / settings.app_id),
        store="memory://",
        web_enabled=settings.worker_web,
        web_bind="127.0.0.1",
        web_host="127.0.0.1",
        web_port=settings.web_port,
        consumer_auto_offset_reset="earliest",
        stream_buffer_maxsize=settings.queue_windows,  # Faust's own buffer per partition: bounded alike
        # A revocation must not wait for windows in flight (up to queue_windows of inference, or an
        # InfluxDB outage): the pipeline drops them unacknowledged and their owner replays them.
        stream_wait_empty=False,
        broker_session_timeout=settings.kafka_session_timeout_s,
        broker_rebalance_timeout=settings.kafka_rebalance_timeout_s,
        broker_heartbeat_interval=min(3.0, settings.kafka_session_timeout_s / 3),
        producer_max_request_size=max(1_048_576, 4 * settings.deadletter_keep_bytes),
        # Linger puts a micro-batch's records (prediction, changelog, reconstruction) into one produce
        # request per broker instead of one each: fewer syscalls on the event loop, less broker work
        # per window (20 ms instead of 5: 10 % less broker CPU per window in a backlog drain, issue 24).
        producer_linger=settings.kafka_linger_ms / 1000.0,
        Worker=Worker,  # no terminal spinner: it puts the root logger at DEBUG (streams/faust_worker.py)
    )


settings = get_settings()
app = make_app(settings)



def _raw_topic(name: str) -> Any:
    """A topic of raw bytes keyed by patient id, with the pipeline's partition count."""
    return app.topic(
        name, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw",
        partitions=settings.partitions,
    )


windows_topic = _raw_topic(settings.topic_windows)
predictions_topic = _raw_topic(settings.topic_predictions)
reconstructions_topic = _raw_topic(settings.topic_reconstructions)
alerts_topic = _raw_topic(settings.topic_alerts)
deadletter_topic = _raw_topic(settings.topic_deadletter)

alert_state = app.Table(
    ALERT_STATE_TABLE,
    default=None,
    key_type=str,
    partitions=settings.partitions,
    help="Alert-engine state per patient id (JSON from streams.alerts): recent evidence and open alerts.",
)
