"""What one API process holds: settings, the Redis pools (created once at start-up), the live hub."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import redis.asyncio as aioredis
from fastapi import Request
from starlette.concurrency import run_in_threadpool

from clickpulse.settings import Settings
from serving.catalog import TitleCache
from serving.live import LiveHub
from serving.metrics import ApiMetrics
from serving.stats_reader import StatsCache
from serving.user_ids import UserIdMapper
from streaming.keyspace import Keyspace
from streaming.multiplexed_redis import AsyncReads
from streaming.redis_conn import Family, RedisRouter

T = TypeVar("T")


@dataclass
class ApiState:
    settings: Settings
    keyspace: Keyspace
    metrics: ApiMetrics
    router: RedisRouter | None = None
    pubsub_client: aioredis.Redis | None = None
    hub: LiveHub | None = None
    titles: TitleCache | None = None
    async_clients: dict[Family, AsyncReads] = field(default_factory=dict)
    stats_reader: StatsCache | None = None
    user_ids: UserIdMapper = field(default_factory=UserIdMapper)
    clock: Callable[[], float] = field(default=time.time)

    def redis(self) -> RedisRouter:
        if self.router is None:
            raise RuntimeError("the API's Redis pools are created by the app's lifespan (start-up)")
        return self.router

    def live(self) -> LiveHub:
        if self.hub is None:
            raise RuntimeError("the live hub is created by the app's lifespan (start-up)")
        return self.hub

    def stats(self) -> StatsCache:
        if self.stats_reader is None:
            raise RuntimeError("the stats reader is created by the app's lifespan (start-up)")
        return self.stats_reader

    def title_cache(self) -> TitleCache:
        if self.titles is None:
            raise RuntimeError("the title cache is created by the app's lifespan (start-up)")
        return self.titles

    def now(self) -> float:
        return self.clock()

    @staticmethod
    def as_datetime(epoch_s: float) -> datetime:
        return datetime.fromtimestamp(epoch_s, UTC)

    async def titles_for(self, video_ids: list[str]) -> dict[str, str | None]:
        cache = self.title_cache()
        found, missing = cache.cached(video_ids)
        if missing:
            found.update(await run_in_threadpool(cache.fetch, missing))
        return found


async def get_state(request: Request) -> ApiState:
    """FastAPI dependency. ``async`` on purpose: FastAPI runs a plain ``def`` dependency in the thread
    pool, a hop that cost more CPU than reading a cached answer."""
    state: ApiState = request.app.state.api
    return state


async def blocking(func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a (sync) keyspace reader in the thread pool so the event loop keeps serving SSE streams."""
    return await run_in_threadpool(func, *args, **kwargs)
