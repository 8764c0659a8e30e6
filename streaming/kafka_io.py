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


def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    """The high watermark (next offset to be written) of every partition of ``topic``."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "clickpulse.probe", "logger": _rdkafka_logger}
    )
    try:
        meta = consumer.list_topics(topic, timeout=10).topics[topic]
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in meta.partitions
        }
    finally:
        consumer.close()


def committed_offsets(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    """The offsets ``group`` committed on ``topic`` (negative where it committed none)."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "enable.auto.commit": False,
            "logger": _rdkafka_logger,
        }
    )
    try:
        meta = consumer.list_topics(topic, timeout=10).topics[topic]
        tps = consumer.committed([TopicPartition(topic, p) for p in meta.partitions], timeout=10)
        return {tp.partition: tp.offset for tp in tps}
    finally:
        consumer.close()


def group_lag(bootstrap: str, group: str, topic: str) -> int:
    """Records of ``topic`` that ``group`` has not committed yet, over all partitions."""
    ends = end_offsets(bootstrap, topic)
    done = committed_offsets(bootstrap, group, topic)
    return sum(max(0, end - max(done.get(p, 0), 0)) for p, end in ends.items())


def wait_caught_up(bootstrap: str, group: str, topic: str, timeout_s: float = 90) -> None:
    """Block until ``group``'s committed offsets reach the current end of every partition of ``topic``."""
    import time

    ends = end_offsets(bootstrap, topic)
    deadline = time.monotonic() + timeout_s
    last: dict[int, int] = {}
    while time.monotonic() < deadline:
        last = committed_offsets(bootstrap, group, topic)
        if all(last.get(p, -1) >= end for p, end in ends.items() if end > 0):
            return
        time.sleep(0.5)
    raise TimeoutError(f"group {group} did not catch up on {topic}: committed {last}, end {ends}")
