"""The pipeline's topics and the alert-state changelog, created explicitly before a worker starts.

Faust would create missing topics with its own defaults; the changelog's partitions must match the
source topic's, so every topic is created here with ``settings.partitions``. Nothing here builds the
Faust app, so ``ecgmon up``, the demo and the tests can create topics without loading the models.
"""

from __future__ import annotations

from ecgmon.settings import Settings
from ecgmon.stack import create_topics

ALERT_STATE_TABLE = "patient_alert_state"


def changelog_topic_name(settings: Settings) -> str:
    """The alert-state table's changelog topic, ``<app id>-patient_alert_state-changelog`` (Faust's naming)."""
    return f"{settings.app_id}-{ALERT_STATE_TABLE}-changelog"


def ensure_topics(settings: Settings) -> None:
    """Create the pipeline's topics and the table changelog, all with ``settings.partitions`` partitions.

    The changelog is compacted (``cleanup.policy=compact``): Kafka keeps the latest state of each
    patient instead of one record per window, so it neither grows without bound nor expires with
    the retention time, and a worker's recovery reads about one record per patient.
    """
    create_topics(settings.bootstrap, settings.topics(), settings.partitions)
    create_topics(
        settings.bootstrap, [changelog_topic_name(settings)], settings.partitions, configs={"cleanup.policy": "compact"}
    )
