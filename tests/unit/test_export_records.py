"""Kafka record → raw.click_events rows: the fast Arrow path, the tolerant path, and the contract."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pyarrow as pa

from assets.kafka_export.records import KafkaRecord, late_events, records_to_batch
from assets.warehouse.tables import CLICK_EVENTS

HOUR = datetime(2026, 11, 26, 1, tzinfo=UTC)
BASE: dict[str, Any] = {
    "event_id": "6f1c2c1e-1111-4222-8333-444455556666",
    "event_type": "click",
    "event_time": "2026-11-26T01:02:03.456Z",
    "user_id": "u00001",
    "session_id": "s1",
    "video_id": "v0001",
    "button_id": "play",
    "playback_position_s": 12.5,
    "surface": "rec_row",
    "rec_slot": 3,
    "model_version": "als-v1",
    "device": "web",
    "app_version": "4.2.0",
    "received_at": "2026-11-26T01:02:04+00:00",
    "user_country": "US",
    "user_tier": "free",
    "user_language": "en",
    "is_late": False,
}


def record(
    event: dict[str, Any] | bytes | None, offset: int = 0, ts_ms: int = 1_795_000_000_000
) -> KafkaRecord:
    value = event if isinstance(event, bytes) or event is None else orjson.dumps(event)
    return (value, 2, offset, ts_ms)


def test_rows_follow_the_contract_with_utc_timestamps() -> None:
    batch, stats = records_to_batch([record(BASE, offset=7)], HOUR)
    assert batch.schema == CLICK_EVENTS.arrow_schema
    assert batch.schema.names == CLICK_EVENTS.columns
    row = batch.to_pylist()[0]
    assert row["event_time"] == datetime(2026, 11, 26, 1, 2, 3, 456000, tzinfo=UTC)
    assert row["received_at"] == datetime(2026, 11, 26, 1, 2, 4, tzinfo=UTC)
    assert row["kafka_timestamp"] == datetime.fromtimestamp(1_795_000_000, UTC)
    assert row["partition_hour"] == HOUR
    assert (row["kafka_partition"], row["kafka_offset"]) == (2, 7)
    assert (row["rec_slot"], row["model_version"], row["is_late"]) == (3, "als-v1", False)
    assert row["properties"] is None
    assert stats.unparseable == 0 and stats.coerced_values == 0


def test_properties_are_kept_as_json_text_and_unknown_fields_ignored() -> None:
    event = {**BASE, "properties": {"tile_index": 4, "a": [1, 2]}, "unknown_extra": {"x": 1}}
    batch, _ = records_to_batch([record(event), record(BASE, 1)], HOUR)
    assert batch.column("properties").to_pylist() == ['{"a":[1,2],"tile_index":4}', None]


def test_offsets_in_event_time_are_normalised_to_utc() -> None:
    event = {**BASE, "event_time": "2026-11-26T03:02:03.5+02:00"}
    batch, _ = records_to_batch([record(event)], HOUR)
    assert batch.column("event_time")[0].as_py() == datetime(2026, 11, 26, 1, 2, 3, 500000, tzinfo=UTC)


def test_a_bad_record_keeps_its_row_with_nulls_and_is_counted() -> None:
    bad_types = {**BASE, "user_id": 5, "playback_position_s": "x", "rec_slot": 2.5, "is_late": "no"}
    records = [record(b"not json", 0), record(None, 1), record(bad_types, 2), record(BASE, 3)]
    batch, stats = records_to_batch(records, HOUR)
    rows = batch.to_pylist()
    assert len(rows) == 4
    assert rows[0]["event_id"] is None and rows[0]["kafka_offset"] == 0
    assert rows[1]["event_id"] is None
    assert rows[2]["user_id"] == "5"
    assert (
        rows[2]["playback_position_s"] is None and rows[2]["rec_slot"] is None and rows[2]["is_late"] is None
    )
    assert rows[3] == records_to_batch([record(BASE, 3)], HOUR)[0].to_pylist()[0]
    assert stats.unparseable == 2
    assert stats.coerced_by_field == {"user_id": 1, "playback_position_s": 1, "rec_slot": 1, "is_late": 1}


def test_unparseable_timestamps_become_null_without_losing_the_batch() -> None:
    batch, stats = records_to_batch([record({**BASE, "event_time": "yesterday"}), record(BASE, 1)], HOUR)
    assert batch.column("event_time").to_pylist()[0] is None
    assert batch.column("event_time").to_pylist()[1] is not None
    assert stats.coerced_by_field == {"event_time": 1}


def test_fast_and_tolerant_paths_agree() -> None:
    events = [
        {**BASE, "event_id": f"6f1c2c1e-1111-4222-8333-{i:012d}", "properties": {"i": i}} for i in range(50)
    ]
    fast, _ = records_to_batch([record(e, i) for i, e in enumerate(events)], HOUR)
    tolerant, stats = records_to_batch(
        [record(e, i) for i, e in enumerate(events)] + [record(b"{", 50)], HOUR
    )
    assert stats.unparseable == 1
    assert pa.Table.from_batches([tolerant]).slice(0, 50).to_pylist() == fast.to_pylist()


def test_late_events_counts_the_consumer_flag() -> None:
    batch, _ = records_to_batch(
        [record({**BASE, "is_late": True}), record(BASE, 1), record({**BASE, "is_late": None}, 2)], HOUR
    )
    assert late_events(batch) == 1


def test_an_empty_list_gives_an_empty_batch() -> None:
    batch, stats = records_to_batch([], HOUR)
    assert batch.num_rows == 0 and stats.records == 0
