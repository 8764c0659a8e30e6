"""Hourly partitions, the export schedule's timing, and the marts-after-export sensor."""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg
import pytest

from assets.kafka_export.assets import raw_click_events
from assets.partitions import (
    HOURLY_PARTITIONS,
    export_timing,
    hourly_partitions,
    hours_in_window,
    partition_hour,
    partition_key,
)
from orchestration.jobs import hourly_export_job
from orchestration.lake import LakeResource
from orchestration.resources import KafkaResource
from orchestration.schedules import hourly_export_schedule
from orchestration.sensors import RANGE_END_TAG, RANGE_START_TAG, contiguous_ranges, marts_after_export
from orchestration.warehouse import DuckDBWarehouse


@pytest.mark.parametrize(
    ("lateness", "minute", "end_offset"), [(0, 0, 0), (15, 15, 0), (60, 0, -1), (90, 30, -1), (150, 30, -2)]
)
def test_export_timing_splits_lateness_into_hours_and_minutes(
    lateness: int, minute: int, end_offset: int
) -> None:
    timing = export_timing(lateness)
    assert (timing.minute_of_hour, timing.end_offset) == (minute, end_offset)


def test_keys_round_trip_and_windows_list_hours() -> None:
    hour = datetime(2026, 11, 26, 3, tzinfo=UTC)
    assert partition_key(hour) == "2026-11-26-03:00"
    assert partition_hour("2026-11-26-03:00") == hour
    assert hours_in_window(hour, hour.replace(hour=6)) == [hour.replace(hour=h) for h in (3, 4, 5)]


def test_an_hour_becomes_a_partition_once_closed_for_the_lateness() -> None:
    partitions = hourly_partitions("2026-11-01-00:00", 60)
    at_five_past_five = datetime(2026, 11, 26, 5, 5, tzinfo=UTC)
    with dg.partition_loading_context(effective_dt=at_five_past_five):
        last = partitions.get_last_partition_key()
    assert last == "2026-11-26-03:00"  # closed at 04:00, plus 60 minutes of lateness


def test_the_hourly_schedule_fires_after_close_plus_lateness_for_that_hour() -> None:
    assert HOURLY_PARTITIONS.end_offset == export_timing(60).end_offset
    resources = {
        "kafka": KafkaResource(bootstrap_servers="127.0.0.1:1", enriched_topic="unused"),
        "lake": LakeResource(root="/nonexistent/lake"),
        "warehouse": DuckDBWarehouse(path="/nonexistent/w.duckdb"),
    }
    defs = dg.Definitions(
        assets=[raw_click_events],
        jobs=[hourly_export_job],
        schedules=[hourly_export_schedule],
        resources=resources,
    )
    schedule = defs.resolve_schedule_def("hourly_export_schedule")
    assert schedule.cron_schedule == "0 * * * *"
    with dg.instance_for_test() as instance:
        context = dg.build_schedule_context(
            instance=instance, scheduled_execution_time=datetime(2026, 11, 26, 5, 0, tzinfo=UTC)
        )
        result = schedule.evaluate_tick(context)
    assert [r.partition_key for r in result.run_requests or []] == ["2026-11-26-03:00"]


def test_contiguous_ranges_group_consecutive_hours() -> None:
    keys = [
        "2026-11-26-05:00",
        "2026-11-26-03:00",
        "2026-11-26-04:00",
        "2026-11-26-09:00",
        "2026-11-26-04:00",
    ]
    assert contiguous_ranges(keys) == [
        ("2026-11-26-03:00", "2026-11-26-05:00"),
        ("2026-11-26-09:00", "2026-11-26-09:00"),
    ]


def test_the_sensor_requests_one_marts_run_per_range_of_new_exports() -> None:
    with dg.instance_for_test() as instance:
        for key in ("2026-11-26-03:00", "2026-11-26-04:00", "2026-11-26-07:00"):
            instance.report_runless_asset_event(dg.AssetMaterialization(raw_click_events.key, partition=key))
        context = dg.build_sensor_context(instance=instance)
        result = marts_after_export(context)
        assert isinstance(result, dg.SensorResult)
        tags = [(r.tags[RANGE_START_TAG], r.tags[RANGE_END_TAG]) for r in result.run_requests or []]
        assert tags == [("2026-11-26-03:00", "2026-11-26-04:00"), ("2026-11-26-07:00", "2026-11-26-07:00")]
        again = marts_after_export(dg.build_sensor_context(instance=instance, cursor=result.cursor))
        assert isinstance(again, dg.SkipReason)
