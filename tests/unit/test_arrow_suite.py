"""The Arrow evaluator against Great Expectations: the same failing positions for every spec.

A crafted hour holds each kind of failure and the edges where the two engines could part (NaN, a
button id with a trailing newline, the strict event_time maximum, null conditions, null duplicates);
generated tables cover the rest. Every comparison is against GE run on the same rows, and the crafted
table is also checked against positions written down here by hand.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from assets.kafka_export.arrow_suite import UnsupportedExpectationError, evaluate_suite, re2_pattern
from assets.kafka_export.expectations import (
    ExpectationOutcome,
    ExpectationSpec,
    TimeBounds,
    run_suite,
    suite_specs,
    validate_hour,
)
from assets.warehouse.tables import CLICK_EVENTS, conform

HOUR = datetime(2026, 11, 26, 3, tzinfo=UTC)
BOUNDS = TimeBounds(HOUR, lateness_minutes=60, early_minutes=5)
SPECS = suite_specs(BOUNDS)
US = timedelta(microseconds=1)
GOOD: dict[str, Any] = {
    "event_id": None,  # set per row
    "event_type": "click",
    "event_time": HOUR + timedelta(minutes=30),
    "user_id": "u1",
    "session_id": "s1",
    "video_id": "v1",
    "button_id": "play",
    "playback_position_s": 12.5,
}
# (what differs from a valid click, the expectations the row fails): one row each, in this order
CRAFTED: list[tuple[dict[str, Any], list[str]]] = [
    ({}, []),
    ({"user_id": None}, ["expect_column_values_to_not_be_null(user_id)"]),
    (
        {"session_id": None, "video_id": None},
        [
            "expect_column_values_to_not_be_null(session_id)",
            "expect_column_values_to_not_be_null(video_id)",
        ],
    ),
    ({"event_type": "bogus", "button_id": None}, ["expect_column_values_to_be_in_set(event_type)"]),
    (
        {"event_type": None, "button_id": None, "playback_position_s": None},
        [
            "expect_column_values_to_not_be_null(event_type)",
        ],
    ),
    ({"event_type": "impression", "button_id": None, "playback_position_s": None}, []),
    ({"event_type": "CLICK", "button_id": None}, ["expect_column_values_to_be_in_set(event_type)"]),
    ({"button_id": "Play"}, ["expect_column_values_to_match_regex(button_id)"]),
    ({"button_id": ""}, ["expect_column_values_to_match_regex(button_id)"]),
    ({"button_id": "a" * 65}, ["expect_column_values_to_match_regex(button_id)"]),
    ({"button_id": "a" * 64}, []),
    ({"button_id": "play\n"}, []),  # Python's $ matches before a final newline: GE accepts it
    ({"button_id": "play\n\n"}, ["expect_column_values_to_match_regex(button_id)"]),
    ({"button_id": "x play"}, ["expect_column_values_to_match_regex(button_id)"]),
    ({"button_id": None}, ['expect_column_values_to_not_be_null(button_id) where event_type=="click"']),
    (
        {"playback_position_s": None},
        ['expect_column_values_to_not_be_null(playback_position_s) where event_type=="click"'],
    ),
    (
        {"playback_position_s": float("nan")},
        ['expect_column_values_to_not_be_null(playback_position_s) where event_type=="click"'],
    ),
    ({"playback_position_s": -0.5}, ["expect_column_values_to_be_between(playback_position_s)"]),
    ({"playback_position_s": 0.0}, []),
    ({"playback_position_s": -0.0}, []),
    (
        {"event_type": "impression", "button_id": None, "playback_position_s": -3.0},
        ["expect_column_values_to_be_between(playback_position_s)"],
    ),
    ({"event_time": BOUNDS.earliest - US}, ["expect_column_values_to_be_between(event_time)"]),
    ({"event_time": BOUNDS.earliest}, []),
    ({"event_time": BOUNDS.latest - US}, []),
    ({"event_time": BOUNDS.latest}, ["expect_column_values_to_be_between(event_time)"]),  # strict max
    ({"event_time": None}, ["expect_column_values_to_not_be_null(event_time)"]),
    ({"event_id": "dup-a"}, []),  # the earliest copy of dup-a (Kafka timestamp)
    ({"event_id": "dup-a"}, ["expect_column_values_to_be_unique(event_id)"]),
    (
        {"event_id": "dup-a", "button_id": "BAD"},
        [
            "expect_column_values_to_match_regex(button_id)",
            "expect_column_values_to_be_unique(event_id)",
        ],
    ),
    ({"event_id": None}, ["expect_column_values_to_not_be_null(event_id)"]),  # nulls are not duplicates
    ({"event_id": None}, ["expect_column_values_to_not_be_null(event_id)"]),
]


def crafted_rows() -> pa.Table:
    rows = []
    for position, (change, _) in enumerate(CRAFTED):
        row = {**GOOD, "event_id": f"e{position}", **change}
        row.update(
            kafka_partition=position % 3,
            kafka_offset=position,
            kafka_timestamp=HOUR + timedelta(seconds=position),
            partition_hour=HOUR,
        )
        rows.append(row)
    return conform(pa.Table.from_pylist(rows), CLICK_EVENTS)


def positions(outcomes: list[ExpectationOutcome]) -> dict[str, tuple[int, ...]]:
    assert [o.error for o in outcomes] == [None] * len(outcomes)
    return {o.spec.name: tuple(sorted(o.failing_rows)) for o in outcomes}


@pytest.fixture(scope="module")
def crafted() -> pa.Table:
    return crafted_rows()


@pytest.fixture(scope="module")
def ge_outcomes(crafted: pa.Table) -> list[ExpectationOutcome]:
    return run_suite(crafted, SPECS)


def test_the_arrow_evaluator_fails_the_same_rows_as_great_expectations(
    crafted: pa.Table, ge_outcomes: list[ExpectationOutcome]
) -> None:
    fast = evaluate_suite(crafted, SPECS)
    assert positions(fast) == positions(ge_outcomes)
    assert [o.success for o in fast] == [o.success for o in ge_outcomes]
    # every expectation of the suite fails somewhere in the crafted hour
    assert all(not o.success for o in fast)


def test_the_crafted_rows_fail_what_they_were_made_to_fail(
    crafted: pa.Table, ge_outcomes: list[ExpectationOutcome]
) -> None:
    rejected_at = HOUR + timedelta(hours=3)
    fast = validate_hour(crafted, BOUNDS, rejected_at, evaluate_suite)
    formal = validate_hour(crafted, BOUNDS, rejected_at, run_suite)
    assert fast.rejected == formal.rejected
    assert fast.by_expectation == formal.by_expectation
    want = {position: names for position, (_, names) in enumerate(CRAFTED) if names}
    got = {row["kafka_offset"]: orjson.loads(row["failed_expectations"]) for row in fast.rejected.to_pylist()}
    assert got == want


@st.composite
def hours(draw: st.DrawFn) -> pa.Table:
    """Rows drawn from small pools so duplicates, nulls and edge values are frequent."""
    size = draw(st.integers(1, 40))
    maybe = lambda values: st.one_of(st.none(), st.sampled_from(values))  # noqa: E731
    edges = [BOUNDS.earliest - US, BOUNDS.earliest, HOUR, BOUNDS.latest - US, BOUNDS.latest]
    rows = [
        {
            "event_id": draw(maybe(["a", "b", "c", "d", "e", "f"])),
            "event_type": draw(maybe(["click", "impression", "conversion", "Click", "", "bogus"])),
            "event_time": draw(maybe(edges)),
            "user_id": draw(maybe(["u1", ""])),
            "session_id": draw(maybe(["s1"])),
            "video_id": draw(maybe(["v1"])),
            "button_id": draw(st.one_of(st.none(), st.text(alphabet="az_9Z\n -", max_size=6))),
            "playback_position_s": draw(
                st.one_of(st.none(), st.floats(allow_infinity=True, allow_nan=True, width=64))
            ),
            "kafka_partition": i % 2,
            "kafka_offset": i,
            "kafka_timestamp": HOUR + timedelta(seconds=draw(st.integers(0, 3))),
            "partition_hour": HOUR,
        }
        for i in range(size)
    ]
    return conform(pa.Table.from_pylist(rows), CLICK_EVENTS)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=hours())
def test_generated_hours_give_the_same_failures_in_both_evaluators(rows: pa.Table) -> None:
    assert positions(evaluate_suite(rows, SPECS)) == positions(run_suite(rows, SPECS))


def test_regexes_are_translated_for_re2_or_refused() -> None:
    assert re2_pattern(r"^[a-z]{1,3}$") == r"^[a-z]{1,3}\n?$"
    assert re2_pattern(r"^a\$b") == r"^a\$b"  # an escaped dollar is a literal in both engines
    assert re2_pattern(r"^a\\$") == r"^a\\\n?$"
    with pytest.raises(UnsupportedExpectationError):
        re2_pattern(r"^(a$|b)")


def test_an_expectation_the_evaluator_cannot_run_is_an_error_not_a_pass(crafted: pa.Table) -> None:
    unknown = ExpectationSpec("expect_column_values_to_be_increasing", "kafka_offset")
    missing = ExpectationSpec("expect_column_values_to_not_be_null", "no_such_column")
    outcomes = evaluate_suite(crafted, [unknown, missing])
    assert [o.success for o in outcomes] == [False, False]
    assert all(o.error for o in outcomes)
