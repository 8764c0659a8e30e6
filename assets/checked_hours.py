"""Which hours an asset check looks at: the run's partition window, or the latest materialized one."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import dagster as dg

from assets.partitions import hours_in_window, partition_hour

logger = logging.getLogger(__name__)


def checked_window(
    context: dg.AssetCheckExecutionContext, asset_key: dg.AssetKey
) -> tuple[datetime, datetime]:
    """[start, end) of the hours a check covers.

    In a run with a partition or a partition range (the export, a single-run backfill, the marts job)
    the check covers exactly that window. Run on its own, it covers the latest materialized partition
    of ``asset_key``, or the last closed hour when there is none yet.
    """
    if context.has_partition_key or context.has_partition_key_range:
        window = context.partition_time_window
        return window.start.astimezone(UTC), window.end.astimezone(UTC)
    latest = context.instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=asset_key), limit=1)
    if latest.records and latest.records[0].partition_key:
        hour = partition_hour(latest.records[0].partition_key)
    else:
        hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    return hour, hour + timedelta(hours=1)


def checked_hours(context: dg.AssetCheckExecutionContext, asset_key: dg.AssetKey) -> list[datetime]:
    start, end = checked_window(context, asset_key)
    return hours_in_window(start, end)
