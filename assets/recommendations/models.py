"""Three recommenders behind one small interface: popularity, item-item cosine, implicit ALS.

Each model is fitted on a users x videos matrix of time-decayed event weights and scores a batch of
users as a dense ``batch x videos`` array; ``top_n`` turns scores into ranked lists with the user's
own history masked. Batches are sized so one never holds more than ``SCORE_CELLS`` floats, which keeps
memory flat from a test's 500 users to a benchmark's million.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Final, Protocol

import numpy as np
import scipy.sparse as sp

logger = logging.getLogger(__name__)

SCORE_CELLS: Final = 8_000_000  # floats per scoring batch (32 MB in float32)
POPULARITY: Final = "popularity"
ITEM_ITEM: Final = "item_item"
ALS: Final = "als"


class Recommender(Protocol):
    name: str

    def score(self, users: np.ndarray, history: sp.csr_matrix) -> np.ndarray:
        """Dense float32 scores (len(users) x videos); ``history`` is the users x videos weight matrix."""
        ...


def user_batches(users: np.ndarray, n_videos: int, cells: int = SCORE_CELLS) -> Iterator[np.ndarray]:
    size = max(1, cells // max(1, n_videos))
    for start in range(0, len(users), size):
        yield users[start : start + size]


def top_n(
    model: Recommender,
    users: np.ndarray,
    history: sp.csr_matrix,
    n: int,
    exclude: sp.csr_matrix | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The ``n`` best videos per user, best first, never one in ``exclude`` (default: ``history``).

    Returns ``(videos, scores)``, both ``len(users) x n``; a row with fewer candidates ends in -1 / -inf.
    """
    exclude = history if exclude is None else exclude
    n_videos = history.shape[1]
    n = min(n, n_videos)
    out_items = np.full((len(users), n), -1, np.int32)
    out_scores = np.full((len(users), n), -np.inf, np.float32)
    row = 0
    for batch in user_batches(users, n_videos):
        scores = np.asarray(model.score(batch, history), dtype=np.float32)
        seen = exclude[batch]
        scores[np.repeat(np.arange(len(batch)), np.diff(seen.indptr)), seen.indices] = -np.inf
        if n < n_videos:
            part = np.argpartition(-scores, n - 1, axis=1)[:, :n]
        else:
            part = np.broadcast_to(np.arange(n_videos), (len(batch), n_videos)).copy()
        part_scores = np.take_along_axis(scores, part, axis=1)
        order = np.lexsort((part, -part_scores), axis=1)
        items = np.take_along_axis(part, order, axis=1).astype(np.int32)
        ranked = np.take_along_axis(part_scores, order, axis=1)
        items[~np.isfinite(ranked)] = -1
        out_items[row : row + len(batch)] = items
        out_scores[row : row + len(batch)] = ranked
        row += len(batch)
    return out_items, out_scores


@dataclass
class PopularityModel:
    """Every user gets the same ranking: the decayed weight summed over all users (the baseline)."""

    name: str = POPULARITY
    popularity: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))

    def fit(self, weights: sp.csr_matrix) -> PopularityModel:
        self.popularity = np.asarray(weights.sum(axis=0), dtype=np.float32).ravel()
        return self

    def score(self, users: np.ndarray, history: sp.csr_matrix) -> np.ndarray:
        return np.broadcast_to(self.popularity, (len(users), len(self.popularity))).copy()

    def ranking(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``n`` most popular videos (positive weight only) and their weights."""
        order = np.lexsort((np.arange(len(self.popularity)), -self.popularity))[:n]
        order = order[self.popularity[order] > 0]
        return order.astype(np.int32), self.popularity[order]


@dataclass
class ItemItemModel:
    """Cosine similarity of videos' engagement columns (co-clicks and conversions), top-K per video.

    A user's score for video i is the sum of the user's weights on videos j times sim(j, i) over the K
    nearest neighbours of j: "because you watched j". Similarity is computed a column chunk at a time,
    so memory stays at ``videos x chunk`` however dense the popular videos make the product.
    """

    neighbours: int = 50
    name: str = ITEM_ITEM
    similarity: sp.csr_matrix = field(default_factory=lambda: sp.csr_matrix((0, 0), dtype=np.float32))

    def fit(self, engagement: sp.csr_matrix) -> ItemItemModel:
        by_video = engagement.T.tocsr().astype(np.float32)  # videos x users
        norms = np.sqrt(np.asarray(by_video.multiply(by_video).sum(axis=1)).ravel())
        inverse = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
        unit = sp.diags(inverse.astype(np.float32)) @ by_video
        unit_t = unit.T.tocsc()
        n_videos = unit.shape[0]
        k = min(self.neighbours, max(0, n_videos - 1))
        rows: list[np.ndarray] = []
        cols: list[np.ndarray] = []
        vals: list[np.ndarray] = []
        chunk = max(1, min(n_videos, SCORE_CELLS // max(1, n_videos)))
        for start in range(0, n_videos, chunk):
            stop = min(n_videos, start + chunk)
            block = np.asarray((unit @ unit_t[:, start:stop]).todense(), dtype=np.float32)  # all x chunk
            block[np.arange(start, stop), np.arange(stop - start)] = 0.0  # a video is not its own neighbour
            if k == 0:
                continue
            top = np.argpartition(-block, k - 1, axis=0)[:k] if k < n_videos else np.argsort(-block, axis=0)
            sims = np.take_along_axis(block, top, axis=0)
            keep = sims > 0
            column = np.broadcast_to(np.arange(start, stop), top.shape)
            rows.append(column[keep])  # neighbours of `column` are `top`
            cols.append(top[keep])
            vals.append(sims[keep])
        if rows:
            data = (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols)))
        else:
            data = (np.zeros(0, np.float32), (np.zeros(0, np.int64), np.zeros(0, np.int64)))
        self.similarity = sp.csr_matrix(data, shape=(n_videos, n_videos), dtype=np.float32)
        return self

    def score(self, users: np.ndarray, history: sp.csr_matrix) -> np.ndarray:
        return np.asarray((history[users] @ self.similarity).todense(), dtype=np.float32)

    def similar(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Per video its ``k`` most similar videos (videos x k, -1 padded) and the cosine similarities."""
        n_videos = self.similarity.shape[0]
        items = np.full((n_videos, k), -1, np.int32)
        sims = np.zeros((n_videos, k), np.float32)
        sim = self.similarity
        for video in range(n_videos):
            lo, hi = sim.indptr[video], sim.indptr[video + 1]
            idx, val = sim.indices[lo:hi], sim.data[lo:hi]
            order = np.lexsort((idx, -val))[:k]
            items[video, : len(order)] = idx[order]
            sims[video, : len(order)] = val[order]
        return items, sims


@dataclass
class ALSModel:
    """Matrix factorisation for implicit feedback (the ``implicit`` library's ALS, CPU).

    Confidence is ``alpha * log1p(weight)``: repeated player clicks on one video raise confidence
    without letting one binge drown every other signal.
    """

    factors: int = 64
    iterations: int = 15
    regularization: float = 0.05
    alpha: float = 10.0
    num_threads: int = 2
    random_state: int = 42
    name: str = ALS
    user_factors: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    item_factors: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    _model: object | None = field(default=None, repr=False)

    def fit(self, weights: sp.csr_matrix, *, iterations: int | None = None) -> ALSModel:
        """Fit on ``weights``; a second call continues from the current factors (a warm start)."""
        from implicit.cpu.als import AlternatingLeastSquares
        from threadpoolctl import threadpool_limits

        confidence = weights.astype(np.float32, copy=True)
        confidence.data = np.log1p(confidence.data)
        # implicit runs its own threads; BLAS threads inside them only contend (implicit warns otherwise).
        with threadpool_limits(limits=1, user_api="blas"):
            model = self._model
            if model is None:
                model = AlternatingLeastSquares(
                    factors=self.factors,
                    regularization=self.regularization,
                    alpha=self.alpha,
                    iterations=self.iterations,
                    num_threads=self.num_threads,
                    random_state=self.random_state,
                )
            model.iterations = iterations or self.iterations  # type: ignore[attr-defined]
            model.fit(confidence, show_progress=False)  # type: ignore[attr-defined]
        self._model = model
        self.user_factors = np.asarray(model.user_factors, dtype=np.float32)  # type: ignore[attr-defined]
        self.item_factors = np.asarray(model.item_factors, dtype=np.float32)  # type: ignore[attr-defined]
        return self

    def score(self, users: np.ndarray, history: sp.csr_matrix) -> np.ndarray:
        return self.user_factors[users] @ self.item_factors.T
