"""The same run on the 3-broker Kafka cluster and the 3-master Redis Cluster gives the same counts
(``on_cluster`` in conftest: this test's own topics, RF 3, and key prefix on the shared cluster stack)."""

from __future__ import annotations

import time

import pytest
from redis.cluster import RedisCluster

from clickpulse.settings import Settings
from streaming.consumer import RealtimeConsumer
from streaming.keyspace import Keyspace
from streaming.redis_conn import Family, RedisRouter
from tests.integration.consumer_support import (
    Expected,
    compare,
    compare_with_simulator_truth,
    garbage,
    handmade,
    now_ms,
    produce,
    redis_state,
    simulated,
    with_duplicates,
)

pytestmark = pytest.mark.cluster


def test_cluster_counts_equal_truth_and_replay(on_cluster: Settings) -> None:
    now = now_ms()
    sim_records, truth = simulated(3000, seed=21)
    records = with_duplicates(
        sim_records + handmade(300, 21, now, on_cluster.allowed_lateness_minutes * 60) + garbage(now),
        0.02,
        21,
        now,
    )
    router = RedisRouter.from_settings(on_cluster)
    live = router.client(Family.LIVE)
    assert isinstance(live, RedisCluster), "connect() should detect the cluster node"
    ks = Keyspace.from_settings(on_cluster)
    produce(on_cluster.kafka_bootstrap_servers, on_cluster.topic_raw, records)
    expected = Expected.of(records, on_cluster.allowed_lateness_minutes * 60, time.time())
    group = f"{on_cluster.redis_prefix}.g"

    for _run in ("first", "replay"):
        # The replay keeps the group's committed offsets and starts over with --from-beginning.
        consumer = RealtimeConsumer(
            on_cluster, group=group, router=router, keyspace=ks, from_beginning=_run == "replay"
        )
        try:
            consumer.run(stop_when=lambda s: s.records >= len(records), idle_timeout_s=30)
        finally:
            consumer.close()
        assert consumer.stats.records == len(records)
        assert consumer.live.snapshots_published >= 1, "live:global snapshots on the Cluster"
        assert compare(router, ks, expected) == []
        assert compare_with_simulator_truth(router, ks, truth) == []
        if _run == "first":
            before = redis_state(live, on_cluster.redis_prefix)
    assert redis_state(live, on_cluster.redis_prefix) == before
    nodes_used = {live.get_node_from_key(key).name for key in before}
    assert len(nodes_used) == 3, "the keyspace should spread over the three masters"
    router.close()
