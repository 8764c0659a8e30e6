"""Versioned recommendation tables in Redis: write a whole version, then switch one pointer.

Publishing never touches the lists a reader may be using. A new version's lists go under new keys
(``{user:ID}:recs:<version>``, ``{video:ID}:similar:<version>``, ``{recs}:popular:<version>``), each
with the version TTL, in pipelines of ``chunk`` commands; only when every list is written is the
version's meta marked ``complete`` and the pointer switched by one Lua script in the ``{recs}`` slot:
previous := current, current := new. A reader resolves the pointer once per request and reads only that
version's keys, so it sees the old version or the new one, never a mixture, on a single Redis or a
Cluster alike (the pointer, the previous pointer, the version set and the meta hashes share one slot).

Older versions are never deleted by hand: they expire ``ttl_s`` after they were written, which keeps
the previous version for ``clickpulse recs rollback`` as long as retraining runs more often than the TTL.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import orjson
import redis

from streaming.keyspace import Keyspace
from streaming.recommendations.keys import check_version, recs_meta, recs_previous, video_similar
from streaming.redis_conn import RedisClient

logger = logging.getLogger(__name__)

Items = Sequence[tuple[str, float]]
STATUS_WRITING: Final = "writing"
STATUS_COMPLETE: Final = "complete"

_SWITCH: Final = """
-- KEYS: current, previous, versions, meta(new). ARGV: version, now_ms, forget_before_ms.
if redis.call('HGET', KEYS[4], 'status') ~= 'complete' then
  return redis.error_reply('INCOMPLETE version ' .. ARGV[1] .. ' is not completely written')
end
local old = redis.call('GET', KEYS[1])
if old == ARGV[1] then
  return old
end
if old then
  redis.call('SET', KEYS[2], old)
end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', '(' .. ARGV[3])
redis.call('HSET', KEYS[4], 'published_at_ms', ARGV[2])
return old or ''
"""

_ROLLBACK: Final = """
-- KEYS: current, previous, meta(target), meta(new previous), meta(from).
-- ARGV: expected current, target, new previous ('' for none), now_ms.
if (redis.call('GET', KEYS[1]) or '') ~= ARGV[1] then
  return redis.error_reply('CONCURRENT the pointer changed during the rollback; run it again')
end
if redis.call('HGET', KEYS[3], 'status') ~= 'complete' then
  return redis.error_reply('EXPIRED version ' .. ARGV[2] .. ' has expired')
end
redis.call('SET', KEYS[1], ARGV[2])
if ARGV[3] ~= '' and redis.call('HGET', KEYS[4], 'status') == 'complete' then
  redis.call('SET', KEYS[2], ARGV[3])
else
  redis.call('DEL', KEYS[2])
end
if ARGV[1] ~= '' then
  redis.call('HSET', KEYS[5], 'rolled_back_at_ms', ARGV[4])
end
return ARGV[2]
"""


class NoPreviousVersionError(RuntimeError):
    """There is no earlier version to roll back to (never published twice, or it expired)."""


@dataclass(frozen=True, slots=True)
class Pointer:
    current: str | None
    previous: str | None


@dataclass(frozen=True, slots=True)
class PublishReport:
    version: str
    previous: str | None
    users: int
    videos: int
    popular: int
    seconds: float


@dataclass(frozen=True, slots=True)
class VersionInfo:
    version: str
    published_at_ms: int
    meta: dict[str, str]
    ttl_s: int  # -2 when expired


def encode_list(version: str, items: Items) -> bytes:
    """A stored list: ``{"v": version, "items": [[video_id, score], ...]}``; the tag lets readers and tests
    check that a list belongs to the version they resolved."""
    return orjson.dumps({"v": version, "items": [[v, s] for v, s in items]})


def decode_list(raw: Any) -> tuple[str, list[tuple[str, float]]] | None:
    if raw is None:
        return None
    doc = orjson.loads(raw)  # written by encode_list: ids are strings and scores numbers already
    return str(doc["v"]), [(v, s) for v, s in doc["items"]]


def as_text(value: Any) -> str | None:
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)


class RecsStore:
    """Publishes, switches and rolls back versions on the client of the ``recs`` family."""

    def __init__(
        self, client: RedisClient, keyspace: Keyspace, *, ttl_s: int = 72 * 3600, chunk: int = 2000
    ) -> None:
        self.client = client
        self.keyspace = keyspace
        self.ttl_s = ttl_s
        self.chunk = chunk
        self._switch = client.register_script(_SWITCH)
        self._rollback = client.register_script(_ROLLBACK)

    # Keys.
    def _pointer_keys(self) -> tuple[str, str]:
        return self.keyspace.recs_current(), recs_previous(self.keyspace)

    def pointer(self) -> Pointer:
        """The served and the previous version, read together (one slot, one MGET)."""
        current, previous = self.client.mget(list(self._pointer_keys()))
        return Pointer(as_text(current), as_text(previous))

    # Publishing.
    def _write(self, commands: Iterable[tuple[str, bytes]]) -> int:
        pipe = self.client.pipeline(transaction=False)
        pending = written = 0
        for key, value in commands:
            pipe.set(key, value, ex=self.ttl_s)
            pending += 1
            if pending >= self.chunk:
                pipe.execute()
                written += pending
                pending = 0
        if pending:
            pipe.execute()
            written += pending
        return written

    def publish(
        self,
        version: str,
        user_lists: Iterable[tuple[str, Items]],
        similar_lists: Iterable[tuple[str, Items]],
        popular: Items,
        meta: Mapping[str, Any] | None = None,
    ) -> PublishReport:
        """Write every list of ``version``, then make it current; the old current becomes previous."""
        check_version(version)
        began = time.perf_counter()
        ks = self.keyspace
        meta_key = recs_meta(ks, version)
        if self.client.hget(meta_key, "status") is not None:
            raise ValueError(f"version {version} was already published; train again for a new version")
        fields: dict[Any, Any] = {str(k): str(v) for k, v in (meta or {}).items()}
        self.client.hset(meta_key, mapping={**fields, "status": STATUS_WRITING})
        self.client.expire(meta_key, self.ttl_s)

        users = self._write(
            (ks.user_recommendations(user_id, version), encode_list(version, items))
            for user_id, items in user_lists
        )
        videos = self._write(
            (video_similar(ks, video_id, version), encode_list(version, items))
            for video_id, items in similar_lists
        )
        self._write([(ks.recs_popular(version), encode_list(version, popular))])
        self.client.hset(
            meta_key,
            mapping={"status": STATUS_COMPLETE, "users": users, "videos": videos, "popular": len(popular)},
        )
        now_ms = int(time.time() * 1000)
        current, previous = self._pointer_keys()
        old = self._switch(
            keys=[current, previous, ks.recs_versions(), meta_key],
            args=[version, now_ms, now_ms - self.ttl_s * 1000],
        )
        report = PublishReport(
            version=version,
            previous=as_text(old) or None,
            users=users,
            videos=videos,
            popular=len(popular),
            seconds=time.perf_counter() - began,
        )
        logger.info(
            "published %s (%d users, %d videos) in %.1fs; previous %s",
            version,
            users,
            videos,
            report.seconds,
            report.previous,
        )
        return report

    # Rollback and status.
    def versions(self) -> list[VersionInfo]:
        """Published versions, newest first, with their meta and remaining TTL."""
        ks = self.keyspace
        entries: list[tuple[Any, float]] = list(
            self.client.zrevrange(ks.recs_versions(), 0, -1, withscores=True)  # type: ignore[arg-type]
        )
        pipe = self.client.pipeline(transaction=False)
        for member, _ in entries:
            pipe.hgetall(recs_meta(ks, as_text(member) or ""))
            pipe.ttl(recs_meta(ks, as_text(member) or ""))
        replies = pipe.execute() if entries else []
        out = []
        for i, (member, score) in enumerate(entries):
            meta = {str(as_text(k)): str(as_text(v)) for k, v in (replies[2 * i] or {}).items()}
            out.append(VersionInfo(as_text(member) or "", int(score), meta, int(replies[2 * i + 1])))
        return out

    def rollback(self) -> tuple[str, str]:
        """Serve the previous version again; returns (from, to). The version before the restored one (if
        it still exists) becomes the new previous, so rollbacks can be repeated."""
        pointer = self.pointer()
        if pointer.previous is None:
            raise NoPreviousVersionError(
                "no previous recommendations version to roll back to"
                + (f" (current: {pointer.current})" if pointer.current else " (nothing published yet)")
            )
        target = pointer.previous
        complete = {v.version: v for v in self.versions() if v.meta.get("status") == STATUS_COMPLETE}
        target_at = complete[target].published_at_ms if target in complete else None
        older = [
            v.version
            for v in complete.values()
            if target_at is not None and v.published_at_ms < target_at and v.version != pointer.current
        ]
        new_previous = max(older, key=lambda name: complete[name].published_at_ms) if older else ""
        ks = self.keyspace
        current_key, previous_key = self._pointer_keys()
        try:
            self._rollback(
                keys=[
                    current_key,
                    previous_key,
                    recs_meta(ks, target),
                    recs_meta(ks, new_previous or target),
                    recs_meta(ks, pointer.current or target),
                ],
                args=[pointer.current or "", target, new_previous, int(time.time() * 1000)],
            )
        except redis.ResponseError as exc:
            if "EXPIRED" in str(exc):
                raise NoPreviousVersionError(
                    f"the previous version {target} has expired (versions live {self.ttl_s}s); "
                    "nothing to roll back to"
                ) from exc
            raise
        logger.info("rolled back recommendations from %s to %s", pointer.current, target)
        return pointer.current or "", target
