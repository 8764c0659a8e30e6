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
        if not missing:
            return found
        self.misses += len(missing)
        pipe = self.client.pipeline(transaction=False)
        for user_id in missing:
            pipe.hmget(self.keyspace.user_attributes(user_id), USER_ATTRIBUTE_FIELDS)
        expires = now + self.ttl_s
        for user_id, values in zip(missing, pipe.execute(), strict=True):
            attrs = UserAttributes(*values) if any(v is not None for v in values) else UNKNOWN
            found[user_id] = attrs
            if self.max_size > 0:
                self._entries[user_id] = (expires, attrs)
                self._entries.move_to_end(user_id)
        while len(self._entries) > self.max_size:
            self._entries.popitem(last=False)
        return found
