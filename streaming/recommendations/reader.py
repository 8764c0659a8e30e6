"""Read what a request (or a next-up push) needs from Redis in at most two round trips, then blend.

One plan (``RecommendationReader._plan``, a generator that yields each round and receives its replies)
serves two drivers: ``recommend_many`` on the sync clients (next-up push, CLI) and ``recommend_async`` on
asyncio clients (the API, on its event loop).

Round 1: the version pointer (one MGET in the ``{recs}`` slot), each user's recent clicks (the
consumer's ``user_recent`` lists), the live trending top, and each user's list under the version the
last pointer seen would serve. Round 2, under the version resolved in round 1, whatever is still
missing: the user's list if the pointer moved, the similar-items lists of their recent clicks and the
version's popular list when not already held (``SharedLists``); skipped when nothing is. A version is
resolved once per call and every list is read under it, so a response never
mixes two versions, even while a new one is being published.

A/B split: with ``ab_share`` > 0, a stable hash of the user id sends that share of users to the previous
version (when one exists), so two versions are served side by side and ``model_version`` tells them apart
in the impressions and clicks the player reports.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar, cast

from clickpulse.settings import Settings
from streaming.keyspace import Keyspace
from streaming.multiplexed_redis import AsyncReads
from streaming.recommendations.blend import BlendWeights, ScoredItem, blend, relative
from streaming.recommendations.keys import recs_previous, video_similar
from streaming.recommendations.store import Pointer, as_text, decode_list
from streaming.redis_conn import Family, RedisClient, RedisRouter

logger = logging.getLogger(__name__)

_HASH_SPACE: Final = float(2**64)
ARM_CURRENT: Final = "current"
ARM_PREVIOUS: Final = "previous"


def ab_bucket(user_id: str) -> float:
    """A user's stable position in [0, 1): the same on every process and every day."""
    digest = hashlib.blake2b(user_id.encode(), digest_size=8, person=b"cp-recs-ab").digest()
    return int.from_bytes(digest, "big") / _HASH_SPACE


def serve_version(user_id: str, pointer: Pointer, ab_share: float) -> tuple[str | None, str]:
    """(version, arm) for a user: the previous version for the ``ab_share`` of users the hash selects."""
    if ab_share > 0 and pointer.previous and ab_bucket(user_id) < ab_share:
        return pointer.previous, ARM_PREVIOUS
    return pointer.current, ARM_CURRENT


@dataclass(frozen=True)
class Recommendations:
    user_id: str
    model_version: str | None
    items: list[ScoredItem]
    arm: str = ARM_CURRENT
    sources: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            "model_version": self.model_version,
            "items": [item.as_dict() for item in self.items],
        }


class _Round:
    """Raw commands for several families, sent as one pipeline per client, replies in the order added."""

    def __init__(self) -> None:
        self._commands: list[tuple[Family, tuple[Any, ...]]] = []

    def add(self, family: Family, *command: Any) -> int:
        """Queue ``command`` (name and arguments) on the family's client; returns the reply index."""
        self._commands.append((family, command))
        return len(self._commands) - 1

    def _by_client(self, client_of: Callable[[Family], Any]) -> list[tuple[Any, list[int]]]:
        groups: dict[int, tuple[Any, list[int]]] = {}
        for index, (family, _command) in enumerate(self._commands):
            client = client_of(family)
            entry = groups.get(id(client))
            if entry is None:
                entry = groups[id(client)] = (client, [])
            entry[1].append(index)
        return list(groups.values())

    def _ordered(self, groups: list[tuple[Any, list[int]]], results: list[list[Any]]) -> list[Any]:
        if len(groups) == 1:
            return results[0]
        replies: list[Any] = [None] * len(self._commands)
        for (_client, slots), result in zip(groups, results, strict=True):
            for slot, reply in zip(slots, result, strict=True):
                replies[slot] = reply
        return replies

    def execute(self, router: RedisRouter) -> list[Any]:
        groups = self._by_client(router.client)
        results = []
        for client, slots in groups:
            pipe = client.pipeline(transaction=False)
            for slot in slots:
                pipe.execute_command(*self._commands[slot][1])
            results.append(pipe.execute())
        return self._ordered(groups, results)

    async def execute_async(self, clients: Mapping[Family, AsyncReads]) -> list[Any]:
        """The same on the API's asyncio clients (``streaming.multiplexed_redis``), one per family; the
        rounds of several clients run concurrently."""
        groups = self._by_client(clients.__getitem__)
        rounds = [client.execute([self._commands[i][1] for i in slots]) for client, slots in groups]
        if len(rounds) == 1:
            return self._ordered(groups, [await rounds[0]])
        return self._ordered(groups, list(await asyncio.gather(*rounds)))


Plan = Generator[_Round, list[Any], list["Recommendations"]]

SHARED_LISTS_MAX: Final = 20_000


Shared = list[tuple[str, float]] | dict[str, float]
_S = TypeVar("_S", list[tuple[str, float]], dict[str, float])


class SharedLists:
    """Decoded popular lists and scaled neighbour lists (``blend.relative``) by Redis key (the key names
    the version, whose lists never change). Bounded: emptied when full, which costs a round of re-reads
    and needs no lock (the API's event loop and a thread-pool reader may share it)."""

    def __init__(self, max_entries: int = SHARED_LISTS_MAX) -> None:
        self.max_entries = max_entries
        self._lists: dict[str, Shared] = {}

    def get(self, key: str) -> Shared | None:
        return self._lists.get(key)

    def put(self, key: str, items: Shared) -> None:
        if len(self._lists) >= self.max_entries:
            self._lists.clear()
        self._lists[key] = items


class RecommendationReader:
    """Serving-side reads for the API and the next-up push; one instance per process."""

    def __init__(
        self,
        router: RedisRouter,
        keyspace: Keyspace,
        *,
        weights: BlendWeights | None = None,
        ab_share: float = 0.0,
        trending_n: int = 50,
    ) -> None:
        self.router = router
        self.keyspace = keyspace
        self.weights = weights or BlendWeights()
        self.ab_share = ab_share
        self.trending_n = trending_n
        self.shared_lists = SharedLists()
        self._pointer: Pointer | None = None  # the last one read: round 1 reads each user's list under it
        self._last_trending: tuple[list[Any], list[tuple[str, float]]] = ([], [])

    @classmethod
    def from_settings(cls, router: RedisRouter, settings: Settings) -> RecommendationReader:
        return cls(
            router,
            Keyspace.from_settings(settings),
            weights=BlendWeights(
                realtime=settings.recs_realtime_weight, anchors=settings.recs_realtime_recent
            ),
            ab_share=settings.recs_ab_share,
        )

    @classmethod
    def single(cls, client: RedisClient, keyspace: Keyspace, **kwargs: Any) -> RecommendationReader:
        return cls(RedisRouter.single(client), keyspace, **kwargs)

    def _trending(self, members: list[Any] | None) -> list[tuple[str, float]]:
        """The trending top as the blend's popular source. The blend ranks a popular list by position only,
        so the members in order are enough (no scores, no decay scale); the list is reused while the top
        is unchanged (it changes with the consumer's batches, not with every request)."""
        raw = members or []
        last_raw, last = self._last_trending
        if raw == last_raw:
            return last
        ranked = [(str(as_text(m)), 0.0) for m in raw]
        self._last_trending = (raw, ranked)
        return ranked

    def recommend(self, user_id: str, k: int) -> Recommendations:
        return self.recommend_many([user_id], k)[0]

    def recommend_many(
        self, user_ids: Sequence[str], k: int, *, just_clicked: Mapping[str, Sequence[str]] | None = None
    ) -> list[Recommendations]:
        """Blended top ``k`` for each user. ``just_clicked`` (newest first) is put ahead of the stored recent
        clicks, for a push that should not depend on the profile write having landed."""
        plan = self._plan(user_ids, k, just_clicked or {})
        step = next(plan)
        while True:
            try:
                step = plan.send(step.execute(self.router))
            except StopIteration as done:
                return done.value

    async def recommend_async(
        self, user_id: str, k: int, clients: Mapping[Family, AsyncReads]
    ) -> Recommendations:
        """``recommend`` on asyncio clients (``streaming.multiplexed_redis``), one per family: the API's event
        loop, no thread-pool hop."""
        plan = self._plan([user_id], k, {})
        step = next(plan)
        while True:
            try:
                step = plan.send(await step.execute_async(clients))
            except StopIteration as done:
                return done.value[0]

    def _plan(self, user_ids: Sequence[str], k: int, just_clicked: Mapping[str, Sequence[str]]) -> Plan:
        """The rounds and the blend; the caller executes each round it is given and sends the replies.

        A published version's lists never change (``RecsStore.publish`` refuses a version twice and
        switches the pointer only after writing them all), which allows two savings. Round 1 already reads
        each user's list under the version the last pointer this reader saw would serve them; when the
        pointer read in the same round still says so, that list is the one round 2 would read. Neighbour
        and popular lists, shared by every user, are kept per version (``SharedLists``: popular lists
        decoded, neighbour lists already scaled by ``blend.relative``). Round 2 reads only what is left,
        and is skipped when nothing is."""
        ks = self.keyspace
        guess = self._pointer
        first = _Round()
        # Both pointer keys share the {recs} slot: one MGET works on a Cluster too.
        pointer_at = first.add(Family.RECS, "MGET", ks.recs_current(), recs_previous(ks))
        recent_at = [first.add(Family.PROFILES, "LRANGE", ks.user_recent(u), 0, -1) for u in user_ids]
        top_at = first.add(Family.LIVE, "ZREVRANGE", ks.trending(), 0, self.trending_n - 1)
        early_at: dict[str, int] = {}  # list key -> reply index in round 1
        if guess is not None:
            for user_id in dict.fromkeys(user_ids):
                version, _arm = serve_version(user_id, guess, self.ab_share)
                if version is not None:
                    key = ks.user_recommendations(user_id, version)
                    early_at[key] = first.add(Family.RECS, "GET", key)
        replies = yield first
        current, previous = (as_text(v) for v in replies[pointer_at])
        pointer = Pointer(current, previous)
        self._pointer = pointer
        trending = self._trending(replies[top_at])

        plans = []
        for user_id, at in zip(user_ids, recent_at, strict=True):
            stored = [str(as_text(v)) for v in replies[at] or []]
            recent = list(dict.fromkeys([*just_clicked.get(user_id, ()), *stored]))
            version, arm = serve_version(user_id, pointer, self.ab_share)
            plans.append((user_id, version, arm, recent))

        second = _Round()
        late_at: dict[str, int] = {}  # list key -> reply index in round 2
        known: dict[str, Shared] = {}  # taken from the shared lists now: other requests
        shared = self.shared_lists  # may empty them while round 2 runs
        for user_id, version, _arm, recent in plans:
            if version is None:
                continue
            wanted = [ks.user_recommendations(user_id, version)]
            wanted += [video_similar(ks, anchor, version) for anchor in recent[: self.weights.anchors]]
            if not trending:
                wanted.append(ks.recs_popular(version))
            for key in wanted:
                if key in early_at or key in late_at or key in known:
                    continue
                cached = shared.get(key)
                if cached is None:
                    late_at[key] = second.add(Family.RECS, "GET", key)
                else:
                    known[key] = cached
        data = (yield second) if late_at else []

        def fetched(key: str, version: str) -> list[tuple[str, float]]:
            """A list read in round 1 or in round 2."""
            at = early_at.get(key)
            return _items(replies[at] if at is not None else data[late_at[key]], version)

        def kept(key: str, version: str, shape: Callable[[list[tuple[str, float]]], _S]) -> _S:
            """A list every user shares: as found in the shared lists while planning, or read, shaped by
            ``shape`` and shared now."""
            found = known.get(key)
            if found is not None:
                return cast(_S, found)
            value = shape(fetched(key, version))
            if value:
                shared.put(key, value)
            return value

        out = []
        for user_id, version, arm, recent in plans:
            precomputed: list[tuple[str, float]] = []
            similar: dict[str, dict[str, float]] = {}
            popular: list[tuple[str, float]] = trending
            if version is not None:
                precomputed = fetched(ks.user_recommendations(user_id, version), version)
                similar = {
                    anchor: kept(video_similar(ks, anchor, version), version, relative)
                    for anchor in recent[: self.weights.anchors]
                }
                if not popular:
                    popular = kept(ks.recs_popular(version), version, list)
            items = blend(
                k=k,
                precomputed=precomputed,
                recent=recent,
                similar=similar,
                popular=popular,
                weights=self.weights,
            )
            sources = {
                "precomputed": len(precomputed),
                "recent": len(recent),
                "neighbour_lists": sum(1 for v in similar.values() if v),
                "popular": len(popular),
            }
            out.append(Recommendations(user_id, version, items, arm, sources))
        return out


def _items(raw: Any, version: str | None) -> list[tuple[str, float]]:
    decoded = decode_list(raw)
    if decoded is None:
        return []
    tag, items = decoded
    if tag != version:  # never serve a list under another version's name
        logger.warning("list tagged %s read under version %s; ignored", tag, version)
        return []
    return items
