"""Offset range planning for an hour: offsets_for_times answers and watermarks → [start, end)."""

from __future__ import annotations

from assets.kafka_export.offsets import (
    OFFSET_END,
    OffsetRange,
    Watermarks,
    plan_ranges,
    ranges_metadata,
    resolve_offset,
    total_records,
)


def test_an_hour_is_the_range_between_its_two_boundary_answers() -> None:
    marks = {0: Watermarks(0, 100), 1: Watermarks(0, 50)}
    ranges = plan_ranges({0: 10, 1: 5}, {0: 40, 1: 20}, marks)
    assert ranges == [OffsetRange(0, 10, 40), OffsetRange(1, 5, 20)]
    assert total_records(ranges) == 45


def test_no_record_at_or_after_the_end_means_read_to_the_high_watermark() -> None:
    ranges = plan_ranges({0: 90}, {0: OFFSET_END}, {0: Watermarks(0, 100)})
    assert ranges == [OffsetRange(0, 90, 100)]


def test_an_hour_beyond_the_partition_end_is_empty() -> None:
    ranges = plan_ranges({0: OFFSET_END}, {0: OFFSET_END}, {0: Watermarks(0, 100)})
    assert ranges == [OffsetRange(0, 100, 100)]
    assert ranges[0].count == 0


def test_empty_partitions_and_missing_answers_give_empty_ranges() -> None:
    ranges = plan_ranges({}, {}, {0: Watermarks(0, 0), 2: Watermarks(7, 7)})
    assert [r.count for r in ranges] == [0, 0]
    assert [r.partition for r in ranges] == [0, 2]


def test_answers_are_clamped_to_the_watermarks() -> None:
    assert resolve_offset(3, Watermarks(10, 20)) == 10  # below retention's low watermark
    assert resolve_offset(25, Watermarks(10, 20)) == 20
    assert resolve_offset(OFFSET_END, Watermarks(10, 20)) == 20


def test_consecutive_hours_share_their_boundary_so_every_record_is_in_one_hour() -> None:
    marks = {0: Watermarks(0, 30)}
    boundaries = [0, 12, 12, 30]  # hour 2 has no records
    hours = [
        plan_ranges({0: boundaries[i]}, {0: boundaries[i + 1] if i + 1 < 3 else OFFSET_END}, marks)[0]
        for i in range(3)
    ]
    assert sum(r.count for r in hours) == 30
    assert [(r.start, r.end) for r in hours] == [(0, 12), (12, 12), (12, 30)]


def test_metadata_names_partitions_as_strings() -> None:
    assert ranges_metadata([OffsetRange(3, 1, 4)]) == {"3": {"start": 1, "end": 4, "records": 3}}
