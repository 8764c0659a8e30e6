"""Time-based holdout and ranking metrics: Recall@K, NDCG@K and catalog coverage.

The holdout is split by time, never at random: pairs a user first touched before the cutoff train the
models, and the videos a user first clicked or converted on after it are what the models must find. A
random split would leak the future (a video's later popularity) into training and flatter every model.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from assets.recommendations.interactions import Interactions
from assets.recommendations.models import Recommender, top_n

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Holdout:
    """Train pairs, the held-out engaged pairs, and the users evaluated (history in train, a hit in test)."""

    train: Interactions
    test: sp.csr_matrix  # users x videos, 1 where the user first engaged after the cutoff
    users: np.ndarray  # int32 codes of the evaluated users
    cutoff_ms: int


def time_holdout(data: Interactions, share: float, *, max_users: int | None = None, seed: int = 0) -> Holdout:
    """Hold out the latest ``share`` of pairs by first event time.

    Only engaged pairs (a click or a conversion) become test positives; impression-only pairs after the
    cutoff are dropped from both sides. ``max_users`` samples the evaluated users (deterministically by
    ``seed``) to bound the evaluation cost on large runs.
    """
    if not 0 < share < 1:
        raise ValueError("holdout share must be between 0 and 1")
    cutoff = int(np.quantile(data.first_ms, 1 - share, method="higher")) if data.n_pairs else 0
    before = data.first_ms < cutoff
    train = data.subset(before)
    test_pairs = data.subset(~before & data.engaged)
    test = test_pairs.matrix()
    has_history = np.bincount(train.user, minlength=data.n_users) > 0
    has_target = np.diff(test.indptr) > 0
    users = np.flatnonzero(has_history & has_target).astype(np.int32)
    if max_users is not None and len(users) > max_users:
        users = np.sort(np.random.default_rng(seed).choice(users, max_users, replace=False)).astype(np.int32)
    logger.info(
        "holdout: %d train pairs, %d test positives, %d users evaluated", train.n_pairs, test.nnz, len(users)
    )
    return Holdout(train=train, test=test, users=users, cutoff_ms=cutoff)


@dataclass(frozen=True, slots=True)
class RankingMetrics:
    """Means over the evaluated users; coverage is over the whole catalog."""

    recall: float
    ndcg: float
    coverage: float
    users: int
    k: int


def ranking_metrics(
    recommended: np.ndarray, test: sp.csr_matrix, users: np.ndarray, k: int
) -> RankingMetrics:
    """Recall@k (hits / held-out positives) and NDCG@k (binary relevance, ideal = min(k, positives)) for
    the ranked lists ``recommended`` (users x ≥k video codes, -1 for none), and catalog coverage: the share
    of all videos that appear in some user's top k."""
    if len(users) == 0:
        return RankingMetrics(0.0, 0.0, 0.0, 0, k)
    top = recommended[:, :k]
    truth = test[users]
    positives = np.diff(truth.indptr).astype(np.float64)
    hits = np.zeros(top.shape, dtype=bool)
    for row in range(len(users)):
        relevant = truth.indices[truth.indptr[row] : truth.indptr[row + 1]]
        hits[row] = np.isin(top[row], relevant) & (top[row] >= 0)
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = (hits * discounts[: top.shape[1]]).sum(axis=1)  # a catalog smaller than k gives shorter lists
    ideal = np.cumsum(discounts)[np.minimum(positives, k).astype(int) - 1]
    catalog = test.shape[1]
    shown = np.unique(top[top >= 0])
    return RankingMetrics(
        recall=float(np.mean(hits.sum(axis=1) / positives)),
        ndcg=float(np.mean(dcg / ideal)),
        coverage=len(shown) / catalog if catalog else 0.0,
        users=len(users),
        k=k,
    )


def evaluate(
    model: Recommender,
    history: sp.csr_matrix,
    holdout: Holdout,
    k: int = 10,
    *,
    seen: sp.csr_matrix | None = None,
) -> tuple[RankingMetrics, np.ndarray]:
    """Rank for the evaluated users with every train pair masked (``seen``, computed when not given);
    returns the metrics and the ranked lists."""
    exclude = holdout.train.matrix() if seen is None else seen
    items, _ = top_n(model, holdout.users, history, k, exclude=exclude)
    return ranking_metrics(items, holdout.test, holdout.users, k), items
