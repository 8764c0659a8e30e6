"""Schedules: hourly export once an hour is closed and its lateness has passed; daily jobs."""

from __future__ import annotations

import logging
from typing import Final

import dagster as dg

from assets.partitions import export_timing
from clickpulse.settings import get_settings
from orchestration.jobs import daily_retrain_job, hourly_export_job, refresh_dimensions_job

logger = logging.getLogger(__name__)

_settings = get_settings()
_timing = export_timing(_settings.allowed_lateness_minutes)

# Hour h is exported at h + 1h + lateness: the minute comes from the lateness, the whole hours of it
# from the partitions' end offset (assets/partitions.py), so this is the partitioned job's own schedule.
hourly_export_schedule = dg.build_schedule_from_partitioned_job(
    hourly_export_job,
    name="hourly_export_schedule",
    minute_of_hour=_timing.minute_of_hour,
    default_status=dg.DefaultScheduleStatus.RUNNING,
)

refresh_dimensions_schedule = dg.ScheduleDefinition(
    name="refresh_dimensions_schedule",
    job=refresh_dimensions_job,
    cron_schedule="15 0 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Daily: keeps the Redis enrichment hashes (7-day TTL) and the dimension tables fresh.",
)

daily_retrain_schedule = dg.ScheduleDefinition(
    name="daily_retrain_schedule",
    job=daily_retrain_job,
    cron_schedule=_settings.daily_retrain_cron,
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Daily, after the last export of the previous day and its marts.",
)

ALL_SCHEDULES: Final = (hourly_export_schedule, refresh_dimensions_schedule, daily_retrain_schedule)
