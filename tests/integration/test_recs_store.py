"""Versioned publishing on the real Redis (and the Redis Cluster): pointer switch, rollback, TTLs, and a
reader that never sees a half-written version while versions are published and rolled back."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from redis.cluster import RedisCluster

from clickpulse.stack import launcher
from streaming.keyspace import Keyspace
from streaming.recommendations.keys import recs_meta, video_similar
from streaming.recommendations.reader import RecommendationReader
from streaming.recommendations.store import NoPreviousVersionError, RecsStore, decode_list
from streaming.redis_conn import RedisUnavailableError, connect, is_cluster_client
from tests.integration.recs_support import VersionWatcher, delete_prefix, synthetic

TTL_S = 3600


def make_store(url: str, prefix: str, chunk: int = 2000) -> RecsStore:
    return RecsStore(connect(url), Keyspace(prefix=prefix, channel_prefix=prefix), ttl_s=TTL_S, chunk=chunk)


@pytest.fixture
def store(redis_url: str, unique_name: Callable[[str], str]) -> Iterator[RecsStore]:
    prefix = unique_name("recs")
    s = make_store(redis_url, prefix)
    yield s
    delete_prefix(s.client, prefix)
    s.client.close()


@pytest.fixture
def cluster_store(cluster_redis_url: str, unique_name: Callable[[str], str]) -> Iterator[RecsStore]:
    try:
        client = connect(cluster_redis_url)
    except RedisUnavailableError:
        pytest.fail(f"no Redis Cluster at {launcher.CLUSTER_REDIS_URL}: run `clickpulse stack up --cluster`")
    if not is_cluster_client(client):
        pytest.fail(f"{launcher.CLUSTER_REDIS_URL} is not a Redis Cluster")
    prefix = unique_name("recs")
    s = RecsStore(client, Keyspace(prefix=prefix, channel_prefix=prefix), ttl_s=TTL_S, chunk=500)
    yield s
    delete_prefix(client, prefix)
    client.close()


def publish(store: RecsStore, version: str, users: int = 200, videos: int = 60) -> None:
    user_lists, similar, popular = synthetic(version, users, videos, seed=1)
    store.publish(version, user_lists, similar, popular, meta={"model": "test"})


def test_publish_switches_the_pointer_and_keeps_the_previous(store: RecsStore) -> None:
    ks = store.keyspace
    assert store.pointer().current is None
    user_lists, similar, popular = synthetic("m-1", 50, 30, seed=1)
    report = store.publish("m-1", user_lists, similar, popular, meta={"model": "item_item"})
    assert (report.users, report.videos, report.popular, report.previous) == (50, 30, 20, None)
    assert store.pointer().current == "m-1" and store.pointer().previous is None
    for user, items in user_lists:
        assert decode_list(store.client.get(ks.user_recommendations(user, "m-1"))) == ("m-1", items)
    for video, items in similar:
        assert decode_list(store.client.get(video_similar(ks, video, "m-1"))) == ("m-1", items)
    assert decode_list(store.client.get(ks.recs_popular("m-1"))) == ("m-1", popular)

    publish(store, "m-2", users=50, videos=30)
    assert (store.pointer().current, store.pointer().previous) == ("m-2", "m-1")
    assert [v.version for v in store.versions()] == ["m-2", "m-1"]
    assert store.versions()[0].meta["status"] == "complete"
    with pytest.raises(ValueError, match="already published"):
        publish(store, "m-2")


def test_every_version_key_expires_and_the_pointers_do_not(store: RecsStore) -> None:
    publish(store, "m-1", users=20, videos=10)
    ks = store.keyspace
    version_keys = [
        ks.user_recommendations("u00000", "m-1"),
        video_similar(ks, "v0000", "m-1"),
        ks.recs_popular("m-1"),
        recs_meta(ks, "m-1"),
    ]
    for key in version_keys:
        assert 0 < store.client.ttl(key) <= TTL_S, key
    assert store.client.ttl(ks.recs_current()) == -1


def test_rollback_walks_back_and_says_when_there_is_nothing(store: RecsStore) -> None:
    with pytest.raises(NoPreviousVersionError, match="nothing published yet"):
        store.rollback()
    publish(store, "m-1")
    with pytest.raises(NoPreviousVersionError, match="current: m-1"):
        store.rollback()
    publish(store, "m-2")
    publish(store, "m-3")
    assert store.rollback() == ("m-3", "m-2")
    assert (store.pointer().current, store.pointer().previous) == ("m-2", "m-1")
    assert store.rollback() == ("m-2", "m-1")
    assert (store.pointer().current, store.pointer().previous) == ("m-1", None)
    with pytest.raises(NoPreviousVersionError):
        store.rollback()
    # a new publish after a rollback makes the restored version the previous one
    publish(store, "m-4")
    assert (store.pointer().current, store.pointer().previous) == ("m-4", "m-1")
    rolled = {v.version: v.meta for v in store.versions()}
    assert "rolled_back_at_ms" in rolled["m-3"] and "rolled_back_at_ms" not in rolled["m-1"]


def test_rollback_refuses_an_expired_previous_version(store: RecsStore) -> None:
    publish(store, "m-1")
    publish(store, "m-2")
    store.client.delete(recs_meta(store.keyspace, "m-1"))  # what the TTL does to an old version
    with pytest.raises(NoPreviousVersionError, match="m-1 has expired"):
        store.rollback()
    assert store.pointer().current == "m-2"


def test_a_reader_never_sees_a_half_written_version(store: RecsStore) -> None:
    users, videos = 3000, 300
    store.chunk = 250  # many round trips per publish: a wide window for a reader to fall into
    publish(store, "m-1", users, videos)
    user_ids = [f"u{i:05d}" for i in range(users)]
    video_ids = [f"v{i:04d}" for i in range(videos)]
    reader = RecommendationReader.single(store.client, store.keyspace)
    with VersionWatcher(store, user_ids, video_ids) as watcher:
        publish(store, "m-2", users, videos)
        store.rollback()
        publish(store, "m-3", users, videos)
        store.rollback()
        publish(store, "m-4", users, videos)
        served = {reader.recommend(user, 5).model_version for user in user_ids[:50]}
    assert watcher.errors == []
    assert watcher.reads > 20 and len(watcher.seen) >= 2, (watcher.reads, watcher.seen)
    assert served == {"m-4"}


@pytest.mark.cluster
def test_publish_and_rollback_on_the_redis_cluster(cluster_store: RecsStore) -> None:
    store = cluster_store
    users, videos = 1500, 200
    publish(store, "c-1", users, videos)
    ks = store.keyspace
    client = store.client
    assert isinstance(client, RedisCluster), "the cluster store talks to the Redis cluster"
    slots = {client.keyslot(ks.user_recommendations(f"u{i:05d}", "c-1")) for i in range(users)}
    assert len(slots) > 100, "per-user lists spread over the cluster by their {user:ID} tag"
    user_ids = [f"u{i:05d}" for i in range(users)]
    video_ids = [f"v{i:04d}" for i in range(videos)]
    with VersionWatcher(store, user_ids, video_ids) as watcher:
        publish(store, "c-2", users, videos)
        assert store.rollback() == ("c-2", "c-1")
        publish(store, "c-3", users, videos)
    assert watcher.errors == []
    assert watcher.reads > 5 and len(watcher.seen) >= 2
    assert (store.pointer().current, store.pointer().previous) == ("c-3", "c-1")
    reader = RecommendationReader.single(store.client, ks)
    result = reader.recommend("u00007", 5)
    _, expected = synthetic("c-3", users, videos, seed=1)[0][7]
    assert result.model_version == "c-3"
    assert len(result.items) == 5
    assert {i.video_id for i in result.items} <= {v for v, _ in expected}
