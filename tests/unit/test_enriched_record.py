"""The consumer's enriched record: the shortcut that reuses the enrichment fields' JSON within a batch
gives the same bytes as encoding each event with its enrichment fields (``encode_event``), with and
without received_at in the event."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Any

import msgspec
import orjson

from streaming.consumer.app import enriched_json
from streaming.consumer.enrichment import UNKNOWN, UserAttributes
from streaming.consumer.records import CountedEvent
from streaming.contract import decode_and_validate
from streaming.event import encode_event
from streaming.simulator import SimulationConfig, Simulator

ATTRIBUTES = [
    UNKNOWN,
    UserAttributes("DE", "premium", "de"),
    UserAttributes("US", "free", None),
    UserAttributes(None, "free", 'e"n'),
]


def _events() -> list[CountedEvent]:
    out: list[CountedEvent] = []
    for record in Simulator(SimulationConfig(events=400, seed=3, malformed_share=0.0)):
        event = decode_and_validate(record.payload).event
        assert event is not None
        ts = record.kafka_timestamp_ms or 0
        out.append(
            CountedEvent(event, 0, len(out), ts, event.event_time.timestamp(), len(out) % 3 == 0, None)
        )
    return out


def _reference(e: CountedEvent, attributes: UserAttributes) -> bytes:
    more: dict[str, Any] = {
        "user_country": attributes.country,
        "user_tier": attributes.subscription_tier,
        "user_language": attributes.language,
        "is_late": e.is_late,
    }
    if e.event.received_at is None:
        more["received_at"] = datetime.fromtimestamp(e.timestamp_ms / 1000, UTC)
    return encode_event(e.event, more)


def test_shared_tails_give_the_bytes_of_encode_event() -> None:
    simulated = _events()
    stamped = [
        CountedEvent(
            msgspec.structs.replace(e.event, received_at=datetime.fromtimestamp(e.timestamp_ms / 1000, UTC)),
            *(e.partition, e.offset, e.timestamp_ms, e.event_time_s, e.is_late, None),
        )
        for e in simulated
    ]
    assert all(e.event.received_at is None for e in simulated)
    for events in (simulated, stamped):
        parts: dict[tuple[Any, ...], bytes] = {}
        for e, attributes in zip(events, itertools.cycle(ATTRIBUTES), strict=False):
            assert enriched_json(e, attributes, parts) == _reference(e, attributes)
        assert len(parts) == 2 * len(ATTRIBUTES)


def test_events_without_received_at_or_with_unknown_fields_take_the_full_path() -> None:
    e = _events()[0]
    parts: dict[tuple[Any, ...], bytes] = {}
    bare = CountedEvent(
        msgspec.structs.replace(e.event, received_at=None), 0, 1, 1_714_560_000_123, 0.0, False, None
    )
    extra = CountedEvent(
        msgspec.structs.replace(e.event, extra={"experiment": "b"}), 0, 2, 0, 0.0, True, None
    )
    for counted in (bare, extra, e):
        for attributes in ATTRIBUTES:
            assert enriched_json(counted, attributes, parts) == _reference(counted, attributes)
    assert orjson.loads(enriched_json(bare, None, parts))["received_at"] == "2024-05-01T10:40:00.123000Z"
    assert orjson.loads(enriched_json(extra, None, parts))["experiment"] == "b"
