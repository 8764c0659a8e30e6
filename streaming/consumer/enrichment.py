"""User attributes for enrichment: one Redis pipeline per batch for the users not in a small LRU.

The attributes (country, subscription tier, language) are written by the Dagster ``user_profiles``
asset and change rarely, so a bounded in-process cache with a short TTL saves most look-ups while a
change still reaches the enriched stream within ``enrichment_cache_ttl_s``.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from streaming.keyspace import USER_ATTRIBUTE_FIELDS, Keyspace
from streaming.redis_conn import RedisClient

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class UserAttributes:
    country: str | None = None
    subscription_tier: str | None = None
    language: str | None = None

    def enrichment_fields(self) -> dict[str, Any]:
        """The fields added to each event in ``clicks.enriched``."""
        return {
            "user_country": self.country,
            "user_tier": self.subscription_tier,
            "user_language": self.language,
        }


UNKNOWN = UserAttributes()


class UserAttributesCache:
    """A least-recently-used cache with expiry in front of the ``{user:ID}:attrs`` hashes."""

    def __init__(self, client: RedisClient, keyspace: Keyspace, max_size: int, ttl_s: float) -> None:
        self.client = client
        self.keyspace = keyspace
        self.max_size = max_size
        self.ttl_s = ttl_s
        self._entries: OrderedDict[str, tuple[float, UserAttributes]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def lookup(self, user_ids: Iterable[str]) -> dict[str, UserAttributes]:
        """Attributes of every user (``UNKNOWN`` when Redis has none); one pipeline for the misses."""
        found, missing = self.cached(user_ids)
        if not missing:
            return found
        pipe = self.client.pipeline(transaction=False)
        for command in self.reads(missing):
            pipe.execute_command(*command)
        return self.fill(found, missing, pipe.execute())

    def cached(self, user_ids: Iterable[str]) -> tuple[dict[str, UserAttributes], list[str]]:
        """The users the cache holds, and the others (to read with ``reads``, then ``fill``)."""
        now = time.monotonic()
        found: dict[str, UserAttributes] = {}
        missing: list[str] = []
        for user_id in dict.fromkeys(user_ids):
            entry = self._entries.get(user_id)
            if entry is not None and entry[0] > now:
                self._entries.move_to_end(user_id)
                found[user_id] = entry[1]
                self.hits += 1
            else:
                missing.append(user_id)
        self.misses += len(missing)
        return found, missing

    def reads(self, missing: list[str]) -> list[tuple[str, ...]]:
        """One HMGET per user (the consumer sends them in the pipeline of its Lua calls)."""
        key = self.keyspace.user_attributes
        return [("HMGET", key(user_id), *USER_ATTRIBUTE_FIELDS) for user_id in missing]

    def fill(
        self, found: dict[str, UserAttributes], missing: list[str], replies: list[Any]
    ) -> dict[str, UserAttributes]:
        """``found`` completed with the replies of ``reads(missing)``, which the cache keeps."""
        expires = time.monotonic() + self.ttl_s
        for user_id, values in zip(missing, replies, strict=True):
            attrs = UserAttributes(*values) if any(v is not None for v in values) else UNKNOWN
            found[user_id] = attrs
            if self.max_size > 0:
                self._entries[user_id] = (expires, attrs)
                self._entries.move_to_end(user_id)
        while len(self._entries) > self.max_size:
            self._entries.popitem(last=False)
        return found
