"""The Redis Pub/Sub bridge against the real Redis and Kafka, on a private channel and private topics."""

from __future__ import annotations

from collections.abc import Callable

import orjson
import redis

from clickpulse.settings import Settings
from streaming.bridge import RedisBridge
from streaming.dlq import HEADER_ERROR, HEADER_STAGE, read_headers
from tests.support.ingest import forward_through_bridge, make_event, payload, read_topic


def test_bridge_forwards_valid_events_and_dead_letters_bad_ones(
    kafka_bootstrap: str, redis_url: str, new_topic: Callable[..., str], unique_name: Callable[[str], str]
) -> None:
    settings = Settings(
        KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap,
        REDIS_URL=redis_url,
        CLICKPULSE_TOPIC_RAW=new_topic("raw"),
        CLICKPULSE_TOPIC_DLQ=new_topic("dlq", partitions=1),
        CLICKPULSE_BRIDGE_CHANNEL=unique_name("ingest:events"),
    )
    single = make_event()
    in_array = make_event("impression")
    bad_element = b'{"event_type": "click", "user_id": "u-bad"}'
    not_events = b"definitely not json"
    bridge = RedisBridge(settings)
    publisher = redis.Redis.from_url(redis_url)
    try:
        messages = [
            orjson.dumps(single),
            not_events,
            b"[" + orjson.dumps(in_array) + b", " + bad_element + b"]",
        ]
        forward_through_bridge(bridge, publisher.publish, messages, deliveries=4)
    finally:
        publisher.close()

    assert bridge.stats == {"messages": 3, "accepted": 2, "rejected": 2, "delivered": 4, "delivery_failed": 0}
    raw = read_topic(kafka_bootstrap, settings.topic_raw, 2)
    values = {orjson.loads(payload(r))["event_id"]: (r, orjson.loads(payload(r))) for r in raw}
    assert set(values) == {single["event_id"], in_array["event_id"]}
    for event in (single, in_array):
        record, value = values[event["event_id"]]
        assert record.key() == event["user_id"].encode()
        assert {k: v for k, v in value.items() if k != "received_at"} == event
        assert value["received_at"].endswith("Z")

    dead = read_topic(kafka_bootstrap, settings.topic_dlq, 2)
    assert sorted(payload(d) for d in dead) == sorted([not_events, bad_element])
    for letter in dead:
        headers = read_headers(letter.headers())
        assert headers[HEADER_STAGE] == "bridge"
        expected = "not JSON" if letter.value() == not_events else "session_id: required"
        assert expected in headers[HEADER_ERROR]
