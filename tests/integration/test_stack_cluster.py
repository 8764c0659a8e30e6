"""Cluster mode: 3 KRaft brokers and a 3-master Redis Cluster on loopback ports."""

from __future__ import annotations

import time
from typing import Any

import pytest
import redis
from confluent_kafka import Producer
from redis.cluster import RedisCluster

from clickpulse.settings import Settings
from clickpulse.stack import launcher
from clickpulse.stack.processes import stop
from clickpulse.stack.redis_server import CLUSTER_PORTS
from clickpulse.stack.topics import ensure_topics

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def cluster(settings: Settings) -> Settings:
    launcher.up(settings, cluster=True)
    return settings


def test_cluster_key_lands_on_owning_node(cluster: Settings, cluster_redis_url: str) -> None:
    client = RedisCluster.from_url(cluster_redis_url)
    login = redis.Redis.from_url(cluster_redis_url).connection_pool.connection_kwargs
    keys = [f"test:{{video:{i}}}:clicks" for i in range(30)]
    for key in keys:
        client.set(key, key)
    # redis-py annotates cluster_slots() as list[Any], but RedisCluster parses CLUSTER SLOTS with
    # redis.cluster.parse_cluster_slots into {(first, last): {"primary": (host, port), "replicas": [...]}}.
    slots: dict[tuple[int, int], dict[str, Any]] = client.cluster_slots()  # type: ignore[assignment]
    for key in keys:
        slot = client.keyslot(key)
        owner = next(node for (lo, hi), node in slots.items() if lo <= slot <= hi)
        direct = redis.Redis(
            host=owner["primary"][0],
            port=owner["primary"][1],
            username=login.get("username"),
            password=login.get("password"),
        )
        assert direct.get(key) == key.encode()
    nodes_with_keys = {
        next(n["primary"] for (lo, hi), n in slots.items() if lo <= client.keyslot(k) <= hi) for k in keys
    }
    assert len(nodes_with_keys) == 3, "30 keys should spread over all three masters"
    for key in keys:
        client.delete(key)


def test_replicated_topic_accepts_writes_with_a_broker_down(cluster: Settings, unique_name) -> None:
    topic = unique_name("rf3")
    ensure_topics(launcher.CLUSTER_BOOTSTRAP, {topic: 3}, replication=3)
    assert stop(cluster.data_dir, "kafka-cluster-3")
    try:
        producer = Producer(
            {
                "bootstrap.servers": launcher.CLUSTER_BOOTSTRAP,
                "acks": "all",
                "enable.idempotence": True,
                "message.timeout.ms": 30000,
            }
        )
        delivered: list[str] = []
        for i in range(30):
            producer.produce(
                topic,
                value=str(i).encode(),
                on_delivery=lambda err, msg: delivered.append("ok" if err is None else str(err)),
            )
        producer.flush(45)
        assert delivered == ["ok"] * 30
    finally:
        began = time.monotonic()
        launcher.up(cluster, cluster=True)
        assert time.monotonic() - began < 120


def test_the_redis_cluster_comes_back_after_its_nodes_are_stopped(
    cluster: Settings, cluster_redis_url: str
) -> None:
    """Nodes restarted from their nodes.conf rejoin the same cluster (no new `--cluster create`, which
    would refuse nodes that already know each other), with their data."""
    key = "test:{restart}:kept"
    client = RedisCluster.from_url(cluster_redis_url)
    client.set(key, "yes")
    client.close()
    for _ in range(2):
        for port in CLUSTER_PORTS:
            assert stop(cluster.data_dir, f"redis-cluster-{port}")
        launcher.up(cluster, cluster=True)
        client = RedisCluster.from_url(cluster_redis_url)
        assert client.get(key) == b"yes"
        assert client.cluster_info()["cluster_state"] == "ok"
        client.close()
    RedisCluster.from_url(cluster_redis_url).delete(key)
