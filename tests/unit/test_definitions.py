"""The whole code location loads, and its asset keys, checks, jobs and schedules are pinned.

Renaming an asset or a check breaks lineage in the UI and the history of its materializations, so it
has to show up here as a deliberate change.
"""

from __future__ import annotations

import subprocess
import sys

import dagster as dg
import pytest

from orchestration.resources import resources_by_env

ASSET_KEYS = {
    "raw_click_events",
    "video_catalog",
    "user_profiles",
    "stg_kafka__click_events",
    "stg_catalog__videos",
    "stg_catalog__user_profiles",
    "int_sessions_summarised",
    "int_user_video_interactions_aggregated",
    "dim_videos",
    "dim_users",
    "fct_video_engagement_hourly",
    "fct_button_clicks_hourly",
    "fct_button_usage",
    "fct_video_popularity",
    "fct_user_engagement_daily",
    "fct_recommendation_ctr",
    "recommendation_model",
    "redis_recommendations",
}
OUR_CHECKS = {
    "raw_click_events:great_expectations_suite",
    "raw_click_events:row_count_matches_kafka",
    "fct_video_engagement_hourly:reconciles_with_redis",
    "recommendation_model:ndcg_beats_popularity",
}
HOURLY = {"raw_click_events", "fct_video_engagement_hourly", "fct_button_clicks_hourly"}


@pytest.fixture(scope="module")
def defs() -> dg.Definitions:
    from orchestration.definitions import defs

    dg.Definitions.validate_loadable(defs)
    return defs


def test_asset_keys_are_pinned(defs: dg.Definitions) -> None:
    graph = defs.resolve_asset_graph()
    assert {k.to_user_string() for k in graph.get_all_asset_keys()} == ASSET_KEYS


def test_checks_are_pinned_and_dbt_tests_are_checks(defs: dg.Definitions) -> None:
    checks = {k.to_user_string() for k in defs.resolve_asset_graph().asset_check_keys}
    assert checks >= OUR_CHECKS
    dbt_checks = checks - OUR_CHECKS
    assert all(c.split(":")[0] in ASSET_KEYS for c in dbt_checks)
    assert (
        "fct_video_engagement_hourly:unique_combination_fct_video_engagement_hourly_event_hour__video_id"
        in checks
    )


def test_lineage_runs_from_kafka_and_dimensions_through_dbt(defs: dg.Definitions) -> None:
    graph = defs.resolve_asset_graph()
    staged = graph.get(dg.AssetKey("stg_kafka__click_events"))
    assert dg.AssetKey("raw_click_events") in staged.parent_keys
    assert dg.AssetKey("video_catalog") in graph.get(dg.AssetKey("stg_catalog__videos")).parent_keys
    assert dg.AssetKey("user_profiles") in graph.get(dg.AssetKey("stg_catalog__user_profiles")).parent_keys


def test_incremental_marts_share_the_export_partitions(defs: dg.Definitions) -> None:
    graph = defs.resolve_asset_graph()
    partitioned = {k.to_user_string() for k in graph.get_all_asset_keys() if graph.get(k).partitions_def}
    assert partitioned == HOURLY
    export = graph.get(dg.AssetKey("raw_click_events"))
    assert graph.get(dg.AssetKey("fct_video_engagement_hourly")).partitions_def == export.partitions_def
    assert export.backfill_policy == dg.BackfillPolicy.single_run()


def test_jobs_schedules_and_sensors_are_pinned(defs: dg.Definitions) -> None:
    jobs = {j.name for j in defs.resolve_all_job_defs() if not j.name.startswith("__")}
    assert jobs == {
        "hourly_export",
        "marts",
        "refresh_dimensions",
        "daily_retrain",
        "retrain_recommendations",
    }
    assert {s.name for s in defs.schedules or []} == {
        "hourly_export_schedule",
        "refresh_dimensions_schedule",
        "daily_retrain_schedule",
    }
    assert {s.name for s in defs.sensors or []} == {"marts_after_export"}
    retrain = defs.resolve_job_def("daily_retrain")
    assert {k.to_user_string() for k in retrain.asset_layer.selected_asset_keys} >= {
        "fct_user_engagement_daily",
        "fct_video_popularity",
        "int_user_video_interactions_aggregated",
        "recommendation_model",
        "redis_recommendations",
    }


def test_both_environments_offer_the_same_resources(defs: dg.Definitions) -> None:
    from clickpulse.settings import Settings

    envs = resources_by_env(Settings())
    assert set(envs) == {"local", "prod"}
    assert set(envs["local"]) == set(envs["prod"])
    assert set(envs["local"]) <= set(defs.resources or {})


def test_prod_endpoints_are_env_vars_resolved_by_dagster() -> None:
    from clickpulse.settings import Settings

    prod = resources_by_env(Settings())["prod"]
    assert type(prod["warehouse"]).__name__ == "BigQueryWarehouse"
    assert prod["warehouse"].project == dg.EnvVar("CLICKPULSE_BQ_PROJECT")
    assert isinstance(prod["warehouse"].project, dg.EnvVar)
    assert isinstance(prod["kafka"].bootstrap_servers, dg.EnvVar)
    assert isinstance(prod["redis"].url, dg.EnvVar)
    local = resources_by_env(Settings())["local"]
    assert type(local["warehouse"]).__name__ == "DuckDBWarehouse"
    assert local["warehouse"].path.endswith(".duckdb") and not isinstance(local["warehouse"].path, dg.EnvVar)


def test_the_environment_variable_picks_the_map(monkeypatch: pytest.MonkeyPatch) -> None:
    from clickpulse.settings import Settings
    from orchestration.resources import resources_for

    monkeypatch.setenv("CLICKPULSE_ENV", "prod")
    assert type(resources_for(Settings())["warehouse"]).__name__ == "BigQueryWarehouse"
    monkeypatch.setenv("CLICKPULSE_ENV", "local")
    assert type(resources_for(Settings())["warehouse"]).__name__ == "DuckDBWarehouse"


def test_loading_definitions_does_not_import_great_expectations() -> None:
    """GE takes seconds to import: only the check imports it, when it runs."""
    code = "import sys, orchestration.definitions; print('great_expectations' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300
    )
    assert done.stdout.strip().splitlines()[-1] == "False"
