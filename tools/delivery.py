"""The delivery audit: was every window a patient sent judged and stored exactly once?

What a monitoring centre must be able to say after any fault, read from what the pipeline wrote:

* **lost**: windows the simulator had acknowledged by the broker that have no ``prediction`` row;
* **duplicated rows**: ``prediction`` rows beyond one per window (a replay must overwrite its row,
  since a row's time is its window's);
* **conflicting predictions**: a window whose prediction records on Kafka disagree (a replay that
  gave another label or probability, e.g. unseeded MC dropout);
* **duplicated alert episodes**: an alert episode opened again while open, or events of an episode
  that is not the open one (the alert state lost in a crash and rebuilt wrong).

Used by ``ecgmon chaos`` and by the reliability tests.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ecgmon.contracts import Prediction
from ecgmon.influx import InfluxClient
from ecgmon.settings import Settings


def consume_all(settings: Settings, topic: str, idle_ms: int = 2000) -> list[tuple[bytes | None, bytes, int, int]]:
    """Every record of ``topic`` now, read from the start: ``(key, value, partition, offset)``."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(
        bootstrap_servers=settings.bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=idle_ms,
        fetch_max_bytes=8_000_000,
        max_partition_fetch_bytes=8_000_000,
    )
    consumer.assign([TopicPartition(topic, p) for p in range(settings.partitions)])
    try:
        return [(m.key, m.value, m.partition, m.offset) for m in consumer]
    finally:
        consumer.close()


def prediction_rows(influx: InfluxClient, patients: Iterable[str], where: str) -> dict[str, tuple[int, int]]:
    """``{patient: (rows, distinct seqs)}`` of the ``prediction`` measurement for ``patients`` where ``where``."""
    regex = "^(" + "|".join(sorted(patients)) + ")$"
    query = (
        f'SELECT count("sqi"), count(distinct("seq")) FROM "prediction" '
        f'WHERE "patient_id" =~ /{regex}/ AND {where} GROUP BY "patient_id"'
    )
    return {s["tags"]["patient_id"]: (int(s["values"][0][1]), int(s["values"][0][2])) for s in influx.query(query)}


def conflicting_predictions(records: Iterable[bytes]) -> list[tuple[str, int]]:
    """Windows ``(patient, seq)`` whose prediction records disagree on label, probabilities or uncertainty."""
    seen: dict[tuple[str, int], tuple[Any, ...]] = {}
    conflicts: set[tuple[str, int]] = set()
    for value in records:
        p = Prediction.from_bytes(value)
        verdict = (p.label, tuple(sorted(p.probs.items())), p.uncertainty)
        key = (p.patient_id, p.seq)
        if seen.setdefault(key, verdict) != verdict:
            conflicts.add(key)
    return sorted(conflicts)


@dataclass
class EpisodeCheck:
    """Alert events per (patient, type) in time order, and what breaks the open / resolve alternation."""

    events: dict[tuple[str, str], list[tuple[str, str]]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def opened(self) -> list[tuple[str, str, str]]:
        """Every opened episode as ``(patient, type, alert id)``, sorted: what a repeated run must reproduce."""
        return sorted(
            (patient, kind, alert_id)
            for (patient, kind), events in self.events.items()
            for state, alert_id in events
            if state == "opened"
        )


def check_alert_episodes(influx: InfluxClient, patient_regex: str, where: str = "time > 0") -> EpisodeCheck:
    """Read every alert event of the patients matching ``patient_regex`` and check each episode.

    An episode is opened once, maybe updated, resolved once; a second opening while one is open (an
    episode opened twice after its state was lost) or an event of another id is a problem.
    """
    series = influx.query(
        f'SELECT "state", "alert_id" FROM "alert" WHERE "patient_id" =~ /{patient_regex}/ AND {where} '
        'GROUP BY "patient_id", "type"'
    )
    check = EpisodeCheck(events=defaultdict(list))
    for sr in series:
        key = (sr["tags"]["patient_id"], sr["tags"]["type"])
        for _, state, alert_id in sr["values"]:
            check.events[key].append((state, alert_id))
    for key, events in check.events.items():
        open_id: str | None = None
        for state, alert_id in events:
            if state == "opened":
                if open_id is not None:
                    check.problems.append(f"{key}: {alert_id} opened while {open_id} was open")
                open_id = alert_id
            elif open_id != alert_id:
                check.problems.append(f"{key}: {state} of {alert_id} while {open_id} is open")
            elif state == "resolved":
                open_id = None
    check.events = dict(check.events)
    return check
