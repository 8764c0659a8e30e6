"""A Redis filled to its maxmemory evicts caches and windows (TTL) but never live counters (no TTL)."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from clickpulse.settings import Settings
from clickpulse.stack import redis_server
from clickpulse.stack.processes import stop
from streaming.consumer import RealtimeConsumer
from streaming.keyspace import Keyspace, write_user_attributes, write_video_metadata
from streaming.redis_conn import Family, RedisRouter
from tests.integration.consumer_support import Expected, compare, handmade, now_ms, produce, simulated

MAXMEMORY = "6mb"


def _spare_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def tiny_redis(tmp_path: Path) -> Iterator[str]:
    port = _spare_port()
    proc = redis_server.start_instance(tmp_path, "redis-evict", "127.0.0.1", port, MAXMEMORY)
    assert proc is not None
    url = f"redis://127.0.0.1:{port}/0"
    try:
        redis_server.wait_ready(url, 20, proc.log_file)
        yield url
    finally:
        stop(tmp_path, "redis-evict", timeout_s=10)


def test_full_redis_evicts_caches_and_keeps_live_counters(
    settings: Settings, tiny_redis: str, new_topic: Callable[..., str], unique_name: Callable[[str], str]
) -> None:
    own = settings.model_copy(
        update={
            "redis_url": tiny_redis,
            "topic_raw": new_topic("raw", 3),
            "topic_enriched": new_topic("enriched", 3),
            "topic_dlq": new_topic("dlq", 1),
            "redis_prefix": unique_name("t"),
        }
    )
    router = RedisRouter.from_settings(own)
    client = router.client(Family.LIVE)
    assert client.config_get("maxmemory-policy")["maxmemory-policy"] == "volatile-lru"
    ks = Keyspace.from_settings(own)
    lateness = own.allowed_lateness_minutes * 60
    first = simulated(3000, seed=3, users=400, videos=80)[0]
    produce(own.kafka_bootstrap_servers, own.topic_raw, first)

    consumer = RealtimeConsumer(own, group=f"{ks.prefix}.g", router=router, keyspace=ks)
    try:
        consumer.run(stop_when=lambda s: s.records >= len(first))
        # Fill Redis with caches far beyond maxmemory, as the Dagster assets would.
        blob = "x" * 400
        for chunk in range(40):
            write_video_metadata(
                router,
                ({"video_id": f"cache-{chunk}-{i}", "title": blob, "genre": "drama"} for i in range(1000)),
                keyspace=ks,
            )
            write_user_attributes(
                router, ({"user_id": f"cache-{chunk}-{i}", "country": "DE"} for i in range(200)), keyspace=ks
            )
        # Keep counting while Redis is full.
        second = handmade(1500, 4, now_ms(), lateness)
        produce(own.kafka_bootstrap_servers, own.topic_raw, second)
        consumer.run(stop_when=lambda s: s.records >= len(first) + len(second))
    finally:
        consumer.close()

    info = client.info()
    assert info["evicted_keys"] > 0
    assert 0 < info["used_memory"] <= 1.1 * info["maxmemory"]
    metadata_left = sum(1 for _ in client.scan_iter(match=f"{ks.prefix}:*:meta", count=1000))
    assert metadata_left < 40 * 1000, "caches should have been evicted"
    assert consumer.stats.retries == 0, "writes must keep succeeding while caches can be evicted"
    expected = Expected.of(first + second, lateness, time.time())
    assert compare(router, ks, expected, live_only=True) == []
    for key in client.scan_iter(match=f"{ks.prefix}:*", count=1000):
        if key.endswith((":totals", ":uniq", ":trending", ":wm")) or (":ctr:" in key and ":h:" not in key):
            assert client.ttl(key) == -1, f"live counter {key} has a TTL"
    router.close()
