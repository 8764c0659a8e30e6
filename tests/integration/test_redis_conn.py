"""connect() and RedisRouter against the real standalone Redis and the Redis Cluster."""

from __future__ import annotations

import socket

import pytest
import redis
from redis.cluster import RedisCluster

from streaming.redis_conn import Family, RedisRouter, RedisUnavailableError, connect


def test_unreachable_url_fails_at_once_naming_it() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"redis://:hunter2@127.0.0.1:{port}/0"
    with pytest.raises(RedisUnavailableError) as info:
        connect(url)
    assert f"127.0.0.1:{port}" in str(info.value) and "hunter2" not in str(info.value)


def test_standalone_node_gives_a_plain_client(redis_url: str) -> None:
    client = connect(redis_url)
    assert type(client) is redis.Redis and client.ping()
    client.close()


def test_router_reuses_one_client_per_url(redis_url: str) -> None:
    db1 = redis_url.rsplit("/", 1)[0] + "/1"
    urls = {f: redis_url for f in Family} | {Family.PROFILES: db1, Family.RECS: db1}
    router = RedisRouter(urls)
    assert len(router.clients()) == 2
    assert router.client(Family.LIVE) is router.client(Family.WINDOWS) is router.client(Family.VIDEOS)
    assert router.client(Family.PROFILES) is router.client(Family.RECS)
    assert router.client(Family.LIVE) is not router.client(Family.PROFILES)
    router.close()
    with pytest.raises(ValueError, match="no Redis URL"):
        RedisRouter({Family.LIVE: redis_url})


@pytest.mark.cluster
def test_cluster_node_gives_a_cluster_client(cluster_redis_url: str) -> None:
    client = connect(cluster_redis_url)
    assert isinstance(client, RedisCluster)
    assert len(client.get_primaries()) == 3
    client.close()
