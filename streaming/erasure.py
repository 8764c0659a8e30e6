"""Erasing one user from Redis: every key under the user's hash tag ``{user:ID}``.

What a user leaves in Redis (the README section "Redis keyspace"): the profile (counts, button
affinities, last seen), the recent-videos list, the attributes Dagster copies from the user table, and one
recommendation list per published model version. All of them carry the user's hash tag, so they sit in
one Cluster slot. The named families are deleted by name (the versions come from the recommendations
pointer and version set); a ``SCAN`` of the user's tag on the Redis servers of the profiles and recs
families then catches anything else under it, such as lists of a version that was never switched to.

Not per user, so nothing to delete: video counters and windows (aggregates), the event_id seen-sets
(event ids and offsets only), trending, and the Pub/Sub channels (``live:user:<id>`` stores nothing).
The all-time HyperLogLog of unique users per video cannot forget one member: see the README section
"Security".
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from redis.cluster import RedisCluster

from streaming.keyspace import SUFFIXES, Keyspace, glob_escape
from streaming.recommendations.keys import recs_previous
from streaming.redis_conn import Family, RedisClient, RedisRouter

logger = logging.getLogger(__name__)

SCAN_COUNT = 1000


@dataclass(slots=True)
class RedisErasure:
    """The keys deleted, by family group (``profiles``, ``recs``)."""

    deleted: dict[str, list[str]] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(len(keys) for keys in self.deleted.values())


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _published_versions(client: RedisClient, keyspace: Keyspace) -> list[str]:
    """Every model version the recommendations store still knows: the version set and both pointers."""
    pipe = client.pipeline(transaction=False)
    pipe.zrange(keyspace.recs_versions(), 0, -1)
    pipe.mget([keyspace.recs_current(), recs_previous(keyspace)])
    versions, pointers = pipe.execute()
    found = [_text(v) for v in versions] + [_text(p) for p in pointers if p is not None]
    return list(dict.fromkeys(found))


def _scan_user_tag(client: RedisClient, keyspace: Keyspace, user_id: str) -> list[str]:
    """Keys under ``{user:ID}`` on this Redis; on a Cluster only the node that owns the tag's slot."""
    base = keyspace.user(user_id)
    match = glob_escape(base) + "*"
    if isinstance(client, RedisCluster):
        node = client.get_node_from_key(base)
        keys = client.scan_iter(match=match, count=SCAN_COUNT, target_nodes=node)
    else:
        keys = client.scan_iter(match=match, count=SCAN_COUNT)
    return [_text(k) for k in keys]


def user_key_candidates(router: RedisRouter, keyspace: Keyspace, user_id: str) -> dict[Family, list[str]]:
    """Key names that may hold the user's data (existing or not), by the family whose Redis holds them."""
    ks = keyspace
    recs_client = router.client(Family.RECS)
    candidates: dict[Family, list[str]] = {
        Family.PROFILES: [ks.user_profile(user_id), ks.user_recent(user_id), ks.user_attributes(user_id)],
        Family.RECS: [
            ks.user_recommendations(user_id, v) for v in _published_versions(recs_client, keyspace)
        ],
    }
    scanned: set[int] = set()
    for family in (Family.PROFILES, Family.RECS):
        client = router.client(family)
        if id(client) not in scanned:
            scanned.add(id(client))
            candidates[family].extend(_scan_user_tag(client, keyspace, user_id))
    return {family: list(dict.fromkeys(keys)) for family, keys in candidates.items()}


def _group(keyspace: Keyspace, user_id: str, key: str) -> str:
    """``recs`` for a recommendation list, ``profiles`` for everything else under the user's tag."""
    rest = key[len(keyspace.user(user_id)) :]
    return Family.RECS.value if rest.startswith(SUFFIXES["recs"]) else Family.PROFILES.value


def _delete(client: RedisClient, keys: Iterable[str]) -> list[str]:
    """Delete ``keys`` one command each (any Cluster slot); returns those that existed."""
    names = list(keys)
    if not names:
        return []
    pipe = client.pipeline(transaction=False)
    for key in names:
        pipe.delete(key)
    return [key for key, removed in zip(names, pipe.execute(), strict=True) if int(removed)]


def erase_user(router: RedisRouter, keyspace: Keyspace, user_id: str) -> RedisErasure:
    """Delete every Redis key of ``user_id``; running it again deletes nothing."""
    result = RedisErasure({Family.PROFILES.value: [], Family.RECS.value: []})
    for family, keys in user_key_candidates(router, keyspace, user_id).items():
        for key in _delete(router.client(family), keys):
            result.deleted[_group(keyspace, user_id, key)].append(key)
    logger.info("erased %d Redis keys of a user", result.total)
    return result
