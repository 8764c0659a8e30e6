"""Pseudonymised user ids through the real collector and bridge into Kafka (topics private to each test)."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import orjson
import redis

from clickpulse.settings import Settings
from streaming.bridge import RedisBridge
from streaming.collector import create_app
from streaming.pseudonymize import pseudonymize
from tests.support.ingest import (
    WRITE_KEY,
    collector_settings,
    forward_through_bridge,
    make_event,
    payload,
    read_topic,
    serve,
)

KEY_A = "pseudonymisation-key-a-0123456789"
KEY_B = "pseudonymisation-key-b-0123456789"
AUTH = {"Authorization": f"Bearer {WRITE_KEY}"}


def _collect(settings: Settings, events: list[dict]) -> list:
    with serve(create_app(settings)) as url:
        response = httpx.post(f"{url}/v1/events", content=orjson.dumps(events), headers=AUTH, timeout=30)
    assert response.json() == {"accepted": len(events), "rejected": []}
    return read_topic(settings.kafka_bootstrap_servers, settings.topic_raw, len(events))


def test_collector_writes_pseudonyms_as_key_and_user_id(
    kafka_bootstrap: str, new_topic: Callable[..., str]
) -> None:
    raw_ids = ["alice@example.com", "bob-42", "alice@example.com"]
    events = [make_event(user_id=u) for u in raw_ids]
    key_a = collector_settings(
        kafka_bootstrap, new_topic("raw"), new_topic("dlq", 1), CLICKPULSE_PSEUDONYMIZE_KEY=KEY_A
    )
    records = _collect(key_a, events)

    by_event = {orjson.loads(payload(r))["event_id"]: r for r in records}
    assert set(by_event) == {e["event_id"] for e in events}
    for event in events:
        record = by_event[event["event_id"]]
        value = orjson.loads(payload(record))
        pseudonym = pseudonymize(KEY_A, event["user_id"])
        assert record.key() == pseudonym.encode() and value["user_id"] == pseudonym
        assert event["user_id"].encode() not in record.value() + record.key()
        assert {k: v for k, v in value.items() if k not in ("user_id", "received_at")} == {
            k: v for k, v in event.items() if k != "user_id"
        }
    alice = {by_event[e["event_id"]].key() for e in events if e["user_id"] == "alice@example.com"}
    assert len(alice) == 1, "the same id must give the same pseudonym"
    assert len({r.key() for r in records}) == 2

    # Another key: other pseudonyms for the same ids.
    key_b = collector_settings(
        kafka_bootstrap, new_topic("raw"), new_topic("dlq", 1), CLICKPULSE_PSEUDONYMIZE_KEY=KEY_B
    )
    (other,) = _collect(key_b, [make_event(user_id="alice@example.com")])
    assert other.key() == pseudonymize(KEY_B, "alice@example.com").encode()
    assert other.key() not in alice


def test_bridge_writes_pseudonyms(
    kafka_bootstrap: str, redis_url: str, new_topic: Callable[..., str], unique_name: Callable[[str], str]
) -> None:
    settings = Settings(
        KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap,
        REDIS_URL=redis_url,
        CLICKPULSE_TOPIC_RAW=new_topic("raw"),
        CLICKPULSE_TOPIC_DLQ=new_topic("dlq", 1),
        CLICKPULSE_BRIDGE_CHANNEL=unique_name("ingest:events"),
        CLICKPULSE_PSEUDONYMIZE_KEY=KEY_A,
    )
    publisher = redis.Redis.from_url(redis_url)
    try:
        forward_through_bridge(
            RedisBridge(settings), publisher.publish, [orjson.dumps(make_event(user_id="carol"))], 1
        )
    finally:
        publisher.close()
    (record,) = read_topic(kafka_bootstrap, settings.topic_raw, 1)
    assert record.key() == pseudonymize(KEY_A, "carol").encode()
    assert orjson.loads(payload(record))["user_id"] == pseudonymize(KEY_A, "carol")
