"""The whole loop in one test: simulated events → Kafka → the realtime consumer (profiles, trending) →
interactions → training → versioned lists in Redis → ``GET /v1/recommendations`` → a new click → a
``next_up`` push on ``live:user:<id>`` within a second."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime

import orjson
import pytest
import redis
from fastapi.testclient import TestClient
from pydantic import SecretStr

from assets.recommendations.interactions import aggregate_events
from assets.recommendations.training import TrainingConfig, train_and_evaluate
from clickpulse.settings import Settings
from streaming.consumer import RealtimeConsumer, UserClickPublisher
from streaming.keyspace import Keyspace, read_trending, read_user_profile
from streaming.recommendations.blend import REASON_PERSONAL, REASON_POPULAR, because
from streaming.recommendations.next_up import NextUpPublisher
from streaming.recommendations.reader import RecommendationReader
from streaming.recommendations.store import RecsStore
from streaming.redis_conn import Family, RedisRouter
from streaming.simulator import SimulationConfig, Simulator, backfill_window
from tests.integration.consumer_support import Record, produce
from tests.integration.recs_support import api_app

KEY = "loop-read-key"


@pytest.fixture
def private(private: Settings) -> Settings:
    """The shared ``private`` settings (own topics and key prefix, cleaned up) with this module's read key."""
    return private.model_copy(update={"read_keys": SecretStr(KEY)})


def click_now(user_id: str, video_id: str) -> Record:
    now = datetime.now(UTC)
    event = {
        "event_id": str(uuid.uuid4()),
        "event_type": "click",
        "event_time": now.isoformat().replace("+00:00", "Z"),
        "user_id": user_id,
        "session_id": str(uuid.uuid4()),
        "video_id": video_id,
        "button_id": "rec_tile",
        "playback_position_s": 0.0,
        "surface": "rec_row",
    }
    return Record(orjson.dumps(event), user_id.encode(), int(now.timestamp() * 1000))


def test_events_to_recommendations_and_next_up(private: Settings) -> None:
    start, end = backfill_window(3)
    sim = Simulator(
        SimulationConfig(
            users=300, videos=120, events=25_000, seed=21, start=start, end=end, taste_strength=0.9
        )
    )
    sent = list(sim)
    records = [Record(r.payload, r.key, int(r.kafka_timestamp_ms or 0)) for r in sent]
    produce(private.kafka_bootstrap_servers, private.topic_raw, records)

    router = RedisRouter.from_settings(private)
    ks = Keyspace.from_settings(private)
    reader = RecommendationReader.from_settings(router, private)
    next_up = NextUpPublisher(reader, k=5)
    consumer = RealtimeConsumer(
        private,
        group=f"{private.redis_prefix}.g",
        router=router,
        keyspace=ks,
        user_click_hooks=[UserClickPublisher(router.client(Family.LIVE), ks), next_up],
    )
    try:
        deadline = time.monotonic() + 90
        consumer.run(stop_when=lambda s: s.records >= len(records) or time.monotonic() > deadline)
        assert consumer.stats.records >= len(records)

        # Interactions: what the mart computes from the counted events (valid, each event_id once).
        events = [r.event for r in sent if r.valid and not r.is_duplicate and r.event is not None]
        assert consumer.stats.counted == len(events)
        result = train_and_evaluate(
            aggregate_events(events), TrainingConfig(als_factors=32, als_regularization=0.5)
        )
        assert result.passes_gate, result.metrics_rows()
        store = RecsStore(router.client(Family.RECS), ks, ttl_s=3600)
        store.publish(result.version, result.user_lists(), result.similar_lists(), result.popular_list())

        app = api_app(private, router)
        auth = {"Authorization": f"Bearer {KEY}"}
        with TestClient(app) as api:
            clicks_by_user: dict[str, int] = {}
            for e in events:
                if e["event_type"] == "click":
                    clicks_by_user[e["user_id"]] = clicks_by_user.get(e["user_id"], 0) + 1
            user = max(clicks_by_user, key=lambda u: (clicks_by_user[u], u))
            recent = read_user_profile(router, user, keyspace=ks)["recent_videos"]
            assert recent, "the consumer keeps the user's recent videos"
            body = api.get(f"/v1/recommendations/{user}?k=10", headers=auth).json()
            assert body["user_id"] == user and body["model_version"] == result.version
            ids = [i["video_id"] for i in body["items"]]
            assert len(ids) == 10 and len(set(ids)) == 10
            assert not set(ids) & set(recent), "watched videos are never recommended"
            reasons = {i["reason"] for i in body["items"]}
            assert reasons <= {REASON_PERSONAL, REASON_POPULAR} | {because(v) for v in recent[:5]}
            own_list = dict(next(items for u, items in result.user_lists() if u == user))
            assert sum(v in own_list for v in ids) >= 3, "the precomputed list is part of the blend"

            cold = api.get("/v1/recommendations/nobody-at-all?k=5", headers=auth).json()
            trending = [t["video_id"] for t in read_trending(router, 5, keyspace=ks)]
            assert cold["model_version"] == result.version
            assert [i["video_id"] for i in cold["items"]] == trending
            assert {i["reason"] for i in cold["items"]} == {REASON_POPULAR}

        # A live click on a video far from the user's list: the consumer's hook pushes refreshed next-up
        # suggestions within a second, led by that video's neighbours, and the API follows the click.
        similar = dict(result.similar_lists())

        def overlap(video: str) -> int:
            return sum(n in own_list for n, _ in similar[video][:5])

        target = min(
            (v for v in similar if v not in recent and v not in own_list), key=lambda v: (overlap(v), v)
        )
        listener = redis.Redis.from_url(private.redis_url).pubsub(ignore_subscribe_messages=True)
        listener.subscribe(ks.channel_user(user))
        stop = threading.Event()
        worker = threading.Thread(target=lambda: consumer.run(stop_when=lambda _s: stop.is_set()))
        worker.start()
        try:
            time.sleep(0.5)
            began = time.monotonic()
            produce(private.kafka_bootstrap_servers, private.topic_raw, [click_now(user, str(target))])
            pushed = None
            while pushed is None and time.monotonic() - began < 5:
                message = listener.get_message(timeout=0.05)
                if message is not None:
                    doc = orjson.loads(message["data"])
                    if doc.get("type") == "next_up":
                        pushed = doc
            elapsed = time.monotonic() - began
        finally:
            stop.set()
            worker.join(10)
            listener.close()
        assert pushed is not None, "no next_up message after the click"
        assert elapsed < 1.0, f"next_up took {elapsed:.2f}s"
        assert pushed["after"] == target and pushed["model_version"] == result.version
        assert pushed["items"] and target not in {i["video_id"] for i in pushed["items"]}
        assert any(i["reason"] == because(target) for i in pushed["items"])
        with TestClient(app) as api:
            after = api.get(f"/v1/recommendations/{user}?k=10", headers=auth).json()
        assert target not in {i["video_id"] for i in after["items"]}
        assert because(target) in {i["reason"] for i in after["items"]}
        assert [i["video_id"] for i in after["items"]] != ids
    finally:
        consumer.close()
