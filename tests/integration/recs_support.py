"""Helpers for the recommendation tests: private key prefixes, synthetic lists, a reader that checks
every list it reads belongs to the version it resolved."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI

from clickpulse.settings import Settings
from streaming.keyspace import Keyspace
from streaming.recommendations.keys import video_similar
from streaming.recommendations.store import RecsStore, decode_list
from streaming.redis_conn import RedisClient, RedisRouter

Lists = list[tuple[str, list[tuple[str, float]]]]


def api_app(settings: Settings, router: RedisRouter) -> FastAPI:
    """The real API app (``serving.app.create_app``, which includes the recommendations route behind its
    read-key dependency) on ``router``."""
    from serving.app import create_app

    return create_app(settings, router=router)


def delete_prefix(client: RedisClient, prefix: str) -> None:
    """Delete every key of a test's prefix, one key per command so it works across Cluster slots."""
    keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.delete(key)
    if keys:
        pipe.execute()


def synthetic(
    version: str, users: int, videos: int, seed: int, per_user: int = 10
) -> tuple[Lists, Lists, list[tuple[str, float]]]:
    """Per-user lists, per-video similar lists and a popular list, all different for every version."""
    rng = random.Random(f"{version}:{seed}")
    catalog = [f"v{i:04d}" for i in range(videos)]

    def ranked(n: int) -> list[tuple[str, float]]:
        picked = rng.sample(catalog, n)
        return [(v, round(1.0 - i / n, 4)) for i, v in enumerate(picked)]

    user_lists = [(f"u{i:05d}", ranked(per_user)) for i in range(users)]
    similar = [(v, ranked(min(5, videos))) for v in catalog]
    return user_lists, similar, ranked(min(20, videos))


@dataclass
class VersionWatcher:
    """Reads in a loop, as the API does (pointer once, then that version's lists), and records every
    inconsistency: a missing list or a list tagged with another version."""

    store: RecsStore
    users: list[str]
    videos: list[str]
    seed: int = 0
    reads: int = 0
    seen: set[str] = field(default_factory=set)
    errors: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _read_once(self, rng: random.Random) -> None:
        ks: Keyspace = self.store.keyspace
        version = self.store.pointer().current
        if version is None:
            return
        users = rng.sample(self.users, 10)
        videos = rng.sample(self.videos, 5)
        pipe = self.store.client.pipeline(transaction=False)
        for user in users:
            pipe.get(ks.user_recommendations(user, version))
        for video in videos:
            pipe.get(video_similar(ks, video, version))
        pipe.get(ks.recs_popular(version))
        replies: list[Any] = pipe.execute()
        self.reads += 1
        self.seen.add(version)
        for name, raw in zip([*users, *videos, "popular"], replies, strict=True):
            decoded = decode_list(raw)
            if decoded is None:
                self.errors.append(f"{version}: {name} missing")
            elif decoded[0] != version:
                self.errors.append(f"{version}: {name} tagged {decoded[0]}")

    def _loop(self) -> None:
        rng = random.Random(self.seed)
        while not self._stop.is_set():
            try:
                self._read_once(rng)
            except Exception as exc:  # a failing read is a finding, not a crash of the watcher
                self.errors.append(f"read failed: {exc!r}")

    def __enter__(self) -> VersionWatcher:
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)


def users_of(lists: Lists) -> Iterator[str]:
    return (user for user, _ in lists)
