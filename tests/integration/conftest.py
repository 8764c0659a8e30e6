"""Fixtures for the integration tests that share the stack's cluster mode."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from confluent_kafka.admin import AdminClient

from clickpulse.settings import Settings
from clickpulse.stack import launcher
from clickpulse.stack.topics import ensure_topics
from streaming.redis_conn import connect


@pytest.fixture
def on_cluster(settings: Settings, unique_name: Callable[[str], str]) -> Iterator[Settings]:
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
            "redis_url": launcher.CLUSTER_REDIS_URL,
            "topic_raw": raw,
            "topic_enriched": enriched,
            "topic_dlq": dlq,
            "redis_prefix": prefix,
            "live_channel_prefix": prefix,
        }
    )
    yield own
    client = connect(launcher.CLUSTER_REDIS_URL)
    for key in list(client.scan_iter(match=f"{prefix}:*", count=1000)):
        client.delete(key)
    client.close()
    # keep the client until the futures resolve: a dropped AdminClient cancels the deletion
    admin = AdminClient({"bootstrap.servers": launcher.CLUSTER_BOOTSTRAP})
    for future in admin.delete_topics(list(topics), operation_timeout=10).values():
        future.result(timeout=30)
