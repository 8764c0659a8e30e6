"""Redis hourly counters vs the engagement mart: which hours, and what counts as agreement."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from assets.dbt.reconciliation import (
    ALL_VIDEOS,
    MartRow,
    StreamCounts,
    fully_exported,
    hll_collision_allowance,
    late_by_type,
    reconcilable_hours,
    reconcile,
    stream_counted_rejects,
    uniques_agree,
)
from assets.kafka_export.expectations import EVENT_TIME_BOUNDS as EVENT_TIME

H = datetime(2026, 11, 26, 10, tzinfo=UTC)
DAY = 48 * 3600


def test_a_partition_completes_the_event_hour_one_lateness_back() -> None:
    hours = reconcilable_hours(
        H, H + timedelta(hours=1), lateness_minutes=60, now=H + timedelta(hours=3), retention_s=DAY
    )
    assert hours == [H - timedelta(hours=1)]


def test_zero_lateness_completes_the_partition_hour_itself() -> None:
    hours = reconcilable_hours(
        H, H + timedelta(hours=2), lateness_minutes=0, now=H + timedelta(hours=3), retention_s=DAY
    )
    assert hours == [H, H + timedelta(hours=1)]


def test_open_and_expired_hours_are_left_out() -> None:
    assert (
        reconcilable_hours(
            H, H + timedelta(hours=1), lateness_minutes=60, now=H + timedelta(minutes=30), retention_s=DAY
        )
        == []
    )
    assert (
        reconcilable_hours(
            H, H + timedelta(hours=1), lateness_minutes=60, now=H + timedelta(days=5), retention_s=DAY
        )
        == []
    )


def test_counts_must_match_exactly_after_removing_late_events() -> None:
    mart = {
        (H, "v1"): MartRow(impressions=10, clicks=4, conversions=1, unique_users=5, late_events=2),
        (H, "v2"): MartRow(impressions=3, clicks=0, conversions=0, unique_users=2, late_events=0),
    }
    late = late_by_type([(H, "v1", "click"), (H, "v1", "impression")])
    stream = {(H, "v1"): StreamCounts(9, 3, 1, 5), (H, "v2"): StreamCounts(3, 0, 0, 2)}
    result = reconcile([H], mart, late, stream, {H: StreamCounts(12, 3, 1)})
    assert result.passed, result.mismatches
    assert result.pairs == 2 and result.late_events == 2
    assert result.redis_totals["clicks"] == 3 and result.mart_totals["clicks"] == 4


def test_a_counter_off_by_one_is_a_mismatch_with_both_numbers() -> None:
    mart = {(H, "v1"): MartRow(10, 4, 1, 5, 0)}
    result = reconcile([H], mart, {}, {(H, "v1"): StreamCounts(10, 5, 1, 5)}, {H: StreamCounts(10, 5, 1)})
    assert not result.passed
    video = [m for m in result.mismatches if m.video_id == "v1"]
    assert [(m.metric, m.redis, m.mart, m.expected_redis) for m in video] == [("clicks", 5, 4, 4)]
    meta = result.to_metadata()
    assert meta["mismatches"] == 2 and meta["mismatch_sample"][0]["redis"] == 5


def test_a_video_missing_from_the_mart_shows_in_the_hour_totals() -> None:
    mart = {(H, "v1"): MartRow(1, 1, 0, 1, 0)}
    result = reconcile([H], mart, {}, {(H, "v1"): StreamCounts(1, 1, 0, 1)}, {H: StreamCounts(1, 2, 0)})
    assert [(m.video_id, m.metric, m.redis, m.expected_redis) for m in result.mismatches] == [
        (ALL_VIDEOS, "clicks", 2, 1)
    ]


def test_unique_users_may_differ_by_two_percent() -> None:
    assert uniques_agree(1000, 1020) and uniques_agree(1020, 1000)
    assert not uniques_agree(1000, 1030)
    assert uniques_agree(2, 2) and not uniques_agree(1, 2)


def test_small_counts_may_miss_by_what_register_collisions_explain() -> None:
    # 38 users: ~4 % of sets lose one count to a shared register and ~0.1 % lose two; 2 % of 38 is 0
    assert uniques_agree(36, 38) and not uniques_agree(35, 38)
    assert uniques_agree(7, 8) and not uniques_agree(6, 8)
    assert not uniques_agree(9, 8)  # collisions only lose counts at this size
    assert hll_collision_allowance(2) == 0


def poisson_tail(mean: float, above: int) -> float:
    """P(X > above) for X ~ Poisson(mean), summed term by term."""
    term, cdf = math.exp(-mean), 0.0
    for k in range(above + 1):
        cdf += term
        term *= mean / (k + 1)
    return 1.0 - cdf


@pytest.mark.parametrize("users", [8, 38, 74, 200, 1000])
def test_collision_allowance_is_the_smallest_with_a_rare_enough_tail(users: int) -> None:
    mean = users * (users - 1) / 2 / 16_384
    allowance = hll_collision_allowance(users)
    assert poisson_tail(mean, math.floor(mean + allowance)) < 1e-4
    assert allowance == 0 or poisson_tail(mean, math.floor(mean + allowance - 1)) >= 1e-4


def test_partially_counted_late_events_are_reported_not_failed() -> None:
    mart = {(H, "v1"): MartRow(5, 5, 0, 3, late_events=1)}
    late = late_by_type([(H, "v1", "click"), (H, "v1", "click")])
    result = reconcile([H], mart, late, {(H, "v1"): StreamCounts(5, 4, 0, 3)}, {H: StreamCounts(5, 4, 0)})
    assert result.passed and result.not_comparable == [(H, "v1")]


def test_hours_need_every_partition_their_events_can_arrive_in() -> None:
    h = datetime(2026, 1, 1, 10, tzinfo=UTC)
    hours = [h - timedelta(hours=1), h, h + timedelta(hours=1)]
    # Partitions 10:00 and 11:00 exported: hour 10 (events arrive 09:55..12:00 with 5 min early and
    # 60 min lateness) still needs 09:00, so no hour is complete.
    exported = {h, h + timedelta(hours=1)}
    assert fully_exported(hours, exported, lateness_minutes=60, early_minutes=5) == []
    exported.add(h - timedelta(hours=1))
    assert fully_exported(hours, exported, lateness_minutes=60, early_minutes=5) == [h]
    assert fully_exported(hours, exported, lateness_minutes=0, early_minutes=0) == hours


def rejected_row(minute: int, failed: list[str], **record: object) -> dict[str, object]:
    event = {"event_type": "click", "video_id": "v1", "user_id": "u9", "is_late": False, **record}
    return {
        "event_time": (H + timedelta(minutes=minute)).replace(tzinfo=None),  # naive UTC, as stored
        "failed_expectations": orjson.dumps(failed).decode(),
        "raw_json": orjson.dumps(event).decode(),
    }


def test_only_rejects_for_event_time_alone_and_not_late_count_as_stream_counted() -> None:
    rows = [
        rejected_row(10, [EVENT_TIME]),
        rejected_row(20, [EVENT_TIME], user_id="u8"),
        rejected_row(30, [EVENT_TIME], event_type="impression", video_id="v2"),
        rejected_row(40, [EVENT_TIME], is_late=True),  # late: never in an hour bucket
        rejected_row(50, [EVENT_TIME, "expect_column_values_to_be_unique(event_id)"]),  # a later copy
        rejected_row(55, ["expect_column_values_to_be_in_set(event_type)"], event_type="purchase"),
        rejected_row(70, [EVENT_TIME]),  # the next hour
    ]
    counted = stream_counted_rejects(rows)
    assert counted == {
        (H, "v1"): StreamCounts(clicks=2, unique_users=2),
        (H, "v2"): StreamCounts(impressions=1, unique_users=1),
        (H + timedelta(hours=1), "v1"): StreamCounts(clicks=1, unique_users=1),
    }


def test_rejected_records_the_stream_counted_are_added_to_the_mart_side() -> None:
    mart = {(H, "v1"): MartRow(10, 3, 0, 50, 0)}
    rejected = {
        (H, "v1"): StreamCounts(clicks=2, unique_users=2),
        (H, "v2"): StreamCounts(impressions=1, unique_users=1),
    }
    stream = {
        (H, "v1"): StreamCounts(impressions=10, clicks=5, unique_users=52),
        (H, "v2"): StreamCounts(impressions=1, unique_users=1),
    }
    totals = {H: StreamCounts(impressions=11, clicks=5)}
    result = reconcile([H], mart, {}, stream, totals, rejected)
    assert result.passed, result.mismatches
    assert result.pairs == 2 and result.counted_rejects == {"impressions": 1, "clicks": 2, "conversions": 0}
    # without them the same counters disagree: the stream holds events the mart never saw
    assert {(m.video_id, m.metric) for m in reconcile([H], mart, {}, stream, totals).mismatches} >= {
        ("v1", "clicks"),
        (ALL_VIDEOS, "impressions"),
    }


def test_uniques_may_exceed_the_mart_by_the_rejected_users() -> None:
    assert uniques_agree(12, 10, extra=2) and uniques_agree(10, 10, extra=2)
    assert not uniques_agree(13, 10, extra=2) and not uniques_agree(8, 10, extra=2)
