"""Idempotent creation of the ClickPulse topics."""

from __future__ import annotations

import logging

from clickpulse.settings import Settings

logger = logging.getLogger(__name__)


def ensure_topics(
    bootstrap: str, specs: dict[str, int], replication: int = 1, timeout_s: float = 30
) -> list[str]:
    """Create each missing topic with its partition count; returns the names this call created."""
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    existing = set(admin.list_topics(timeout=timeout_s).topics)
    missing = [
        NewTopic(name, num_partitions=parts, replication_factor=replication)
        for name, parts in specs.items()
        if name not in existing
    ]
    created = []
    for name, future in admin.create_topics(missing, operation_timeout=timeout_s).items() if missing else []:
        try:
            future.result()
            created.append(name)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
    return created


def project_topics(settings: Settings) -> dict[str, int]:
    return {
        settings.topic_raw: settings.topic_partitions,
        settings.topic_enriched: settings.topic_partitions,
        settings.topic_dlq: max(1, settings.topic_partitions // 2),
    }
