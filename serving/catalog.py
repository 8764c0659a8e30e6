"""Video titles for lists (trending, the dashboard's top videos), cached briefly in the process.

Titles come from the catalog hashes the Dagster ``video_catalog`` asset writes
(``Keyspace.video_metadata``); one pipeline fetches the misses of a list, and a title (or its absence)
is kept for ``ttl_s`` so a dashboard refreshing four times a second does not ask Redis each time.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Iterable

from streaming.keyspace import Keyspace
from streaming.redis_conn import Family, RedisRouter


class TitleCache:
    def __init__(
        self, router: RedisRouter, keyspace: Keyspace, ttl_s: float = 60.0, size: int = 10_000
    ) -> None:
        self.router = router
        self.keyspace = keyspace
        self.ttl_s = ttl_s
        self.size = size
        self._entries: OrderedDict[str, tuple[float, str | None]] = OrderedDict()
        self._lock = threading.Lock()

    def cached(self, video_ids: Iterable[str]) -> tuple[dict[str, str | None], list[str]]:
        """Titles known and fresh, and the ids still to fetch."""
        now = time.monotonic()
        found: dict[str, str | None] = {}
        missing: list[str] = []
        with self._lock:
            for video_id in dict.fromkeys(video_ids):
                entry = self._entries.get(video_id)
                if entry is not None and entry[0] > now:
                    found[video_id] = entry[1]
                else:
                    missing.append(video_id)
        return found, missing

    def fetch(self, video_ids: list[str]) -> dict[str, str | None]:
        """One pipeline of HGET title for ``video_ids`` (blocking: call it from a worker thread)."""
        if not video_ids:
            return {}
        pipe = self.router.client(Family.VIDEOS).pipeline(transaction=False)
        for video_id in video_ids:
            pipe.hget(self.keyspace.video_metadata(video_id), "title")
        titles = {
            v: (str(t) if t is not None else None) for v, t in zip(video_ids, pipe.execute(), strict=True)
        }
        expires = time.monotonic() + self.ttl_s
        with self._lock:
            for video_id, title in titles.items():
                self._entries[video_id] = (expires, title)
                self._entries.move_to_end(video_id)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)
        return titles

    def titles(self, video_ids: Iterable[str]) -> dict[str, str | None]:
        found, missing = self.cached(video_ids)
        found.update(self.fetch(missing))
        return found
