"""The hourly partitions shared by the Kafka export and the incremental dbt marts.

A partition is an hour of Kafka timestamps (server receive time), UTC. The last partition is the newest
hour that closed at least the allowed lateness ago, so the export schedule (and the partitions the UI
offers) wait for late events before an hour is exported and its marts are rebuilt.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

import dagster as dg

from clickpulse.settings import get_settings

logger = logging.getLogger(__name__)

PARTITION_FORMAT: Final = "%Y-%m-%d-%H:%M"
HOUR: Final = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class ExportTiming:
    """When the hourly export fires: ``minute_of_hour`` past the hour, for the partition
    ``-end_offset`` hours behind the last complete one (``end_offset`` <= 0)."""

    minute_of_hour: int
    end_offset: int


def export_timing(lateness_minutes: int) -> ExportTiming:
    """An hour [h, h+1) is exported at h + 1 + lateness: whole hours move the partition window back,
    the remainder becomes the cron minute."""
    if lateness_minutes < 0:
        raise ValueError("lateness_minutes must be >= 0")
    return ExportTiming(minute_of_hour=lateness_minutes % 60, end_offset=-(lateness_minutes // 60))


def hourly_partitions(start: str, lateness_minutes: int) -> dg.HourlyPartitionsDefinition:
    return dg.HourlyPartitionsDefinition(
        start_date=start,
        timezone="UTC",
        fmt=PARTITION_FORMAT,
        end_offset=export_timing(lateness_minutes).end_offset,
    )


def partition_hour(key: str) -> datetime:
    """The UTC hour (aware) a partition key names."""
    return datetime.strptime(key, PARTITION_FORMAT).replace(tzinfo=UTC)


def partition_key(hour: datetime) -> str:
    return hour.astimezone(UTC).strftime(PARTITION_FORMAT)


def hours_in_window(start: datetime, end: datetime) -> list[datetime]:
    """Every hour start in [start, end), aware UTC."""
    hours = []
    current = start.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    while current < end:
        hours.append(current)
        current += HOUR
    return hours


_settings = get_settings()
HOURLY_PARTITIONS: Final = hourly_partitions(_settings.partitions_start, _settings.allowed_lateness_minutes)
