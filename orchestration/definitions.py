"""The Dagster code location: every domain's Definitions merged, plus jobs, schedules, sensors and the
resources of the environment CLICKPULSE_ENV selects (``workspace.yaml`` points here)."""

from __future__ import annotations

import dagster as dg

import assets.dbt.definitions as dbt_definitions
import assets.kafka_export.definitions as kafka_export_definitions
import assets.recommendations.definitions as recommendations_definitions
import assets.warehouse.definitions as warehouse_definitions
from clickpulse.settings import Settings
from orchestration.jobs import ALL_JOBS
from orchestration.resources import resources_for
from orchestration.schedules import ALL_SCHEDULES
from orchestration.sensors import ALL_SENSORS

DOMAINS = (
    kafka_export_definitions.defs,
    warehouse_definitions.defs,
    dbt_definitions.defs,
    recommendations_definitions.defs,
)


def build_defs(settings: Settings | None = None) -> dg.Definitions:
    """The code location for ``settings`` (default: the environment); tests pass their own."""
    return dg.Definitions.merge(
        *DOMAINS,
        dg.Definitions(
            jobs=list(ALL_JOBS),
            schedules=list(ALL_SCHEDULES),
            sensors=list(ALL_SENSORS),
            resources=resources_for(settings),
        ),
    )


defs = build_defs()
