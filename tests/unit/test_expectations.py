"""The suite's definition, duplicates, and the mapping of failures to raw.rejected_rows (without GE)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pyarrow as pa

from assets.kafka_export.expectations import (
    UNIQUE_EVENT_ID,
    ExpectationOutcome,
    TimeBounds,
    failing_row_count,
    keep_earliest_copies,
    rejected_rows,
    suite_specs,
)
from assets.warehouse.tables import CLICK_EVENTS, REJECTED_ROWS, conform

HOUR = datetime(2026, 11, 26, 3, tzinfo=UTC)


def test_event_time_bounds_follow_lateness_and_early_allowance() -> None:
    bounds = TimeBounds(HOUR, lateness_minutes=60, early_minutes=5)
    assert bounds.earliest == datetime(2026, 11, 26, 2, tzinfo=UTC)
    assert bounds.latest == datetime(2026, 11, 26, 4, 5, tzinfo=UTC)
    between = [s for s in suite_specs(bounds) if s.column == "event_time" and "between" in s.kind]
    assert dict(between[0].kwargs)["min_value"] == bounds.earliest


def test_the_suite_covers_ids_enums_positions_time_and_uniqueness() -> None:
    names = [s.name for s in suite_specs(TimeBounds(HOUR, 60, 5))]
    for column in ("event_id", "event_type", "event_time", "user_id", "session_id", "video_id"):
        assert f"expect_column_values_to_not_be_null({column})" in names
    assert "expect_column_values_to_be_in_set(event_type)" in names
    assert "expect_column_values_to_be_between(playback_position_s)" in names
    assert "expect_column_values_to_be_between(event_time)" in names
    assert "expect_column_values_to_be_unique(event_id)" in names
    assert 'expect_column_values_to_not_be_null(button_id) where event_type=="click"' in names
    assert len(set(names)) == len(names)


def test_failures_become_one_rejected_row_per_record_with_every_expectation_it_failed() -> None:
    specs = {s.name: s for s in suite_specs(TimeBounds(HOUR, 60, 5))}
    rows = conform(
        pa.table(
            {
                "event_id": ["a", "a", None],
                "event_type": ["click", "click", "bogus"],
                "kafka_partition": [0, 1, 2],
                "kafka_offset": [10, 11, 12],
                "partition_hour": [HOUR] * 3,
                "event_time": [HOUR] * 3,
            }
        ),
        CLICK_EVENTS,
    )
    outcomes = [
        ExpectationOutcome(specs["expect_column_values_to_be_unique(event_id)"], False, (1,)),
        ExpectationOutcome(specs["expect_column_values_to_not_be_null(event_id)"], False, (2,)),
        ExpectationOutcome(specs["expect_column_values_to_be_in_set(event_type)"], False, (2,)),
        ExpectationOutcome(specs["expect_column_values_to_not_be_null(user_id)"], True, ()),
    ]
    rejected_at = datetime(2026, 11, 26, 6, tzinfo=UTC)
    table = rejected_rows(rows, outcomes, rejected_at)
    assert table.schema == REJECTED_ROWS.arrow_schema
    got = table.select(["kafka_offset", "event_time", "failed_expectations", "detail"]).to_pylist()
    assert got == [
        {
            "kafka_offset": 11,
            "event_time": HOUR,
            "failed_expectations": '["expect_column_values_to_be_unique(event_id)"]',
            "detail": "event_id='a'",
        },
        {
            "kafka_offset": 12,
            "event_time": HOUR,
            "failed_expectations": (
                '["expect_column_values_to_not_be_null(event_id)",'
                '"expect_column_values_to_be_in_set(event_type)"]'
            ),
            "detail": "event_id=None; event_type='bogus'",
        },
    ]
    raw = orjson.loads(table.column("raw_json")[1].as_py())
    assert raw["event_type"] == "bogus" and raw["partition_hour"] == "2026-11-26T03:00:00Z"
    assert set(table.column("rejected_at").to_pylist()) == {rejected_at}
    assert failing_row_count(outcomes) == 2
    assert rejected_rows(rows, outcomes[3:], rejected_at) == REJECTED_ROWS.arrow_schema.empty_table()


def test_only_the_later_copies_of_a_duplicated_event_fail_uniqueness() -> None:
    """The earliest record (Kafka timestamp, then partition, offset) is the one dbt staging keeps."""
    stamp = [HOUR + timedelta(minutes=m) for m in (5, 2, 2, 9, 1)]
    rows = conform(
        pa.table(
            {
                "event_id": ["a", "a", "a", "b", "b"],
                "kafka_timestamp": stamp,
                "kafka_partition": [0, 2, 1, 0, 3],
                "kafka_offset": [1, 1, 9, 2, 5],
            }
        ),
        CLICK_EVENTS,
    )
    outcome = ExpectationOutcome(UNIQUE_EVENT_ID, False, (0, 1, 2, 3, 4))
    kept = keep_earliest_copies(rows, outcome)
    # a: positions 1 and 2 share the earliest stamp, partition 1 < 2 keeps position 2; b: position 4.
    assert kept.failing_rows == (0, 1, 3)
    assert not kept.success
    alone = keep_earliest_copies(rows, ExpectationOutcome(UNIQUE_EVENT_ID, False, (3,)))
    assert alone.failing_rows == () and alone.success
