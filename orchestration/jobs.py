"""Jobs: the hourly export, the marts after it, the dimension refresh, and the daily retrain."""

from __future__ import annotations

import logging
from typing import Final

import dagster as dg

from assets.dbt.assets import dbt_hourly_marts, dbt_models
from assets.kafka_export.assets import raw_click_events
from assets.warehouse.assets import DIMENSIONS_GROUP

logger = logging.getLogger(__name__)

# The recommendations domain puts its assets (model, evaluation gate, Redis publication) in this group;
# daily_retrain runs them after refreshing the marts they read.
RECOMMENDATIONS_GROUP: Final = "recommendations"
# Whole-table marts that feed the recommender and are only worth rebuilding once a day on their own.
DAILY_MARTS: Final = (
    dg.AssetKey("int_user_video_interactions_aggregated"),
    dg.AssetKey("fct_user_engagement_daily"),
    dg.AssetKey("fct_video_popularity"),
)

hourly_export_job = dg.define_asset_job(
    name="hourly_export",
    selection=dg.AssetSelection.assets(raw_click_events),
    description="Export one hour of clicks.enriched to the lake and the warehouse, with its checks.",
)

marts_job = dg.define_asset_job(
    name="marts",
    selection=dg.AssetSelection.assets(dbt_hourly_marts, dbt_models),
    description=(
        "dbt build of every model: incremental marts for the partition window (plus the lateness "
        "lookback), views and whole-table marts in full."
    ),
)

# The dimension assets, their staging views and the dim_* tables (two steps downstream). Marts that join
# a dimension are rebuilt by the next marts run, which also builds the events they need.
refresh_dimensions_job = dg.define_asset_job(
    name="refresh_dimensions",
    selection=dg.AssetSelection.groups(DIMENSIONS_GROUP).downstream(depth=2)
    & (dg.AssetSelection.groups(DIMENSIONS_GROUP) | dg.AssetSelection.assets(dbt_models)),
    description="Reload the catalog and user profiles into the warehouse and Redis, then their dbt models.",
)

daily_retrain_job = dg.define_asset_job(
    name="daily_retrain",
    selection=dg.AssetSelection.groups(RECOMMENDATIONS_GROUP) | dg.AssetSelection.assets(*DAILY_MARTS),
    description=(
        f"Rebuild the daily marts the recommender reads, then every asset of the '{RECOMMENDATIONS_GROUP}' "
        "group (retraining and publishing recommendations)."
    ),
)

ALL_JOBS: Final = (hourly_export_job, marts_job, refresh_dimensions_job, daily_retrain_job)
