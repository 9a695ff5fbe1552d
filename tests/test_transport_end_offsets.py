"""``streams.transport.true_end_offsets`` against the real embedded broker, whose end offsets are off.

Tansu 0.6 reports the base offset of a partition's last record batch + 1; Faust's table recovery
stopped there and restored an old alert state after a restart (``test_pipeline_worker``'s restart test).
"""

from __future__ import annotations

import uuid

from faust.types import TP
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from ecgmon.settings import Settings
from ecgmon.stack import create_topics
from streams.transport import true_end_offsets


def test_end_offsets_count_every_record_of_the_last_batch(stack_settings: Settings) -> None:
    topic = f"t-end-{uuid.uuid4().hex[:8]}"
    create_topics(stack_settings.bootstrap, [topic], partitions=2)
    producer = KafkaProducer(bootstrap_servers=stack_settings.bootstrap, linger_ms=200)
    for i in range(3):  # one batch of three records on partition 0
        producer.send(topic, value=b"state %d" % i, partition=0)
    producer.flush()
    producer.send(topic, value=b"alone", partition=1)  # a batch of one on partition 1
    producer.flush()
    producer.close()
    probe = KafkaConsumer(bootstrap_servers=stack_settings.bootstrap)
    reported = probe.end_offsets([TopicPartition(topic, 0), TopicPartition(topic, 1)])
    probe.close()
    tp0, tp1 = TP(topic, 0), TP(topic, 1)
    fixed = true_end_offsets(
        [stack_settings.bootstrap], {tp0: reported[TopicPartition(topic, 0)], tp1: reported[TopicPartition(topic, 1)]}
    )
    assert fixed == {tp0: 3, tp1: 1}
    assert true_end_offsets([stack_settings.bootstrap], {tp0: 0}) == {tp0: 0}  # empty: nothing to read
