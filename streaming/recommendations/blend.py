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

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, NamedTuple

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


class ScoredItem(NamedTuple):
    video_id: str
    score: float
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"video_id": self.video_id, "score": self.score, "reason": self.reason}


_RANK_SCALES: dict[tuple[int, float], list[float]] = {}


def _rank_scale(n: int, weight: float) -> list[float]:
    """``weight`` x (1 - rank / n) for rank 0..n-1: the first item ``weight``, the last ``weight / n``.
    Kept per (n, weight): lists have a handful of lengths."""
    scale = _RANK_SCALES.get((n, weight))
    if scale is None:
        if len(_RANK_SCALES) >= 4096:
            _RANK_SCALES.clear()
        scale = _RANK_SCALES[(n, weight)] = [weight * (1.0 - rank / n) for rank in range(n)]
    return scale


def _contributions(pairs: list[tuple[str, float]]) -> dict[str, float]:
    """One source's contributions by video: positive values only, a repeated video's values summed in
    order. Most lists have neither, so ``dict(pairs)`` usually is the answer."""
    out = dict(pairs)
    if len(out) == len(pairs) and (not out or min(out.values()) > 0):
        return out
    out = {}
    for video_id, value in pairs:
        if value > 0:
            out[video_id] = out.get(video_id, 0.0) + value
    return out


def _by_rank(items: Sequence[tuple[str, float]], weight: float) -> dict[str, float]:
    if not items or weight <= 0:
        return {}
    scale = _rank_scale(len(items), weight)
    return _contributions(list(zip([video_id for video_id, _ in items], scale, strict=True)))


def relative(neighbours: Sequence[tuple[str, float]]) -> dict[str, float]:
    """An anchor's neighbours scaled to its best one: {video: cosine / best cosine}, positive values only,
    a repeated video's values summed. ``blend`` takes this form too (a caller that keeps lists can keep
    them scaled, once per list instead of once per request)."""
    best = max((s for _, s in neighbours), default=0.0)
    if best <= 0:
        return {}
    return _contributions([(video_id, sim / best) for video_id, sim in neighbours])


def blend(
    *,
    k: int,
    precomputed: Sequence[tuple[str, float]] = (),
    recent: Sequence[str] = (),
    similar: Mapping[str, Sequence[tuple[str, float]] | dict[str, float]] | None = None,
    popular: Sequence[tuple[str, float]] = (),
    watched: Collection[str] = (),
    weights: BlendWeights | None = None,
) -> list[ScoredItem]:
    """The top ``k`` videos for one user. ``recent`` is newest first; ``similar`` maps a video to its
    neighbours (video, cosine) best first, or to ``relative(neighbours)``."""
    w = weights or BlendWeights()
    similar = similar or {}
    # Each source: (name, {video: value}, factor); a contribution is factor x value. In the order the
    # total sums them in; the reason's tie-break compares the names (the fixed two sort before any video).
    sources: list[tuple[str, dict[str, float], float]] = [
        (_PERSONAL, _by_rank(precomputed, w.precomputed), 1.0)
    ]
    for position, anchor in enumerate(list(dict.fromkeys(recent))[: w.anchors]):
        neighbours = similar.get(anchor) or {}
        scaled = neighbours if isinstance(neighbours, dict) else relative(neighbours)
        decay = w.realtime * w.recency_decay**position
        if scaled and decay > 0:
            sources.append((anchor, scaled, decay))
    sources.append((_POPULAR, _by_rank(popular, w.popular), 1.0))

    totals = dict(sources[0][1])  # x == 0.0 + x: the same sums as starting from zero
    for _name, values, factor in sources[1:]:
        get = totals.get
        if factor == 1.0:
            for video_id, value in values.items():
                totals[video_id] = get(video_id, 0.0) + value
        else:
            for video_id, value in values.items():
                totals[video_id] = get(video_id, 0.0) + factor * value
    for video_id in (*watched, *recent):
        totals.pop(video_id, None)

    # best total first, ties by video id; only the totals that can be in the top k are paired and sorted
    if len(totals) > k:
        threshold = sorted(totals.values(), reverse=True)[k - 1]
        ranked = sorted([(-total, video_id) for video_id, total in totals.items() if total >= threshold])[:k]
    else:
        ranked = sorted([(-total, video_id) for video_id, total in totals.items()])
    out = []
    for negative, video_id in ranked:
        largest: tuple[float, str] = (0.0, "")  # (value, source): the largest contribution
        for name, values, factor in sources:
            found = values.get(video_id)
            if found is not None and (factor * found, name) > largest:
                largest = (factor * found, name)
        source = largest[1]
        reason = (
            REASON_PERSONAL
            if source == _PERSONAL
            else REASON_POPULAR
            if source == _POPULAR
            else because(source)
        )
        out.append(ScoredItem(video_id, round(-negative, 4), reason))
    return out
