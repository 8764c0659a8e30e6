"""The read API against real Redis filled by the real consumer from simulated traffic sent to Kafka.

Every expectation comes from what the test sent: the simulator's truth (all time) or a recount of the
sent events over the window the API reports; nothing is copied from an earlier run.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
import orjson
import pytest
import redis
from fastapi.testclient import TestClient

from serving.app import create_app
from streaming.keyspace import Keyspace, write_video_metadata
from streaming.replay import write_to_kafka
from streaming.simulation.truth import Truth
from streaming.simulator import SimulatedRecord, SimulationConfig, Simulator, backfill_window
from tests.serving_support import (
    ConsumerThread,
    Private,
    cleanup,
    counted_events,
    decayed_scores,
    event_seconds,
    hour_name,
    private_settings,
    serving,
    tally,
)
from tests.support.uniques import uniques_problem

READ = {"Authorization": "Bearer test-read-key"}
EVENTS = 5000


@dataclass
class Filled:
    private: Private
    records: list[SimulatedRecord]
    events: list[dict[str, Any]]
    truth: dict[str, Any]
    titles: dict[str, str]


@pytest.fixture(scope="module")
def filled(kafka_bootstrap: str, redis_url: str) -> Iterator[Filled]:
    private = private_settings(kafka_bootstrap, redis_url, "api-test")
    try:
        start, end = backfill_window(3)
        sim = Simulator(
            SimulationConfig(
                events=EVENTS, seed=404, start=start, end=end, users=250, videos=50, late_share=0.0
            )
        )
        records = list(sim)
        truth: Truth = sim.truth
        report = write_to_kafka(
            records, {"bootstrap.servers": kafka_bootstrap}, private.settings.topic_raw, True
        )
        assert report.ok, report.errors
        # The catalog for titles, as the video_catalog asset writes it; one video stays without an entry.
        videos = sim.dimensions.videos
        titled = [v for v in videos if v.video_id != videos[-1].video_id]
        client = redis.Redis.from_url(redis_url, decode_responses=True)
        write_video_metadata(
            client,
            [
                {
                    "video_id": v.video_id,
                    "title": v.title,
                    "series": v.series or None,
                    "genre": v.genre,
                    "duration_s": v.duration_s,
                    "release_date": v.release_date.isoformat(),
                }
                for v in titled
            ],
            keyspace=Keyspace.from_settings(private.settings),
        )
        client.close()
        consumer = ConsumerThread(private.settings).start()
        try:
            consumer.wait_for(len(records))
        finally:
            consumer.stop()
        yield Filled(
            private,
            records,
            counted_events(records),
            truth.to_dict(),
            {v.video_id: v.title for v in titled},
        )
    finally:
        cleanup(private)


@pytest.fixture(scope="module")
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()


@pytest.fixture(scope="module")
def api(filled: Filled) -> Iterator[TestClient]:
    with TestClient(create_app(filled.private.settings)) as client:
        yield client


def test_stats_all_time_match_the_truth(filled: Filled, api: TestClient, redis_client: redis.Redis) -> None:
    videos = filled.truth["videos"]
    assert len(videos) > 20
    for video_id, truth in videos.items():
        response = api.get(f"/v1/videos/{video_id}/stats", headers=READ)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["video_id"] == video_id
        for field in ("clicks", "impressions", "conversions", "clicks_by_button"):
            assert body[field] == truth[field], (video_id, field)
        impressions, clicks = truth["impressions"], truth["clicks"]
        assert body["ctr"] == (pytest.approx(clicks / impressions) if impressions else None)
        assert body["conversion_rate"] == (pytest.approx(truth["conversions"] / clicks) if clicks else None)
        users = {e["user_id"] for e in filled.events if e["video_id"] == video_id}
        assert len(users) == truth["unique_users"]
        assert uniques_problem(redis_client, video_id, body["unique_users"], users) is None
        assert body["unique_users_approximate"] is True
        assert body["window_start"] is None


def test_the_api_stats_reader_agrees_with_the_keyspace_reader(filled: Filled) -> None:
    """serving.stats_reader (one Lua call, asyncio) returns what keyspace.read_video_stats returns, on
    redis-py's asyncio client and on the multiplexed one, with the windows on the same client or another."""
    import asyncio

    import redis.asyncio as aioredis

    from serving.stats_reader import AsyncStatsReader
    from streaming.keyspace import read_video_stats
    from streaming.multiplexed_redis import MultiplexedRedis

    settings = filled.private.settings
    keyspace = Keyspace.from_settings(settings)
    sync_client = redis.Redis.from_url(settings.redis_url, decode_responses=True)
    ids = [*filled.truth["videos"], "no-such-video"]

    async def compare() -> None:
        client = aioredis.Redis.from_url(settings.redis_url, decode_responses=True)
        split = aioredis.Redis.from_url(settings.redis_url, decode_responses=True)
        mux, mux_split = (MultiplexedRedis.from_url(settings.redis_url) for _ in range(2))
        try:
            for reader in (
                AsyncStatsReader(client, client, keyspace),
                AsyncStatsReader(client, split, keyspace),
                AsyncStatsReader(mux, mux, keyspace),
                AsyncStatsReader(mux, mux_split, keyspace),
            ):
                for video_id in ids:
                    now = time.time()
                    expected = read_video_stats(sync_client, video_id, now, keyspace=keyspace)
                    assert await reader.read(video_id, now) == expected, video_id
        finally:
            for each in (client, split, mux, mux_split):
                await each.aclose()

    asyncio.run(compare())
    sync_client.close()


def test_the_stats_cache_shares_misses_and_keeps_answers_no_longer_than_its_ttl(filled: Filled) -> None:
    """Concurrent misses on one video make one Redis read, every caller gets the keyspace reader's
    numbers, and an entry is reused for at most ``ttl_s`` (at least 80 % of it)."""
    import asyncio

    import redis.asyncio as aioredis

    from serving.stats_reader import AsyncStatsReader, StatsCache
    from streaming.keyspace import read_video_stats

    settings = filled.private.settings
    keyspace = Keyspace.from_settings(settings)
    video_id = max(filled.truth["videos"], key=lambda v: filled.truth["videos"][v]["clicks"])
    reads: list[float] = []

    class CountingReader(AsyncStatsReader):
        async def read(self, video_id: str, now: float) -> dict[str, Any]:
            reads.append(time.monotonic())
            return await super().read(video_id, now)

    async def exercise() -> None:
        client = aioredis.Redis.from_url(settings.redis_url, decode_responses=True)
        try:
            cache = StatsCache(CountingReader(client, client, keyspace), ttl_s=0.4)
            now = time.time()
            entries = await asyncio.gather(*(cache.read(video_id, now) for _ in range(20)))
            assert len(reads) == 1, "20 concurrent misses, one read"
            assert all(e is entries[0] for e in entries)
            sync_client = redis.Redis.from_url(settings.redis_url, decode_responses=True)
            assert entries[0].data == read_video_stats(sync_client, video_id, now, keyspace=keyspace)
            sync_client.close()
            assert (await cache.read(video_id, time.time())) is entries[0], "fresh: reused"
            while len(reads) == 1:
                await cache.read(video_id, time.time())
                await asyncio.sleep(0.01)
            lived = reads[1] - reads[0]
            assert 0.32 - 0.02 <= lived <= 0.4 + 0.1, lived
        finally:
            await client.aclose()

    asyncio.run(exercise())


def test_a_cached_stats_answer_is_the_same_bytes_as_its_first_rendering(filled: Filled) -> None:
    """The cache keeps the serialised answer; a hit returns exactly what the miss returned."""
    video_id = sorted(filled.truth["videos"])[0]
    settings = filled.private.settings.model_copy(update={"api_stats_cache_ms": 60_000})
    with TestClient(create_app(settings)) as client:
        first = client.get(f"/v1/videos/{video_id}/stats", headers=READ)
        second = client.get(f"/v1/videos/{video_id}/stats", headers=READ)
    assert first.status_code == second.status_code == 200
    assert first.content == second.content
    body = first.json()
    assert body["clicks"] == filled.truth["videos"][video_id]["clicks"]


def test_stats_windows_match_a_recount_of_the_window(
    filled: Filled, api: TestClient, redis_client: redis.Redis
) -> None:
    top = sorted(filled.truth["videos"].items(), key=lambda kv: -kv[1]["clicks"])[:8]
    for video_id, _ in top:
        body = api.get(f"/v1/videos/{video_id}/stats", headers=READ).json()
        mine = [e for e in filled.events if e["video_id"] == video_id]
        for name in ("last_hour", "last_24h"):
            window = body[name]
            begin = datetime.fromisoformat(window["window_start"]).timestamp()
            end = datetime.fromisoformat(window["window_end"]).timestamp()
            inside = tally(e for e in mine if begin <= event_seconds(e) < end).get("all")
            if inside is None:
                assert window["clicks"] == window["impressions"] == window["conversions"] == 0
                continue
            expected = inside.counts()
            for field in ("impressions", "clicks", "conversions", "ctr", "conversion_rate"):
                assert window[field] == pytest.approx(expected[field]), (video_id, name, field)
            assert window["clicks_by_button"] == dict(sorted(inside.by_button.items()))
        # last_24h covers the whole 3 h backfill; last_hour's uniques count the overlapped hour buckets.
        assert body["last_24h"]["clicks"] == body["clicks"]
        end_s = datetime.fromisoformat(body["last_hour"]["window_end"]).timestamp()
        hours = {hour_name(end_s), hour_name(end_s - 3600)}
        users = {e["user_id"] for e in mine if hour_name(event_seconds(e)) in hours}
        assert uniques_problem(redis_client, video_id, body["last_hour"]["unique_users"], users) is None


def test_trending_follows_the_decayed_scores(filled: Filled, api: TestClient) -> None:
    body = api.get("/v1/trending?limit=10", headers=READ).json()
    at = datetime.fromisoformat(body["as_of"]).timestamp()
    expected = decayed_scores(filled.events, at, body["half_life_s"])
    ranked = sorted(expected, key=lambda v: -expected[v])[:10]
    got = [item["video_id"] for item in body["items"]]
    assert got == ranked
    for item in body["items"]:
        assert item["score"] == pytest.approx(expected[item["video_id"]], rel=1e-4)
        assert item["title"] == filled.titles.get(item["video_id"])
    assert len(api.get("/v1/trending?limit=3", headers=READ).json()["items"]) == 3


def _check_engagement(body: dict[str, Any], events: list[dict[str, Any]]) -> None:
    overall = tally(events)["all"].counts()
    assert body["overall"] == pytest.approx(overall)
    surfaces = {name: t.counts() for name, t in tally(events, "surface").items()}
    assert set(body["by_surface"]) == set(surfaces)
    for surface, counts in surfaces.items():
        assert body["by_surface"][surface] == pytest.approx(counts), surface
    clicks = [e for e in events if e["event_type"] == "click"]
    buttons = tally(clicks, "button_id")
    assert set(body["by_button"]) == set(buttons)
    for button, counts in body["by_button"].items():
        assert counts["clicks"] == buttons[button].clicks
        assert counts["click_share"] == pytest.approx(buttons[button].clicks / len(clicks))


@pytest.mark.parametrize("window", ["1h", "24h"])
def test_engagement_ratios_equal_the_truth_ratios(filled: Filled, api: TestClient, window: str) -> None:
    response = api.get(f"/v1/engagement?window={window}", headers=READ)
    assert response.status_code == 200, response.text
    body = response.json()
    hours = set(body["hours"])
    assert len(hours) == (2 if window == "1h" else 24)
    _check_engagement(body, [e for e in filled.events if hour_name(event_seconds(e)) in hours])


def test_engagement_all_time_equals_the_simulator_truth(filled: Filled, api: TestClient) -> None:
    body = api.get("/v1/engagement?window=all", headers=READ).json()
    totals = filled.truth["totals"]
    assert body["overall"]["clicks"] == totals["clicks"]
    assert body["overall"]["impressions"] == totals["impressions"]
    assert body["overall"]["ctr"] == pytest.approx(totals["clicks"] / totals["impressions"])
    assert body["overall"]["conversion_rate"] == pytest.approx(totals["conversions"] / totals["clicks"])
    for surface, counts in filled.truth["surfaces"].items():
        got = body["by_surface"][surface]
        assert (got["impressions"], got["clicks"]) == (counts["impressions"], counts["clicks"])
    assert {b: v["clicks"] for b, v in body["by_button"].items()} == filled.truth["buttons"]


def test_video_metadata_and_unknown_ids(filled: Filled, api: TestClient) -> None:
    video_id, title = next(iter(filled.titles.items()))
    body = api.get(f"/v1/videos/{video_id}", headers=READ).json()
    assert body["video_id"] == video_id and body["title"] == title
    assert isinstance(body["duration_s"], int)
    untitled = next(v for v in filled.truth["videos"] if v not in filled.titles)
    assert api.get(f"/v1/videos/{untitled}", headers=READ).status_code == 404
    assert api.get(f"/v1/videos/{untitled}/stats", headers=READ).status_code == 200  # it has counters
    assert api.get("/v1/videos/no-such-video/stats", headers=READ).status_code == 404
    assert api.get("/v1/videos/no-such-video", headers=READ).status_code == 404
    assert api.get("/v1/users/no-such-user/profile", headers=READ).status_code == 404


def test_user_profile_counts_the_users_events(filled: Filled, api: TestClient) -> None:
    per_user = tally(filled.events, "user_id")
    user_id = max(per_user, key=lambda u: per_user[u].clicks)
    body = api.get(f"/v1/users/{user_id}/profile", headers=READ).json()
    mine = per_user[user_id]
    assert (body["clicks"], body["impressions"], body["conversions"]) == (
        mine.clicks,
        mine.impressions,
        mine.conversions,
    )
    assert body["events"] == mine.clicks + mine.impressions + mine.conversions
    assert body["button_affinities"] == dict(mine.by_button)
    assert body["last_seen"] is not None


def test_metrics_count_requests_by_route(filled: Filled, api: TestClient) -> None:
    api.get("/v1/trending", headers=READ)
    text = api.get("/metrics").text
    assert 'clickpulse_api_requests_total{method="GET",route="/v1/trending",status="200"}' in text
    assert 'route="/v1/videos/{video_id}/stats"' in text
    assert "clickpulse_api_request_seconds_bucket" in text
    assert api.get("/healthz").json() == {"status": "ok", "redis": "up", "error": None}


def _sse_events(lines: Iterator[str], count: int) -> list[tuple[str, Any]]:
    """The next ``count`` messages as (type, body); the stream's events are unnamed."""
    events: list[tuple[str, Any]] = []
    for line in lines:
        assert not line.startswith("event:")
        if line.startswith("data: "):
            body = orjson.loads(line[len("data: ") :])
            events.append((body["type"], body))
            if len(events) == count:
                break
    return events


def test_live_feed_sends_a_snapshot_then_published_messages(filled: Filled) -> None:
    settings = filled.private.settings
    keyspace = Keyspace.from_settings(settings)
    publisher = redis.Redis.from_url(settings.redis_url)
    totals = filled.truth["totals"]
    with (
        serving(create_app(settings)) as server,
        httpx.Client(base_url=server.url, timeout=10) as http,
    ):
        assert http.get("/v1/live").status_code == 401
        with http.stream("GET", "/v1/live", params={"key": "test-read-key"}) as stream:
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
            lines = stream.iter_lines()
            [(name, snapshot)] = _sse_events(lines, 1)
            assert name == "snapshot"
            assert snapshot["totals"]["clicks"] == totals["clicks"]
            assert snapshot["funnel"]["ctr"] == pytest.approx(totals["clicks"] / totals["impressions"])
            assert snapshot["trending"][0]["title"] == filled.titles.get(snapshot["trending"][0]["video_id"])
            # A snapshot published by a consumer reaches the stream, enriched with titles.
            top = snapshot["trending"][0]["video_id"]
            fake = {"type": "snapshot", "totals": {"clicks": 1}, "trending": [{"video_id": top, "score": 1}]}
            publisher.publish(keyspace.channel_global(), orjson.dumps(fake))
            [(name, live)] = _sse_events(lines, 1)
            assert name == "snapshot" and live["totals"] == {"clicks": 1}
            assert live["trending"][0]["title"] == filled.titles.get(top)

        with http.stream("GET", "/v1/live", params={"user_id": "u-live", "key": "test-read-key"}) as stream:
            lines = stream.iter_lines()
            [(name, hello)] = _sse_events(lines, 1)
            assert (name, hello["user_id"]) == ("hello", "u-live")
            suggestion = {"type": "next_up", "user_id": "u-live", "items": [{"video_id": top, "score": 0.9}]}
            publisher.publish(keyspace.channel_user("u-other"), orjson.dumps({"type": "next_up"}))
            publisher.publish(keyspace.channel_user("u-live"), orjson.dumps(suggestion))
            [(name, message)] = _sse_events(lines, 1)
            assert (name, message) == ("next_up", suggestion)

        # Closed streams leave no subscription behind.
        deadline = time.monotonic() + 5
        gauges = ""
        while time.monotonic() < deadline:
            gauges = http.get("/metrics").text
            if 'clickpulse_api_live_subscribers{channel_kind="global"} 0.0' in gauges and (
                'clickpulse_api_live_subscribers{channel_kind="user"} 0.0' in gauges
            ):
                break
            time.sleep(0.05)
        else:
            raise AssertionError(f"live subscribers left open: {gauges}")
    publisher.close()
