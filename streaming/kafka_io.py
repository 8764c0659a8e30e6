"""Kafka client configuration shared by the collector, the bridge, the consumer and the simulator.

One place decides delivery semantics: producers are idempotent with acks=all; consumers store offsets
by hand (only after the sink wrote) and let librdkafka commit what was stored.
"""

from __future__ import annotations

import logging
from typing import Any

from clickpulse.settings import Settings

logger = logging.getLogger(__name__)
_rdkafka_logger = logging.getLogger("rdkafka")


def producer_config(settings: Settings, **overrides: Any) -> dict[str, Any]:
    """Idempotent producer: retries never duplicate or reorder records within a partition."""
    config: dict[str, Any] = {
        "bootstrap.servers": settings.kafka_bootstrap_servers,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "compression.type": "lz4",
        "batch.size": 512 * 1024,
        "queue.buffering.max.messages": 200_000,
        "message.timeout.ms": 30_000,
        "logger": _rdkafka_logger,
    }
    config.update(overrides)
    return config


def consumer_config(settings: Settings, group_id: str, **overrides: Any) -> dict[str, Any]:
    """Manual offset store: an offset is stored only once its record reached every sink."""
    config: dict[str, Any] = {
        "bootstrap.servers": settings.kafka_bootstrap_servers,
        "group.id": group_id,
        "enable.auto.commit": True,
        "auto.commit.interval.ms": 1000,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "partition.assignment.strategy": "cooperative-sticky",
        "fetch.min.bytes": 1,
        "fetch.wait.max.ms": 50,
        "logger": _rdkafka_logger,
    }
    config.update(overrides)
    return config


def admin_config(settings: Settings) -> dict[str, Any]:
    return {"bootstrap.servers": settings.kafka_bootstrap_servers, "logger": _rdkafka_logger}
