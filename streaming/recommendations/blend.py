"""The request-time blend: precomputed list + neighbours of recent clicks + what is popular now.

Pure (no Redis, no clock), so the API and the real-time next-up push rank with the same code and a
unit test can pin every rule:

- each source is scaled to [0, 1] within itself (precomputed and popular by rank, because ALS and
  item-item scores are not comparable across models; neighbours by cosine relative to the anchor's best
  neighbour) and weighted by ``BlendWeights``;
- the n-th most recent click counts ``recency_decay ** n``, so the latest click steers the next-up row;
- a video's score is the sum of its contributions; its reason is the largest one: "because you watched
  <anchor>", "recommended for you" or "popular now";
- watched videos (the recent clicks and anything else in ``watched``) are never returned.
"""

from __future__ import annotations

import heapq
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

REASON_PERSONAL: Final = "recommended for you"
REASON_POPULAR: Final = "popular now"
_PERSONAL: Final = "\x00personal"
_POPULAR: Final = "\x00popular"


def because(video_id: str) -> str:
    return f"because you watched {video_id}"


@dataclass(frozen=True, slots=True)
class BlendWeights:
    precomputed: float = 1.0
    realtime: float = 1.0
    popular: float = 0.1
    recency_decay: float = 0.6
    anchors: int = 5  # recent clicks whose neighbours are blended in


@dataclass(frozen=True, slots=True)
class ScoredItem:
    video_id: str
    score: float
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"video_id": self.video_id, "score": self.score, "reason": self.reason}


def _by_rank(items: Sequence[tuple[str, float]], weight: float) -> list[tuple[str, float]]:
    """``weight`` x (1 - rank / n): the first item ``weight``, the last ``weight / n``."""
    n = len(items)
    return [(video_id, weight * (1.0 - rank / n)) for rank, (video_id, _) in enumerate(items)]


def blend(
    *,
    k: int,
    precomputed: Sequence[tuple[str, float]] = (),
    recent: Sequence[str] = (),
    similar: Mapping[str, Sequence[tuple[str, float]]] | None = None,
    popular: Sequence[tuple[str, float]] = (),
    watched: Collection[str] = (),
    weights: BlendWeights | None = None,
) -> list[ScoredItem]:
    """The top ``k`` videos for one user. ``recent`` is newest first; ``similar`` maps a video to its
    neighbours (video, cosine) best first."""
    w = weights or BlendWeights()
    similar = similar or {}
    excluded = set(watched)
    excluded.update(recent)
    # Most videos get one contribution: (source, value) until a second source adds to them, then
    # {source: value} in the order the sources came (the order the total sums them in).
    single: dict[str, tuple[str, float]] = {}
    several: dict[str, dict[str, float]] = {}

    def add_all(source: str, contributions: Iterable[tuple[str, float]]) -> None:
        for video_id, value in contributions:
            if value <= 0 or video_id in excluded:
                continue
            entry = single.pop(video_id, None)
            if entry is not None:
                if entry[0] == source:  # the same source twice: one contribution, summed
                    single[video_id] = (source, entry[1] + value)
                else:
                    several[video_id] = {entry[0]: entry[1], source: value}
                continue
            bucket = several.get(video_id)
            if bucket is None:
                single[video_id] = (source, value)
            else:
                bucket[source] = bucket.get(source, 0.0) + value

    add_all(_PERSONAL, _by_rank(precomputed, w.precomputed))
    anchors = list(dict.fromkeys(recent))[: w.anchors]
    for position, anchor in enumerate(anchors):
        neighbours = similar.get(anchor) or ()
        best = max((s for _, s in neighbours), default=0.0)
        if best <= 0:
            continue
        decay = w.realtime * w.recency_decay**position
        add_all(anchor, [(video_id, decay * sim / best) for video_id, sim in neighbours])
    add_all(_POPULAR, _by_rank(popular, w.popular))

    # best total first, ties by video id: the k smallest (-total, id) pairs (a heap: no full sort)
    candidates = [(-value, video_id) for video_id, (_source, value) in single.items()]
    candidates += [(-sum(bucket.values()), video_id) for video_id, bucket in several.items()]
    ranked = heapq.nsmallest(k, candidates)
    out = []
    for negative, video_id in ranked:
        entry = single.get(video_id)
        source = entry[0] if entry is not None else max((v, s) for s, v in several[video_id].items())[1]
        reason = (
            REASON_PERSONAL
            if source == _PERSONAL
            else REASON_POPULAR
            if source == _POPULAR
            else because(source)
        )
        out.append(ScoredItem(video_id, round(-negative, 4), reason))
    return out
