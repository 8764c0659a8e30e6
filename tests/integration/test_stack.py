"""The local stack against real processes: an isolated Kafka + Redis on spare ports, and the shared one."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis
from confluent_kafka import Consumer, Producer

from clickpulse.settings import Settings
from clickpulse.stack import launcher
from clickpulse.stack.processes import load_managed
from streaming.redis_roles import Role, role_url
from tests.support.ingest import payload


@pytest.fixture(scope="module")
def isolated(tmp_path_factory: pytest.TempPathFactory, settings: Settings) -> Settings:
    """Settings for a second stack on its own ports and data dir; the Kafka jar cache is shared."""
    data_dir: Path = tmp_path_factory.mktemp("stack-data")
    return Settings(
        KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:29092",
        REDIS_URL="redis://127.0.0.1:26379/0",
        CLICKPULSE_DATA_DIR=data_dir,
        CLICKPULSE_CACHE_DIR=settings.cache_dir,
        CLICKPULSE_TOPIC_PARTITIONS=2,
    )


def test_up_down_up_is_idempotent_and_fast(isolated: Settings) -> None:
    try:
        first = launcher.up(isolated)
        assert all(s.up and s.started_by_project for s in first[:2])

        began = time.monotonic()
        again = launcher.up(isolated)
        assert time.monotonic() - began < 10, "a second up with everything running should only check"
        assert [s.version for s in again] == [s.version for s in first]

        if isolated.redis_acl:  # the default: the stack's Redis refuses the default user
            with pytest.raises(redis.AuthenticationError):
                redis.Redis.from_url(isolated.redis_url).ping()
        client = redis.Redis.from_url(role_url(isolated, Role.ADMIN))
        client.set("durable-key", "kept")
        stopped = launcher.down(isolated)
        assert {"kafka-1", "redis"} <= set(stopped)
        assert load_managed(isolated.data_dir, "redis") is None
        assert not any(s.up for s in launcher.status(isolated))

        began = time.monotonic()
        launcher.up(isolated)
        restart_s = time.monotonic() - began
        assert restart_s < 60, f"restart with cached jars took {restart_s:.1f}s"
        assert client.get("durable-key") == b"kept", "AOF should keep keys across a restart"

        from confluent_kafka.admin import AdminClient

        topics = (
            AdminClient({"bootstrap.servers": isolated.kafka_bootstrap_servers})
            .list_topics(timeout=10)
            .topics
        )
        assert {"clicks.raw", "clicks.enriched", "clicks.dlq"} <= set(topics)
        assert len(topics["clicks.raw"].partitions) == 2
    finally:
        launcher.down(isolated)


def test_kafka_round_trip(
    kafka_bootstrap: str, new_topic: Callable[..., str], unique_name: Callable[[str], str]
) -> None:
    topic = new_topic("roundtrip", partitions=2)
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "enable.idempotence": True})
    sent = {f"key-{i}".encode(): f"value-{i}".encode() for i in range(50)}
    for key, value in sent.items():
        producer.produce(topic, value=value, key=key)
    assert producer.flush(15) == 0

    consumer = Consumer(
        {
            "bootstrap.servers": kafka_bootstrap,
            "group.id": unique_name("g"),
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    received: dict[bytes, bytes] = {}
    deadline = time.monotonic() + 30
    while len(received) < len(sent) and time.monotonic() < deadline:
        for msg in consumer.consume(num_messages=100, timeout=1):
            assert msg.error() is None
            record_key = msg.key()
            assert record_key is not None, "every record was sent with a key"
            received[record_key] = payload(msg)
    consumer.close()
    assert received == sent


def test_status_reports_versions(settings: Settings, kafka_bootstrap: str, redis_url: str) -> None:
    statuses = {s.name: s for s in launcher.status(settings)}
    assert statuses["kafka"].up and statuses["redis"].up
    assert statuses["redis"].version == redis.Redis.from_url(redis_url).info("server")["redis_version"]
    assert statuses["kafka"].version.startswith("4.")
