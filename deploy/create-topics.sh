#!/bin/bash
# One-shot (compose service topic-init): create ecgmon's topics with the configured partitions.
# Topics must exist with matching partitions before the worker starts (a Faust table's changelog
# must match its source topic), so auto-creation is off on the broker. Existing topics are kept.
set -euo pipefail
for topic in ${TOPICS}; do
  /opt/kafka/bin/kafka-topics.sh --bootstrap-server kafka:9092 --create --if-not-exists \
    --topic "${topic}" --partitions "${PARTITIONS}" --replication-factor 1
done
/opt/kafka/bin/kafka-topics.sh --bootstrap-server kafka:9092 --describe | grep -E '^Topic: ecg\.' || true
