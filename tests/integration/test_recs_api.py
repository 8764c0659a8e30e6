"""``GET /v1/recommendations/{user_id}`` and the next-up push, against the real Redis."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
import redis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import SecretStr

from clickpulse.settings import Settings
from serving.recommendations import MAX_K, RecommendationsResponse
from streaming.consumer import UserClicks
from streaming.contract import MAX_ID_LENGTH
from streaming.keyspace import Keyspace
from streaming.recommendations.blend import REASON_PERSONAL, REASON_POPULAR, because
from streaming.recommendations.next_up import NextUpPublisher
from streaming.recommendations.reader import RecommendationReader, ab_bucket
from streaming.recommendations.store import RecsStore
from streaming.redis_conn import RedisRouter, connect
from tests.integration.recs_support import api_app, delete_prefix

KEY = "test-read-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
TRENDING = {"t1": 50.0, "t2": 40.0, "t3": 30.0, "t4": 20.0, "t5": 10.0}


@dataclass
class Env:
    client: TestClient
    app: FastAPI
    store: RecsStore
    keyspace: Keyspace
    settings: Settings
    redis: redis.Redis


@pytest.fixture
def env(settings: Settings, redis_url: str, unique_name: Callable[[str], str]) -> Iterator[Env]:
    prefix = unique_name("recs")
    own = settings.model_copy(
        update={"redis_prefix": prefix, "live_channel_prefix": prefix, "read_keys": SecretStr(f"other,{KEY}")}
    )
    rc = connect(redis_url)
    ks = Keyspace.from_settings(own)
    app = api_app(own, RedisRouter.single(rc))
    store = RecsStore(rc, ks, ttl_s=600)
    rc.zadd(ks.trending(), TRENDING)  # what the consumer keeps; no trending_meta = no decay
    with TestClient(app) as client:
        yield Env(client, app, store, ks, own, rc)  # type: ignore[arg-type]
    delete_prefix(rc, prefix)
    rc.close()


def publish_small(store: RecsStore, version: str) -> None:
    store.publish(
        version,
        [("alice", [("a1", 0.9), ("a2", 0.8), ("a3", 0.7), ("w1", 0.6)]), ("bob", [("b1", 1.0)])],
        [("w1", [("n1", 0.8), ("n2", 0.4)]), ("w2", [("n3", 0.5)]), ("b1", [("a1", 0.3)])],
        [("p1", 100.0), ("p2", 50.0)],
    )


def test_read_keys_and_parameters_are_checked(env: Env) -> None:
    assert env.client.get("/v1/recommendations/alice").status_code == 401
    assert (
        env.client.get("/v1/recommendations/alice", headers={"Authorization": "Bearer nope"}).status_code
        == 401
    )
    assert env.client.get("/v1/recommendations/alice", headers={"Authorization": KEY}).status_code == 401
    assert env.client.get("/v1/recommendations/alice?k=0").status_code == 401  # the key is checked first
    # The route checks its parameters itself (README "API throughput and latency work"): the answers are
    # FastAPI's usual 422s, and the edges of the range still pass.
    for query, error_type in [
        ("k=0", "greater_than_equal"),
        (f"k={MAX_K + 1}", "less_than_equal"),
        ("k=x", "int_parsing"),
        ("k=1.5", "int_parsing"),
        ("k=", "int_parsing"),
        ("k=%C2%B2", "int_parsing"),  # a Unicode digit that is not an ASCII one
    ]:
        response = env.client.get(f"/v1/recommendations/alice?{query}", headers=AUTH)
        assert response.status_code == 422, query
        [detail] = response.json()["detail"]
        assert (detail["type"], detail["loc"]) == (error_type, ["query", "k"]), query
    too_long = "u" * (MAX_ID_LENGTH + 1)
    response = env.client.get(f"/v1/recommendations/{too_long}", headers=AUTH)
    assert response.status_code == 422
    assert [(d["type"], d["loc"]) for d in response.json()["detail"]] == [
        ("string_too_long", ["path", "user_id"])
    ]
    for k, expected in [("", 5), ("?k=1", 1), (f"?k={MAX_K}", 5), ("?k=+3", 3), ("?k=03", 3)]:
        body = env.client.get(f"/v1/recommendations/alice{k}", headers=AUTH).json()
        assert len(body["items"]) == expected, k  # five trending videos exist; no k means 10
    longest = "u" * MAX_ID_LENGTH
    assert env.client.get(f"/v1/recommendations/{longest}", headers=AUTH).json()["user_id"] == longest


def test_openapi_documents_the_parameters_the_route_checks(env: Env) -> None:
    operation = env.client.get("/openapi.json").json()["paths"]["/v1/recommendations/{user_id}"]["get"]
    params = {p["name"]: (p["in"], p["required"], p["schema"]) for p in operation["parameters"]}
    assert params["user_id"][:2] == ("path", True)
    assert (params["user_id"][2]["minLength"], params["user_id"][2]["maxLength"]) == (1, MAX_ID_LENGTH)
    assert params["k"][:2] == ("query", False)
    assert (params["k"][2]["minimum"], params["k"][2]["maximum"], params["k"][2]["default"]) == (1, MAX_K, 10)
    assert {"200", "401", "422"} <= set(operation["responses"])


def test_before_any_publish_everyone_gets_trending(env: Env) -> None:
    body = env.client.get("/v1/recommendations/alice?k=3", headers=AUTH).json()
    assert body == {
        "user_id": "alice",
        "model_version": None,
        "items": [
            {"video_id": v, "score": pytest.approx(s), "reason": REASON_POPULAR}
            for v, s in [("t1", 0.1), ("t2", 0.08), ("t3", 0.06)]
        ],
    }


def test_cold_start_user_is_served_from_trending(env: Env) -> None:
    publish_small(env.store, "m-1")
    body = env.client.get("/v1/recommendations/newcomer?k=4", headers=AUTH).json()
    assert body["model_version"] == "m-1"
    expected = sorted(TRENDING, key=lambda v: -TRENDING[v])[:4]
    assert [i["video_id"] for i in body["items"]] == expected
    assert {i["reason"] for i in body["items"]} == {REASON_POPULAR}


def test_blend_of_precomputed_list_and_recent_clicks(env: Env) -> None:
    publish_small(env.store, "m-1")
    env.redis.rpush(env.keyspace.user_recent("alice"), "w1", "w2")  # newest first, as the consumer keeps it
    body = env.client.get("/v1/recommendations/alice?k=6", headers=AUTH).json()
    assert body["user_id"] == "alice" and body["model_version"] == "m-1"
    items = {i["video_id"]: i for i in body["items"]}
    assert len(body["items"]) == 6
    assert "w1" not in items and "w2" not in items, "watched videos are removed, even from the stored list"
    assert items["n1"]["reason"] == because("w1")
    assert items["a1"]["reason"] == REASON_PERSONAL
    scores = [i["score"] for i in body["items"]]
    assert scores == sorted(scores, reverse=True)
    assert body["items"][0]["video_id"] in {"a1", "n1"}


def test_ab_split_serves_the_previous_version_to_its_share(env: Env) -> None:
    publish_small(env.store, "m-1")
    publish_small(env.store, "m-2")
    reader = RecommendationReader.from_settings(RedisRouter.single(env.redis), env.settings)
    reader.ab_share = 0.5
    env.app.state.recommendation_reader = reader
    users = [f"user-{i}" for i in range(40)]
    served = {
        u: env.client.get(f"/v1/recommendations/{u}", headers=AUTH).json()["model_version"] for u in users
    }
    assert served == {u: "m-1" if ab_bucket(u) < 0.5 else "m-2" for u in users}
    assert set(served.values()) == {"m-1", "m-2"}


def test_next_up_is_pushed_within_a_second_of_the_hook(env: Env, redis_url: str) -> None:
    publish_small(env.store, "m-1")
    reader = RecommendationReader.from_settings(RedisRouter.single(env.redis), env.settings)
    hook = NextUpPublisher(reader, k=3)
    listener = redis.Redis.from_url(redis_url).pubsub(ignore_subscribe_messages=True)
    listener.subscribe(env.keyspace.channel_user("alice"))
    time.sleep(0.1)
    click = {"video_id": "w1", "button_id": "play", "event_time": "2024-05-01T00:00:00Z"}
    began = time.monotonic()
    hook([UserClicks("alice", (click,))])
    message = None
    while message is None and time.monotonic() - began < 1.0:
        message = listener.get_message(timeout=0.05)
    elapsed = time.monotonic() - began
    listener.close()
    assert message is not None, "no next_up message within a second"
    body = orjson.loads(message["data"])
    assert body["type"] == "next_up" and body["user_id"] == "alice" and body["after"] == "w1"
    assert body["model_version"] == "m-1"
    # the click's best neighbour ties with the head of the stored list (both 1.0); ties go by video id
    assert body["items"][:2] == [
        {"video_id": "a1", "score": 1.0, "reason": REASON_PERSONAL},
        {"video_id": "n1", "score": 1.0, "reason": because("w1")},
    ]
    assert "w1" not in {i["video_id"] for i in body["items"]}
    assert elapsed < 1.0 and hook.published == 1


def test_the_event_loop_reader_agrees_with_the_sync_reader(env: Env, redis_url: str) -> None:
    """The API serves from ``recommend_async`` (asyncio clients, no thread pool); it returns what the sync
    ``recommend`` (next-up push, CLI) returns, for listed, clicking, cold-start and unknown users, on the
    multiplexed client (standalone Redis) and on redis-py's asyncio client (what a Cluster gets)."""
    import asyncio

    import redis.asyncio as aioredis

    from streaming.multiplexed_redis import AsyncReads, MultiplexedRedis, RedisPyReads
    from streaming.redis_conn import Family

    publish_small(env.store, "m-1")
    env.redis.rpush(env.keyspace.user_recent("alice"), "w1", "w2")
    env.redis.rpush(env.keyspace.user_recent("carol"), "b1", "w2")
    reader = RecommendationReader.from_settings(RedisRouter.single(env.redis), env.settings)

    async def compare() -> None:
        kinds: list[AsyncReads] = [
            MultiplexedRedis.from_url(redis_url),
            RedisPyReads(aioredis.Redis.from_url(redis_url, decode_responses=True)),
        ]
        try:
            for client in kinds:
                clients = {family: client for family in Family}
                for user in ("alice", "bob", "carol", "newcomer"):
                    for k in (1, 3, 10):
                        expected = reader.recommend(user, k)
                        assert await reader.recommend_async(user, k, clients) == expected, (user, client)
        finally:
            for client in kinds:
                await client.aclose()

    asyncio.run(compare())
    body = env.client.get("/v1/recommendations/alice?k=10", headers=AUTH).json()
    assert env.app.state.recommendation_clients is not None, "the API took the event-loop path"
    assert (
        body == RecommendationsResponse.model_validate(reader.recommend("alice", 10).as_dict()).model_dump()
    )


def publish_other(store: RecsStore, version: str) -> None:
    """Different lists from ``publish_small``'s, so a list read under the wrong version would show."""
    store.publish(
        version,
        [("alice", [("z1", 0.9), ("z2", 0.5)]), ("bob", [("z3", 1.0), ("a1", 0.2)])],
        [("w1", [("y1", 0.9)]), ("w2", [("y2", 0.7), ("y3", 0.6)]), ("b1", [("y4", 0.3)])],
        [("p9", 100.0)],
    )


def test_one_round_when_the_pointer_holds_and_the_shared_lists_are_known(env: Env, redis_url: str) -> None:
    """Round 1 reads each user's list under the last pointer seen; neighbour lists are kept per version.
    Warm, a request takes one round trip; after a publish or a rollback the first request takes two
    and serves the new version's lists. Every answer equals a fresh reader's (no state) at that moment."""
    import asyncio

    from streaming.multiplexed_redis import Command, MultiplexedRedis
    from streaming.redis_conn import Family

    class Counting(MultiplexedRedis):
        rounds = 0

        async def execute(self, commands: Sequence[Command]) -> list[Any]:
            Counting.rounds += 1
            return await super().execute(commands)

    env.redis.rpush(env.keyspace.user_recent("alice"), "w1", "w2")
    env.redis.rpush(env.keyspace.user_recent("bob"), "w2", "b1")
    publish_small(env.store, "m-1")
    reader = RecommendationReader.from_settings(RedisRouter.single(env.redis), env.settings)

    def fresh(user: str) -> Any:
        return RecommendationReader.from_settings(RedisRouter.single(env.redis), env.settings).recommend(
            user, 5
        )

    async def rounds_for(user: str, client: MultiplexedRedis) -> tuple[int, Any]:
        before = Counting.rounds
        result = await reader.recommend_async(user, 5, {family: client for family in Family})
        return Counting.rounds - before, result

    async def scenario() -> list[tuple[str, int, str | None]]:
        client = Counting.from_url(redis_url)
        seen = []
        try:
            for step, user in (
                ("cold", "alice"),  # no pointer seen yet, no shared lists: two rounds
                ("warm", "alice"),  # one round
                ("warm", "bob"),  # bob's anchors: w2 known, b1 not: two rounds
                ("warm", "bob"),
            ):
                rounds, result = await rounds_for(user, client)
                assert result == await asyncio.to_thread(fresh, user), (step, user)
                seen.append((f"{step}:{user}", rounds, result.model_version))
            await asyncio.to_thread(publish_other, env.store, "m-2")
            for user in ("alice", "alice"):
                rounds, result = await rounds_for(user, client)
                assert result == await asyncio.to_thread(fresh, user), ("m-2", user)
                seen.append((f"m-2:{user}", rounds, result.model_version))
            await asyncio.to_thread(env.store.rollback)
            rounds, result = await rounds_for("alice", client)
            assert result == await asyncio.to_thread(fresh, "alice"), "rollback"
            seen.append(("rollback:alice", rounds, result.model_version))
        finally:
            await client.aclose()
        return seen

    assert asyncio.run(scenario()) == [
        ("cold:alice", 2, "m-1"),
        ("warm:alice", 1, "m-1"),
        ("warm:bob", 2, "m-1"),
        ("warm:bob", 1, "m-1"),
        ("m-2:alice", 2, "m-2"),
        ("m-2:alice", 1, "m-2"),
        ("rollback:alice", 2, "m-1"),  # round 1 read alice's list under m-2; m-1's neighbours still known
    ]


def test_concurrent_requests_survive_the_shared_lists_being_emptied(env: Env, redis_url: str) -> None:
    """A shared-lists table of one entry empties on almost every store; requests interleaved on one event
    loop still answer what a fresh reader answers (each takes what it found when it planned its round)."""
    import asyncio

    from streaming.multiplexed_redis import MultiplexedRedis
    from streaming.recommendations.reader import SharedLists
    from streaming.redis_conn import Family

    env.redis.rpush(env.keyspace.user_recent("alice"), "w1", "w2")
    env.redis.rpush(env.keyspace.user_recent("bob"), "w2", "b1")
    env.redis.rpush(env.keyspace.user_recent("carol"), "b1", "w1")
    publish_small(env.store, "m-1")
    reader = RecommendationReader.from_settings(RedisRouter.single(env.redis), env.settings)
    reader.shared_lists = SharedLists(max_entries=1)
    users = ["alice", "bob", "carol", "newcomer"] * 10
    expected = {
        user: RecommendationReader.from_settings(RedisRouter.single(env.redis), env.settings).recommend(
            user, 5
        )
        for user in set(users)
    }

    async def many() -> list[Any]:
        client = MultiplexedRedis.from_url(redis_url)
        clients = {family: client for family in Family}
        try:
            return list(await asyncio.gather(*(reader.recommend_async(u, 5, clients) for u in users)))
        finally:
            await client.aclose()

    assert asyncio.run(many()) == [expected[u] for u in users]
