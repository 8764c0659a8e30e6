"""The shared validate-and-route step against an in-memory producer."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

import orjson

from streaming.dlq import HEADER_ERROR, HEADER_STAGE
from streaming.ingest import IngestRoute, rfc3339_ms, route_payload
from streaming.payload import parse_payload
from tests.support.fake_kafka import FakeProducer
from tests.support.ingest import make_event


def test_rfc3339_ms_is_the_same_millisecond() -> None:
    for ms in (0, 1, 1_714_521_600_123, 1_999_999_999_999):
        text = rfc3339_ms(ms)
        assert text.endswith("Z")
        assert round(datetime.fromisoformat(text).timestamp() * 1000) == ms


def test_routes_valid_and_invalid_entries() -> None:
    producer = FakeProducer()
    route = IngestRoute(producer, "raw", "dlq", "collector")
    good = make_event(received_at="1999-01-01T00:00:00Z", extra_field={"kept": True})
    bad = b'{"event_type": "click"}'
    payload = parse_payload(orjson.dumps(good) + b"\n" + bad + b"\n", "application/x-ndjson")

    result = route_payload(payload, route, received_at_ms=1_714_521_600_123)

    assert (result.accepted, [r.index for r in result.rejected], result.produced) == (1, [1], 2)
    raw, dead = producer.records
    assert (raw.topic, raw.key, raw.timestamp) == ("raw", good["user_id"].encode(), 1_714_521_600_123)
    assert orjson.loads(raw.value) == {**good, "received_at": "2024-05-01T00:00:00.123Z"}
    assert (dead.topic, dead.value) == ("dlq", bad)
    assert dead.headers[HEADER_STAGE] == b"collector"
    assert dead.headers[HEADER_ERROR].decode() == result.rejected[0].error
    assert "required" in result.rejected[0].error


def test_transform_seam_changes_event_and_key() -> None:
    def pseudonymise(event: dict[str, Any]) -> dict[str, Any]:
        return {**event, "user_id": hashlib.sha256(event["user_id"].encode()).hexdigest()[:16]}

    producer = FakeProducer()
    event = make_event("impression")
    route_payload(
        parse_payload(orjson.dumps([event])), IngestRoute(producer, "r", "d", "bridge", pseudonymise), 5
    )
    (record,) = producer.records
    expected = hashlib.sha256(event["user_id"].encode()).hexdigest()[:16]
    assert record.key == expected.encode()
    assert orjson.loads(record.value)["user_id"] == expected


def test_failing_transform_rejects_the_event_only() -> None:
    def broken(event: dict[str, Any]) -> dict[str, Any]:
        raise KeyError("secret")

    producer = FakeProducer()
    body = orjson.dumps([make_event()])
    result = route_payload(parse_payload(body), IngestRoute(producer, "r", "d", "collector", broken), 5)
    assert result.accepted == 0 and result.rejected[0].index == 0
    assert [r.topic for r in producer.records] == ["d"]
    assert producer.records[0].value == body[1:-1]
