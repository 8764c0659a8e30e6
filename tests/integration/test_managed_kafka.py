"""ClickPulse against a broker that requires SASL, as a managed Kafka does: one private broker started by
the stack launcher with a SASL_PLAINTEXT listener (PLAIN and SCRAM users), on free ports.

Everything Kafka-facing runs with ``CLICKPULSE_KAFKA_*`` settings only: topic creation, the real collector,
the real consumer (into a private Redis prefix) and the Dagster export's reader; a wrong password fails at
once with a clear error, which never contains the password.
"""

from __future__ import annotations

import socket
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import redis
from fastapi.testclient import TestClient

from assets.kafka_export.reader import lookup_ranges, read_ranges
from clickpulse.settings import Settings
from clickpulse.stack import kafka
from clickpulse.stack.processes import stop
from clickpulse.stack.topics import ensure_topics
from orchestration.resources import KafkaResource
from streaming.collector import create_app
from streaming.kafka_io import KafkaCredentialsError, check_credentials, client_config, end_offsets
from streaming.keyspace import Keyspace, read_video_stats
from streaming.redis_conn import RedisRouter
from tests.serving_support import ConsumerThread, serving
from tests.support.ingest import make_event

USER = "clickpulse-svc"
PASSWORD = "s3cret-Passw0rd"
WRONG = "not-the-Passw0rd"
WRITE_KEY = "managed-write-key"


def _free_ports(count: int) -> list[int]:
    socks = [socket.socket() for _ in range(count)]
    try:
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in socks]
    finally:
        for sock in socks:
            sock.close()


@pytest.fixture(scope="module")
def sasl_node(tmp_path_factory: pytest.TempPathFactory, settings: Settings) -> Iterator[kafka.KafkaNode]:
    data_dir = tmp_path_factory.mktemp("sasl-kafka")
    broker, controller, sasl = _free_ports(3)
    node = kafka.KafkaNode(1, "127.0.0.1", broker, controller, sasl_port=sasl)
    started = kafka.start_nodes(data_dir, settings.cache_dir, "sasl", [node], 3, sasl_users={USER: PASSWORD})
    try:
        kafka.wait_ready(node.bootstrap, 1, 120, [p.log_file for p in started])
        yield node
    finally:
        stop(data_dir, "sasl-1")


def _sasl_settings(node: kafka.KafkaNode, mechanism: str, password: str, **extra: Any) -> Settings:
    return Settings(
        KAFKA_BOOTSTRAP_SERVERS=node.sasl_bootstrap,
        CLICKPULSE_KAFKA_SECURITY_PROTOCOL="SASL_PLAINTEXT",
        CLICKPULSE_KAFKA_SASL_MECHANISM=mechanism,
        CLICKPULSE_KAFKA_SASL_USERNAME=USER,
        CLICKPULSE_KAFKA_SASL_PASSWORD=password,
        **extra,
    )


@pytest.fixture
def managed(sasl_node: kafka.KafkaNode, redis_url: str, unique_name: Any) -> Iterator[Settings]:
    """SCRAM-SHA-512 (MSK's mechanism) settings on private topics, group and Redis prefix."""
    name = unique_name("managed")
    settings = _sasl_settings(
        sasl_node,
        "SCRAM-SHA-512",
        PASSWORD,
        REDIS_URL=redis_url,
        CLICKPULSE_TOPIC_RAW=f"{name}.raw",
        CLICKPULSE_TOPIC_ENRICHED=f"{name}.enriched",
        CLICKPULSE_TOPIC_DLQ=f"{name}.dlq",
        CLICKPULSE_REDIS_PREFIX=name,
        CLICKPULSE_LIVE_CHANNEL_PREFIX=name,
        CLICKPULSE_CONSUMER_GROUP=f"{name}.realtime",
        CLICKPULSE_CONSUMER_METRICS_PORT=0,
        CLICKPULSE_WRITE_KEYS=WRITE_KEY,
    )
    yield settings
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"{name}:*", count=1000))
        if keys:
            client.unlink(*keys)
    finally:
        client.close()


def test_collector_consumer_and_export_run_over_sasl(managed: Settings) -> None:
    settings = managed
    # A client with only bootstrap.servers (all the project passed before) gets no answer here.
    assert check_credentials(settings.kafka_bootstrap_servers, timeout_s=3) is False
    connection = client_config(settings)
    assert set(
        ensure_topics(connection, {settings.topic_raw: 3, settings.topic_enriched: 3, settings.topic_dlq: 1})
    )

    videos = [f"v-{i}" for i in range(4)]
    events = [
        make_event(kind, video_id=videos[i % len(videos)], user_id=f"user-{i % 7}")
        for i, kind in enumerate(["impression", "click", "impression", "conversion", "click"] * 12)
    ]
    bad = {"event_type": "click"}  # no ids: dead-lettered
    with serving(create_app(settings)) as collector:
        answer = httpx.post(
            f"{collector.url}/v1/events",
            content=orjson.dumps([*events, bad]),
            headers={"Authorization": f"Bearer {WRITE_KEY}"},
            timeout=30,
        )
    assert answer.status_code == 200, answer.text
    assert answer.json()["accepted"] == len(events) and len(answer.json()["rejected"]) == 1
    assert sum(end_offsets(connection, settings.topic_raw).values()) == len(events)
    assert sum(end_offsets(connection, settings.topic_dlq).values()) == 1

    consumer = ConsumerThread(settings, batch_size=100).start()
    try:
        consumer.wait_for(len(events), timeout_s=60)
    finally:
        consumer.stop()
    router = RedisRouter.from_settings(settings)
    try:
        ks = Keyspace.from_settings(settings)
        for video in videos:
            mine = Counter(e["event_type"] for e in events if e["video_id"] == video)
            stats = read_video_stats(router, video, time.time(), keyspace=ks)
            assert (stats["impressions"], stats["clicks"], stats["conversions"]) == (
                mine["impression"],
                mine["click"],
                mine["conversion"],
            )
    finally:
        router.close()

    # The Dagster export's reader, with the security settings as its resource fields (EnvVars in prod).
    resource = KafkaResource(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        enriched_topic=settings.topic_enriched,
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username=USER,
        sasl_password=PASSWORD,
    )
    now = datetime.now(UTC)
    with resource.consumer() as reader:
        ranges = lookup_ranges(
            reader, settings.topic_enriched, now - timedelta(hours=1), now + timedelta(hours=1)
        )
        exported = [
            r for batch in read_ranges(reader, settings.topic_enriched, ranges, batch_size=500) for r in batch
        ]
    values = [value for value, *_ in exported]
    assert None not in values
    assert sorted(orjson.loads(v or b"")["event_id"] for v in values) == sorted(e["event_id"] for e in events)


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256"])
def test_other_mechanisms_log_in(sasl_node: kafka.KafkaNode, mechanism: str) -> None:
    assert check_credentials(client_config(_sasl_settings(sasl_node, mechanism, PASSWORD)), timeout_s=10)


def test_a_wrong_password_fails_at_once_with_a_clear_error(
    sasl_node: kafka.KafkaNode, tmp_path: Path
) -> None:
    wrong = _sasl_settings(sasl_node, "SCRAM-SHA-512", WRONG, CLICKPULSE_TOPIC_RAW="unused.raw")
    started = time.monotonic()
    with pytest.raises(KafkaCredentialsError) as refused:
        check_credentials(client_config(wrong), timeout_s=20)
    assert time.monotonic() - started < 10, "a refused login must not wait for the timeout"
    message = str(refused.value)
    assert "SASL authentication" in message and "CLICKPULSE_KAFKA_SASL_USERNAME" in message
    assert WRONG not in message and WRONG not in repr(wrong)

    # The collector does not start (a Kafka that is only down would not stop it: it answers 503 then).
    with pytest.raises(KafkaCredentialsError), TestClient(create_app(wrong)):
        pass
    # Nor does the export's reader.
    resource = KafkaResource(
        bootstrap_servers=wrong.kafka_bootstrap_servers,
        enriched_topic="unused",
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username=USER,
        sasl_password=WRONG,
    )
    with pytest.raises(KafkaCredentialsError), resource.consumer():
        pass
