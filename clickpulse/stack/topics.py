"""Idempotent creation (and, for tests and benchmarks, deletion) of the ClickPulse topics."""

from __future__ import annotations

import logging
import time

from clickpulse.settings import Settings
from streaming.kafka_io import KafkaTarget, as_client_config, error_code, is_transient

logger = logging.getLogger(__name__)


def ensure_topics(
    kafka: KafkaTarget, specs: dict[str, int], replication: int = 1, timeout_s: float = 30
) -> list[str]:
    """Create each missing topic with its partition count; returns the names this call created.
    ``kafka``: ``streaming.kafka_io.client_config(settings)``, or a bare bootstrap string.

    Errors a just-started cluster gives for a moment (a bootstrap connection replaced mid-request,
    no controller yet, retriable errors) are tried again, for what is still missing, until
    ``timeout_s``; anything else is raised."""
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient(as_client_config(kafka))
    deadline = time.monotonic() + timeout_s
    created: list[str] = []
    while True:
        existing = set(admin.list_topics(timeout=timeout_s).topics)
        missing = [
            NewTopic(name, num_partitions=parts, replication_factor=replication)
            for name, parts in specs.items()
            if name not in existing
        ]
        if not missing:
            return created
        transient: KafkaException | None = None
        for name, future in admin.create_topics(missing, operation_timeout=timeout_s).items():
            try:
                future.result()
                created.append(name)
            except KafkaException as exc:
                if error_code(exc) == KafkaError.TOPIC_ALREADY_EXISTS:
                    continue
                if not is_transient(exc) or time.monotonic() > deadline:
                    raise
                transient = exc
        if transient is None:
            return created
        logger.info("creating topics again after a transient error: %s", transient)
        time.sleep(0.5)


def delete_topics(kafka: KafkaTarget, names: list[str], timeout_s: float = 30) -> list[str]:
    """Delete the topics and wait for the broker's answer (a bare ``delete_topics`` call returns futures
    that a process about to exit never sends); returns the names deleted. Never raises: it cleans up."""
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import AdminClient

    if not names:
        return []
    admin = AdminClient(as_client_config(kafka))
    deleted = []
    for name, future in admin.delete_topics(list(names), operation_timeout=timeout_s).items():
        try:
            future.result(timeout=timeout_s + 5)
            deleted.append(name)
        except KafkaException as exc:
            if error_code(exc) != KafkaError.UNKNOWN_TOPIC_OR_PART:
                logger.warning("topic %s not deleted: %s", name, exc)
        except Exception as exc:
            logger.warning("topic %s not deleted: %s", name, exc)
    return deleted


def project_topics(settings: Settings) -> dict[str, int]:
    return {
        settings.topic_raw: settings.topic_partitions,
        settings.topic_enriched: settings.topic_partitions,
        settings.topic_dlq: max(1, settings.topic_partitions // 2),
    }
