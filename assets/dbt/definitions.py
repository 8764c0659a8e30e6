"""The dbt domain's Definitions: the dbt models and the reconciliation check on the engagement mart."""

from __future__ import annotations

import dagster as dg

from assets.dbt.assets import dbt_hourly_marts, dbt_models
from assets.dbt.checks import reconciles_with_redis

defs = dg.Definitions(assets=[dbt_hourly_marts, dbt_models], asset_checks=[reconciles_with_redis])
