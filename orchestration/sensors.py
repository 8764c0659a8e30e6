"""Marts after each export: a sensor that turns new raw_click_events partitions into marts runs.

An asset sensor would see only the latest materialization per tick, and a single-run backfill of 24
hours emits 24 of them; eager automation conditions only consider the latest partition. This sensor
reads every new materialization since its cursor and requests one ``marts`` run per contiguous range
of exported hours, so a backfill's hours get their marts rebuilt in one dbt invocation.
"""

import logging
from collections.abc import Iterable
from typing import Final

import dagster as dg

from assets.kafka_export.assets import raw_click_events
from assets.partitions import HOUR, partition_hour, partition_key
from orchestration.jobs import marts_job

logger = logging.getLogger(__name__)

RANGE_START_TAG: Final = "dagster/asset_partition_range_start"
RANGE_END_TAG: Final = "dagster/asset_partition_range_end"
BATCH: Final = 1000


def contiguous_ranges(keys: Iterable[str]) -> list[tuple[str, str]]:
    """Distinct hourly partition keys as (first, last) pairs of consecutive hours, in time order."""
    hours = sorted({partition_hour(k) for k in keys})
    ranges: list[tuple[str, str]] = []
    for hour in hours:
        if ranges and partition_hour(ranges[-1][1]) + HOUR == hour:
            ranges[-1] = (ranges[-1][0], partition_key(hour))
        else:
            ranges.append((partition_key(hour), partition_key(hour)))
    return ranges


def marts_run_requests(keys: Iterable[str], cursor_id: int) -> list[dg.RunRequest]:
    return [
        dg.RunRequest(
            run_key=f"marts:{first}...{last}@{cursor_id}",
            tags={RANGE_START_TAG: first, RANGE_END_TAG: last},
        )
        for first, last in contiguous_ranges(keys)
    ]


@dg.sensor(
    name="marts_after_export",
    job=marts_job,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Requests a marts run for every contiguous range of newly exported hours.",
)
def marts_after_export(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
    after = int(context.cursor) if context.cursor else None
    found = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=raw_click_events.key, after_storage_id=after),
        limit=BATCH,
        ascending=True,
    )
    if not found.records:
        return dg.SkipReason("no new raw_click_events partitions")
    last_id = found.records[-1].storage_id
    keys = [r.partition_key for r in found.records if r.partition_key]
    return dg.SensorResult(run_requests=marts_run_requests(keys, last_id), cursor=str(last_id))


ALL_SENSORS: Final = (marts_after_export,)
