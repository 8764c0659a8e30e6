"""Dagster assets of the recommendations domain: train → gate → publish.

- ``recommendation_model`` reads the interactions mart from the warehouse, trains and evaluates
  (``training.train_and_evaluate``) and reports the metrics table and the chart as metadata. It carries
  the blocking asset check ``ndcg_beats_popularity``: when the chosen model's NDCG@10 is below the gate
  factor (``CLICKPULSE_RECS_NDCG_GATE_FACTOR``, 1.1) times popularity's, the check fails with severity
  ERROR and Dagster does not run ``redis_recommendations`` in that run.
- ``redis_recommendations`` publishes the lists under the model's new version and switches the pointer
  (``streaming.recommendations.store``); the previous version stays for ``clickpulse recs rollback``.

The assets stay thin: the work is in pure functions with their own tests.
"""

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import dagster as dg

from assets.pools import WAREHOUSE_POOL
from assets.recommendations.chart import markdown_image, metrics_png
from assets.recommendations.interactions import MART_COLUMNS
from assets.recommendations.training import TrainedRecommendations, TrainingConfig, train_and_evaluate
from clickpulse.settings import get_settings
from orchestration.resources import RedisResource
from orchestration.warehouse import Warehouse
from streaming.recommendations.store import RecsStore
from streaming.redis_conn import Family

logger = logging.getLogger(__name__)

RECOMMENDATIONS_GROUP: Final = "recommendations"
INTERACTIONS_MODEL: Final = "int_user_video_interactions_aggregated"
GATE_CHECK: Final = "ndcg_beats_popularity"


class TrainingRunConfig(dg.Config):
    """Launchpad options; defaults come from the ``CLICKPULSE_RECS_*`` settings."""

    training_days: int | None = None
    as_of: str | None = None  # RFC 3339; the training window ends here (default: now)


def _metrics_table(result: TrainedRecommendations) -> dg.MetadataValue:
    rows = result.metrics_rows()
    types = {"model": "string", "users": "int"}
    columns = [dg.TableColumn(name, types.get(name, "float")) for name in rows[0]]
    return dg.MetadataValue.table(
        records=[dg.TableRecord(row) for row in rows], schema=dg.TableSchema(columns=columns)
    )


def _chart_path(version: str) -> Path:
    directory = get_settings().data_dir / "recommendations"
    directory.mkdir(parents=True, exist_ok=True)
    return directory / f"{version}.png"


def model_metadata(result: TrainedRecommendations, chart: bytes, chart_path: Path) -> dict[str, Any]:
    chosen = result.evaluations[result.chosen].metrics
    return {
        "model_version": result.version,
        "chosen_model": result.chosen,
        "ndcg_at_10": chosen.ndcg,
        "recall_at_10": chosen.recall,
        "coverage": chosen.coverage,
        "popularity_ndcg_at_10": result.popularity_ndcg,
        "gate_threshold": result.gate_threshold,
        "passes_gate": result.passes_gate,
        "metrics": _metrics_table(result),
        "evaluation_chart": dg.MetadataValue.md(markdown_image(chart, f"{result.version} evaluation")),
        "evaluation_chart_path": dg.MetadataValue.path(str(chart_path)),
        "users": len(result.user_ids),
        "videos": len(result.video_ids),
        "interactions": result.pairs,
        "data_until": result.data_until.isoformat(),
        "holdout_cutoff": result.holdout_cutoff.isoformat(),
        "timings_s": dg.MetadataValue.json({k: round(v, 3) for k, v in result.timings.items()}),
    }


def gate_result(result: TrainedRecommendations) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        check_name=GATE_CHECK,
        passed=result.passes_gate,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "chosen_model": result.chosen,
            "model_version": result.version,
            "chosen_ndcg_at_10": result.chosen_ndcg,
            "popularity_ndcg_at_10": result.popularity_ndcg,
            "gate_factor": result.gate_factor,
            "threshold": result.gate_threshold,
            "users_evaluated": result.evaluations[result.chosen].metrics.users,
        },
        description=(
            f"{result.chosen} NDCG@10 {result.chosen_ndcg:.4f} vs {result.gate_factor:g} x popularity "
            f"{result.popularity_ndcg:.4f} = {result.gate_threshold:.4f}"
        ),
    )


@dg.asset(
    group_name=RECOMMENDATIONS_GROUP,
    deps=[dg.AssetKey(INTERACTIONS_MODEL)],
    pool=WAREHOUSE_POOL,  # DuckDB: one writing process per file; the mart is read while no dbt build writes
    kinds={"python", "numpy"},
    check_specs=[
        dg.AssetCheckSpec(
            GATE_CHECK,
            asset="recommendation_model",
            blocking=True,
            description="Publish only when the chosen model's NDCG@10 >= gate factor x popularity's.",
        )
    ],
    description=(
        "Item-item, ALS and popularity trained on the interactions mart, evaluated on a time-based "
        "holdout (Recall@10, NDCG@10, coverage); the better personalised model, refitted on everything."
    ),
)
def recommendation_model(
    context: dg.AssetExecutionContext,
    config: TrainingRunConfig,
    warehouse: Warehouse,
) -> Any:
    settings = get_settings()
    now = datetime.now(UTC)
    end = datetime.fromisoformat(config.as_of).astimezone(UTC) if config.as_of else now
    start = end - timedelta(days=config.training_days or settings.recs_training_days)
    table = warehouse.read_model(INTERACTIONS_MODEL, list(MART_COLUMNS), "last_event_time", start, end)
    context.log.info(
        "read %d interactions from %s for [%s, %s)", table.num_rows, INTERACTIONS_MODEL, start, end
    )
    if table.num_rows == 0:
        raise dg.Failure(
            description=f"{INTERACTIONS_MODEL} has no rows with last_event_time in [{start}, {end}); "
            "run the marts first"
        )
    result = train_and_evaluate(table.to_pandas(), TrainingConfig.from_settings(settings), now=now)
    chart = metrics_png(result)
    path = _chart_path(result.version)
    path.write_bytes(chart)
    yield dg.Output(result, metadata=model_metadata(result, chart, path))
    yield gate_result(result)


@dg.asset(
    group_name=RECOMMENDATIONS_GROUP,
    kinds={"redis"},
    description=(
        "Per-user top-N and per-video similar-items lists in Redis under the model's version, made "
        "current by one atomic pointer switch; the previous version is kept for rollback."
    ),
)
def redis_recommendations(
    context: dg.AssetExecutionContext,
    recommendation_model: TrainedRecommendations,
    redis: RedisResource,
) -> dg.MaterializeResult:
    settings = get_settings()
    result = recommendation_model
    store = RecsStore(
        redis.router().client(Family.RECS), redis.keyspace(), ttl_s=settings.recs_version_ttl_hours * 3600
    )
    report = store.publish(
        result.version,
        result.user_lists(),
        result.similar_lists(),
        result.popular_list(),
        meta={
            "model": result.chosen,
            "ndcg_at_10": round(result.chosen_ndcg, 5),
            "popularity_ndcg_at_10": round(result.popularity_ndcg, 5),
            "trained_at": result.trained_at.isoformat(),
            "dagster_run_id": context.run.run_id,
        },
    )
    return dg.MaterializeResult(
        metadata={
            "model_version": report.version,
            "previous_version": report.previous or "",
            "users": report.users,
            "videos": report.videos,
            "popular": report.popular,
            "publish_seconds": report.seconds,
            "ttl_hours": settings.recs_version_ttl_hours,
        }
    )
