"""Train, evaluate and choose: the pure function behind the ``recommendation_model`` asset.

``train_and_evaluate`` fits popularity, item-item and ALS on the time-based holdout's train side,
scores all three on the held-out clicks, chooses the better of item-item and ALS by NDCG@10, refits
the chosen model (and the item-item neighbours the API blends in) on all interactions, and returns
every list the ``redis_recommendations`` asset publishes. Popularity is the baseline the evaluation
gate compares against and the fallback list for users without a list of their own.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import numpy as np
import pandas as pd

from assets.recommendations.evaluation import RankingMetrics, evaluate, time_holdout
from assets.recommendations.interactions import EventWeights, Interactions
from assets.recommendations.models import (
    ALS,
    ITEM_ITEM,
    POPULARITY,
    ALSModel,
    ItemItemModel,
    PopularityModel,
    Recommender,
    top_n,
)
from clickpulse.settings import Settings

logger = logging.getLogger(__name__)

EVAL_K: Final = 10
CANDIDATES: Final = (ITEM_ITEM, ALS)


@dataclass(frozen=True)
class TrainingConfig:
    """Everything that shapes a training run; ``from_settings`` reads the ``CLICKPULSE_RECS_*`` values."""

    weights: EventWeights = field(default_factory=EventWeights)
    half_life_days: float = 14.0
    holdout_share: float = 0.2
    top_n: int = 40
    similar_k: int = 20
    item_neighbours: int = 50
    popular_n: int = 100
    als_factors: int = 64
    als_iterations: int = 15
    als_regularization: float = 0.05
    als_alpha: float = 10.0
    num_threads: int = 2
    gate_factor: float = 1.1
    max_eval_users: int = 20_000
    seed: int = 42

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> TrainingConfig:
        values: dict[str, Any] = {
            "weights": EventWeights(
                settings.recs_weight_impression, settings.recs_weight_click, settings.recs_weight_conversion
            ),
            "half_life_days": settings.recs_half_life_days,
            "holdout_share": settings.recs_holdout_share,
            "top_n": settings.recs_top_n,
            "similar_k": settings.recs_similar_k,
            "als_factors": settings.recs_als_factors,
            "als_iterations": settings.recs_als_iterations,
            "als_regularization": settings.recs_als_regularization,
            "als_alpha": settings.recs_als_alpha,
            "num_threads": settings.recs_num_threads,
            "gate_factor": settings.recs_ndcg_gate_factor,
        }
        return cls(**{**values, **overrides})


@dataclass(frozen=True)
class ModelEvaluation:
    """One model's holdout numbers and how long it took to fit."""

    model: str
    metrics: RankingMetrics
    fit_seconds: float

    def as_row(self) -> dict[str, Any]:
        return {
            "model": self.model,
            f"recall@{self.metrics.k}": round(self.metrics.recall, 4),
            f"ndcg@{self.metrics.k}": round(self.metrics.ndcg, 4),
            "coverage": round(self.metrics.coverage, 4),
            "users": self.metrics.users,
            "fit_s": round(self.fit_seconds, 2),
        }


@dataclass(frozen=True)
class TrainedRecommendations:
    """A trained, evaluated model and the lists to publish under ``version``."""

    version: str
    chosen: str
    evaluations: dict[str, ModelEvaluation]
    gate_factor: float
    user_ids: np.ndarray  # str per user code
    video_ids: np.ndarray  # str per video code
    user_items: np.ndarray  # int32 users x top_n video codes, -1 padded
    user_scores: np.ndarray  # float32, same shape
    similar_items: np.ndarray  # int32 videos x similar_k
    similar_scores: np.ndarray
    popular_items: np.ndarray  # int32 video codes, best first
    popular_scores: np.ndarray
    trained_at: datetime
    data_until: datetime
    holdout_cutoff: datetime
    pairs: int
    timings: dict[str, float]

    @property
    def chosen_ndcg(self) -> float:
        return self.evaluations[self.chosen].metrics.ndcg

    @property
    def popularity_ndcg(self) -> float:
        return self.evaluations[POPULARITY].metrics.ndcg

    @property
    def gate_threshold(self) -> float:
        return self.gate_factor * self.popularity_ndcg

    @property
    def passes_gate(self) -> bool:
        """NDCG@10 of the chosen model >= gate factor x popularity's (and above 0: 0 >= 0 is no pass)."""
        return self.chosen_ndcg >= self.gate_threshold and self.chosen_ndcg > 0

    def metrics_rows(self) -> list[dict[str, Any]]:
        return [e.as_row() for e in self.evaluations.values()]

    def _pairs(self, items: np.ndarray, scores: np.ndarray) -> list[tuple[str, float]]:
        keep = items >= 0
        return [
            (str(v), round(float(s), 5))
            for v, s in zip(self.video_ids[items[keep]], scores[keep], strict=True)
        ]

    def user_lists(self) -> Iterator[tuple[str, list[tuple[str, float]]]]:
        """(user_id, [(video_id, score), ...] best first) for every user with a non-empty list."""
        for code, user_id in enumerate(self.user_ids):
            items = self._pairs(self.user_items[code], self.user_scores[code])
            if items:
                yield str(user_id), items

    def similar_lists(self) -> Iterator[tuple[str, list[tuple[str, float]]]]:
        """(video_id, [(similar video_id, cosine), ...]) for every video with neighbours."""
        for code, video_id in enumerate(self.video_ids):
            items = self._pairs(self.similar_items[code], self.similar_scores[code])
            if items:
                yield str(video_id), items

    def popular_list(self) -> list[tuple[str, float]]:
        return self._pairs(self.popular_items, self.popular_scores)


def _ms_to_datetime(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def model_version(chosen: str, at: datetime) -> str:
    """``<model>-<UTC timestamp>``: sorts by time, names the algorithm, safe inside a Redis key."""
    return f"{chosen}-{at.astimezone(UTC):%Y%m%d%H%M%S}"


def _fit_timed(model: Any, *args: Any, **kwargs: Any) -> float:
    began = time.perf_counter()
    model.fit(*args, **kwargs)
    return time.perf_counter() - began


def train_and_evaluate(
    frame: pd.DataFrame, config: TrainingConfig | None = None, *, now: datetime | None = None
) -> TrainedRecommendations:
    """Fit, evaluate on a time-based holdout, choose, refit on everything, rank every user's top N."""
    config = config or TrainingConfig()
    now = now or datetime.now(UTC)
    timings: dict[str, float] = {}
    began = time.perf_counter()
    data = Interactions.from_frame(frame)
    if data.n_pairs == 0:
        raise ValueError("no interactions to train on")
    timings["prepare_s"] = time.perf_counter() - began

    holdout = time_holdout(data, config.holdout_share, max_users=config.max_eval_users, seed=config.seed)
    train = holdout.train
    reference = train.reference_ms()
    history = train.matrix(train.weights(config.weights, config.half_life_days, reference))
    engagement = train.matrix(
        train.weights(config.weights, config.half_life_days, reference, engaged_only=True)
    )
    als = ALSModel(
        factors=config.als_factors,
        iterations=config.als_iterations,
        regularization=config.als_regularization,
        alpha=config.als_alpha,
        num_threads=config.num_threads,
        random_state=config.seed,
    )
    models: list[tuple[Recommender, float]] = []
    popularity = PopularityModel()
    models.append((popularity, _fit_timed(popularity, history)))
    item_item = ItemItemModel(neighbours=config.item_neighbours)
    models.append((item_item, _fit_timed(item_item, engagement)))
    models.append((als, _fit_timed(als, history)))

    began = time.perf_counter()
    evaluations: dict[str, ModelEvaluation] = {}
    seen = train.matrix()
    for model, fit_seconds in models:
        metrics, _ = evaluate(model, history, holdout, EVAL_K, seen=seen)
        evaluations[model.name] = ModelEvaluation(model.name, metrics, fit_seconds)
        logger.info("%s: %s (fit %.1fs)", model.name, metrics, fit_seconds)
    timings["evaluate_s"] = time.perf_counter() - began
    timings.update({f"fit_{m.name}_s": s for m, s in models})
    chosen = max(
        CANDIDATES, key=lambda name: (evaluations[name].metrics.ndcg, evaluations[name].metrics.recall)
    )

    # Refit on every interaction, decayed to the latest event; ALS continues from the holdout factors.
    began = time.perf_counter()
    reference = data.reference_ms()
    full_history = data.matrix(data.weights(config.weights, config.half_life_days, reference))
    full_engagement = data.matrix(
        data.weights(config.weights, config.half_life_days, reference, engaged_only=True)
    )
    popularity_full = PopularityModel().fit(full_history)
    neighbours = ItemItemModel(neighbours=config.item_neighbours).fit(full_engagement)
    final: Recommender = neighbours
    if chosen == ALS:
        final = als.fit(full_history, iterations=max(3, config.als_iterations // 3))
    timings["refit_s"] = time.perf_counter() - began

    began = time.perf_counter()
    users = np.arange(data.n_users, dtype=np.int32)
    user_items, user_scores = top_n(final, users, full_history, config.top_n, exclude=data.matrix())
    similar_items, similar_scores = neighbours.similar(config.similar_k)
    popular_items, popular_scores = popularity_full.ranking(config.popular_n)
    timings["rank_s"] = time.perf_counter() - began

    return TrainedRecommendations(
        version=model_version(chosen, now),
        chosen=chosen,
        evaluations=evaluations,
        gate_factor=config.gate_factor,
        user_ids=data.user_ids,
        video_ids=data.video_ids,
        user_items=user_items,
        user_scores=user_scores,
        similar_items=similar_items,
        similar_scores=similar_scores,
        popular_items=popular_items,
        popular_scores=popular_scores,
        trained_at=now,
        data_until=_ms_to_datetime(reference),
        holdout_cutoff=_ms_to_datetime(holdout.cutoff_ms),
        pairs=data.n_pairs,
        timings=timings,
    )
