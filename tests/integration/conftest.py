"""Fixtures shared by the integration tests: private names on the shared stack, and on its cluster mode."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from confluent_kafka.admin import AdminClient

from clickpulse.settings import Settings
from clickpulse.stack import launcher
from clickpulse.stack.topics import ensure_topics
from streaming.redis_conn import RedisRouter, connect
from tests.integration.recs_support import delete_prefix


@pytest.fixture
def private(
    settings: Settings, new_topic: Callable[..., str], unique_name: Callable[[str], str]
) -> Iterator[Settings]:
    """Settings with this test's own topics, Redis key prefix and channel namespace; keys deleted after."""
    prefix = unique_name("t")
    own = settings.model_copy(
        update={
            "topic_raw": new_topic("raw", 3),
            "topic_enriched": new_topic("enriched", 3),
            "topic_dlq": new_topic("dlq", 1),
            "redis_prefix": prefix,
            "live_channel_prefix": prefix,
            "consumer_session_timeout_ms": 6000,
        }
    )
    yield own
    router = RedisRouter.from_settings(own)
    for client in router.clients():
        delete_prefix(client, prefix)
    router.close()


@pytest.fixture
def on_cluster(
    settings: Settings, cluster_redis_url: str, unique_name: Callable[[str], str]
) -> Iterator[Settings]:
    """Settings on the cluster stack (started if needed): own topics (6 partitions, RF 3; DLQ 1) and
    key prefix, cleaned up afterwards."""
    launcher.up(settings, cluster=True)
    prefix = unique_name("t")
    topics = {unique_name("raw"): 6, unique_name("enriched"): 6, unique_name("dlq"): 1}
    ensure_topics(launcher.CLUSTER_BOOTSTRAP, topics, replication=3)
    raw, enriched, dlq = topics
    own = settings.model_copy(
        update={
            "kafka_bootstrap_servers": launcher.CLUSTER_BOOTSTRAP,
            "redis_url": cluster_redis_url,
            "topic_raw": raw,
            "topic_enriched": enriched,
            "topic_dlq": dlq,
            "redis_prefix": prefix,
            "live_channel_prefix": prefix,
        }
    )
    yield own
    client = connect(cluster_redis_url)
    delete_prefix(client, prefix)
    client.close()
    # keep the client until the futures resolve: a dropped AdminClient cancels the deletion
    admin = AdminClient({"bootstrap.servers": launcher.CLUSTER_BOOTSTRAP})
    for future in admin.delete_topics(list(topics), operation_timeout=10).values():
        future.result(timeout=30)
