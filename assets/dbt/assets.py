"""dbt models as assets: incremental marts partitioned by hour, everything else unpartitioned.

The incremental marts share the export's hourly partitions. A run over a partition (or a range, as
one run) passes the window to dbt as ``--vars`` (``assets.dbt_vars``): dbt rebuilds the event hours
from the window start minus the allowed lateness up to its end, so late events of those hours are
counted. Views and whole-table marts are one unpartitioned asset set; a ``dbt build`` of them
rebuilds them from everything in the warehouse.
"""

import logging
from collections.abc import Iterator
from typing import Any, Final

import dagster as dg
from dagster_dbt import DbtCliResource, dbt_assets

from assets.dbt.project import dbt_project
from assets.dbt.translator import ClickPulseDbtTranslator
from assets.dbt_vars import TrendingParams, dbt_vars_arg, dbt_vars_for_window, rebuilt_hours
from assets.partitions import HOURLY_PARTITIONS
from assets.pools import WAREHOUSE_POOL
from clickpulse.settings import Settings, get_settings

logger = logging.getLogger(__name__)

INCREMENTAL_SELECTOR: Final = "config.materialized:incremental"


def trending_params(settings: Settings) -> TrendingParams:
    """The real-time trending parameters, so the marts rank videos like the API does."""
    return TrendingParams(
        weight_impression=settings.trending_weight_impression,
        weight_click=settings.trending_weight_click,
        weight_conversion=settings.trending_weight_conversion,
        half_life_hours=settings.trending_half_life_hours,
    )


def base_vars(settings: Settings) -> dict[str, Any]:
    return {"lateness_minutes": settings.allowed_lateness_minutes, **trending_params(settings).as_vars()}


def build_args(context: dg.AssetExecutionContext, dbt_vars: dict[str, Any]) -> list[str]:
    """``dbt build`` with the vars; a subset run only takes the tests whose every parent it builds.

    dbt's default (eager) would also run a relationships test from a mart that is not selected (and
    may not exist yet) to a selected dimension; those tests run with the mart's own build instead.
    """
    args = ["build", "--vars", dbt_vars_arg(dbt_vars)]
    if context.is_subset:
        args += ["--indirect-selection", "cautious"]
    return args


@dbt_assets(
    manifest=dbt_project().manifest_path,
    project=dbt_project(),
    select=INCREMENTAL_SELECTOR,
    name="dbt_hourly_marts",
    partitions_def=HOURLY_PARTITIONS,
    backfill_policy=dg.BackfillPolicy.single_run(),
    dagster_dbt_translator=ClickPulseDbtTranslator(),
    pool=WAREHOUSE_POOL,
)
def dbt_hourly_marts(context: dg.AssetExecutionContext, dbt: DbtCliResource) -> Iterator[Any]:
    settings = get_settings()
    window = context.partition_time_window
    dbt_vars = dbt_vars_for_window(
        window.start, window.end, settings.allowed_lateness_minutes, trending=trending_params(settings)
    )
    first, end = rebuilt_hours(window.start, window.end, settings.allowed_lateness_minutes)
    context.log.info(f"rebuilding event hours [{first:%Y-%m-%dT%H}, {end:%Y-%m-%dT%H}) with vars {dbt_vars}")
    yield from dbt.cli(build_args(context, dbt_vars), context=context).stream()


@dbt_assets(
    manifest=dbt_project().manifest_path,
    project=dbt_project(),
    exclude=INCREMENTAL_SELECTOR,
    name="dbt_models",
    backfill_policy=dg.BackfillPolicy.single_run(),
    dagster_dbt_translator=ClickPulseDbtTranslator(),
    pool=WAREHOUSE_POOL,
)
def dbt_models(context: dg.AssetExecutionContext, dbt: DbtCliResource) -> Iterator[Any]:
    yield from dbt.cli(build_args(context, base_vars(get_settings())), context=context).stream()
