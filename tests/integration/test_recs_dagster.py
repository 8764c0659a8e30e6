"""The recommendations domain in Dagster, in process, with the production resource classes: the mart in
a DuckDB warehouse → train → gate → versioned lists in Redis under a private prefix."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pandas as pd
import pytest

import assets.recommendations.definitions as recs_definitions
import orchestration.jobs as orchestration_jobs
from assets.recommendations.assets import (
    GATE_CHECK,
    INTERACTIONS_MODEL,
    RECOMMENDATIONS_GROUP,
    recommendation_model,
    redis_recommendations,
)
from assets.recommendations.interactions import aggregate_events
from clickpulse.settings import get_settings
from orchestration.resources import RedisResource
from orchestration.warehouse import DuckDBWarehouse
from streaming.recommendations.store import RecsStore, decode_list
from streaming.redis_conn import Family, connect
from streaming.simulator import SimulationConfig, Simulator
from tests.integration.recs_support import delete_prefix
from tests.support.dagster_metadata import metadata_float, metadata_str, metadata_table


@pytest.fixture(scope="module")
def mart(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, datetime]:
    sim = Simulator(SimulationConfig(users=400, videos=150, events=30_000, seed=5, taste_strength=0.9))
    frame = aggregate_events(r.event for r in sim if r.valid and r.event is not None)
    path = str(tmp_path_factory.mktemp("warehouse") / "warehouse.duckdb")
    with duckdb.connect(path) as con:
        table = frame.assign(
            first_event_time=frame["first_event_time"].dt.tz_localize(None),
            last_event_time=frame["last_event_time"].dt.tz_localize(None),
        )
        con.register("frame", table)
        con.execute(f"create table main.{INTERACTIONS_MODEL} as select * from frame")
    return path, sim.config.end


@pytest.fixture
def redis_resource(redis_url: str, unique_name: Callable[[str], str]) -> Iterator[RedisResource]:
    resource = RedisResource(url=redis_url, prefix=unique_name("recs"))
    yield resource
    client = connect(redis_url)
    delete_prefix(client, resource.prefix)
    client.close()
    resource.router().close()


@pytest.fixture
def recs_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Callable[..., None]]:
    def configure(**values: str) -> None:
        for name, value in values.items():
            monkeypatch.setenv(name, value)
        get_settings.cache_clear()

    configure(CLICKPULSE_DATA_DIR=str(tmp_path), CLICKPULSE_RECS_ALS_FACTORS="32")
    yield configure
    monkeypatch.undo()
    get_settings.cache_clear()


def recs_client(resource: RedisResource) -> Any:
    return resource.router().client(Family.RECS)


def run(mart: tuple[str, datetime], redis_resource: RedisResource) -> dg.ExecuteInProcessResult:
    path, end = mart
    as_of = (end + timedelta(hours=1)).isoformat()
    return dg.materialize(
        [recommendation_model, redis_recommendations],
        resources={"warehouse": DuckDBWarehouse(path=path), "redis": redis_resource},
        run_config=dg.RunConfig(
            ops={"recommendation_model": {"config": {"as_of": as_of, "training_days": 30}}}
        ),
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )


def test_definitions_pin_the_asset_and_check_keys() -> None:
    merged = dg.Definitions.merge(
        recs_definitions.defs,
        dg.Definitions(
            resources={
                "warehouse": DuckDBWarehouse(path="unused.duckdb"),
                "redis": RedisResource(url="redis://x"),
            }
        ),
    )
    graph = merged.resolve_asset_graph()
    assert {k.to_user_string() for k in graph.get_all_asset_keys()} >= {
        "recommendation_model",
        "redis_recommendations",
    }
    assert {(k.asset_key.to_user_string(), k.name) for k in graph.asset_check_keys} == {
        ("recommendation_model", GATE_CHECK)
    }
    assert merged.resolve_job_def("retrain_recommendations") is not None
    assert orchestration_jobs.RECOMMENDATIONS_GROUP == RECOMMENDATIONS_GROUP, (
        "daily_retrain selects the group"
    )
    upstream = graph.get(dg.AssetKey("recommendation_model")).parent_keys
    assert upstream == {dg.AssetKey(INTERACTIONS_MODEL)}


def test_train_gate_and_publish(
    mart: tuple[str, datetime], redis_resource: RedisResource, recs_env: Callable[..., None], tmp_path: Path
) -> None:
    result = run(mart, redis_resource)
    assert result.success
    (check,) = result.get_asset_check_evaluations()
    assert check.passed and check.check_name == GATE_CHECK
    assert (
        metadata_float(check.metadata, "chosen_ndcg_at_10")
        >= metadata_float(check.metadata, "threshold")
        == pytest.approx(1.1 * metadata_float(check.metadata, "popularity_ndcg_at_10"))
    )

    (model_event,) = [
        m
        for m in result.get_asset_materialization_events()
        if m.asset_key == dg.AssetKey("recommendation_model")
    ]
    metadata = model_event.materialization.metadata
    version = metadata_str(metadata, "model_version")
    assert metadata_str(metadata, "evaluation_chart").startswith("![")
    assert Path(metadata_str(metadata, "evaluation_chart_path")).read_bytes().startswith(b"\x89PNG")
    assert Path(metadata_str(metadata, "evaluation_chart_path")).parent == tmp_path / "recommendations"
    rows = metadata_table(metadata, "metrics")
    assert {r.data["model"] for r in rows} == {"popularity", "item_item", "als"}

    store = RecsStore(recs_client(redis_resource), redis_resource.keyspace())
    assert store.pointer().current == version
    published = result.output_for_node("recommendation_model")
    user, items = next(published.user_lists())
    stored = decode_list(
        recs_client(redis_resource).get(redis_resource.keyspace().user_recommendations(user, version))
    )
    assert stored == (version, items)


def test_a_failing_gate_blocks_publishing(
    mart: tuple[str, datetime], redis_resource: RedisResource, recs_env: Callable[..., None]
) -> None:
    recs_env(CLICKPULSE_RECS_NDCG_GATE_FACTOR="1000")
    result = run(mart, redis_resource)
    (check,) = result.get_asset_check_evaluations()
    assert not check.passed
    assert metadata_float(check.metadata, "gate_factor") == 1000.0
    materialized = {m.asset_key for m in result.get_asset_materialization_events()}
    assert materialized == {dg.AssetKey("recommendation_model")}
    assert RecsStore(recs_client(redis_resource), redis_resource.keyspace()).pointer().current is None
    assert pd.notna(metadata_float(check.metadata, "chosen_ndcg_at_10"))
