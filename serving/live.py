"""The live feed: one Redis Pub/Sub connection per process, fanned out to every open SSE stream.

A connection per browser tab would not scale (each SUBSCRIBE holds a Redis connection), so ``LiveHub``
subscribes once per channel that has at least one listener and copies each message into the listeners'
bounded queues. A slow client loses its oldest messages (counted in ``clickpulse_api_live_dropped``);
snapshots carry totals, so the next one repairs the view. The hub reconnects with backoff when Redis goes
away; SSE clients keep their stream and see heartbeats meanwhile.

Only the hub's own task touches the Pub/Sub object: subscribers register in a dictionary and the task
applies subscription changes between reads, so SUBSCRIBE and reads never race on one connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from serving.metrics import ApiMetrics

logger = logging.getLogger(__name__)

READ_TIMEOUT_S = 0.1
MAX_BACKOFF_S = 5.0
QUEUE_SIZE = 64

Transform = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class LiveMessage:
    """One message ready for the wire."""

    channel: str
    data: bytes

    def encode(self) -> bytes:
        return sse_frame(self.data)


def sse_frame(data: bytes) -> bytes:
    """One unnamed SSE event (``EventSource.onmessage`` sees every one; the JSON ``type`` says what it is).

    orjson output never contains a line break, so a single ``data:`` line carries the whole message.
    """
    return b"data: " + data + b"\n\n"


def sse_event(payload: Any) -> bytes:
    return sse_frame(orjson.dumps(payload))


def channel_kind(channel: str) -> str:
    """``global``, ``events`` or ``user`` for metric labels (never the user id)."""
    if channel.endswith("live:global"):
        return "global"
    if ":live:user:" in channel or channel.startswith("live:user:"):
        return "user"
    return "events"


class LiveHub:
    """Shared subscriber: ``async with hub.subscribe(channels) as queue`` yields ``LiveMessage``s."""

    def __init__(
        self,
        client: aioredis.Redis,
        metrics: ApiMetrics,
        *,
        transform: Transform | None = None,
        queue_size: int = QUEUE_SIZE,
    ) -> None:
        self.client = client
        self.metrics = metrics
        self.transform = transform
        self.queue_size = queue_size
        self._listeners: dict[str, set[asyncio.Queue[LiveMessage]]] = {}
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()
        self._subscribed: frozenset[str] = frozenset()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="clickpulse-live-hub")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    @contextlib.asynccontextmanager
    async def subscribe(self, channels: Sequence[str]) -> AsyncIterator[asyncio.Queue[LiveMessage]]:
        """Register a queue on ``channels``; returns once Redis confirmed the subscription (or after 2 s)."""
        queue: asyncio.Queue[LiveMessage] = asyncio.Queue(self.queue_size)
        kind = channel_kind(channels[0]) if channels else "none"
        for channel in channels:
            self._listeners.setdefault(channel, set()).add(queue)
        self.metrics.live_subscribers.labels(kind).inc()
        self._changed.set()
        try:
            await self._wait_subscribed(channels)
            yield queue
        finally:
            for channel in channels:
                listeners = self._listeners.get(channel)
                if listeners is not None:
                    listeners.discard(queue)
                    if not listeners:
                        del self._listeners[channel]
            self.metrics.live_subscribers.labels(kind).dec()
            self._changed.set()

    async def _wait_subscribed(self, channels: Sequence[str], timeout_s: float = 2.0) -> None:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while not all(c in self._subscribed for c in channels):
            if asyncio.get_running_loop().time() > deadline:
                logger.warning("live feed: subscription to %s not confirmed yet", list(channels))
                return
            await asyncio.sleep(0.01)

    async def _run(self) -> None:
        backoff = 0.1
        while True:
            pubsub = self.client.pubsub(ignore_subscribe_messages=True)
            subscribed: set[str] = set()
            try:
                while True:
                    wanted = {c for c, listeners in self._listeners.items() if listeners}
                    if wanted - subscribed:
                        await pubsub.subscribe(*(wanted - subscribed))
                        subscribed |= wanted
                    if subscribed - wanted:
                        await pubsub.unsubscribe(*(subscribed - wanted))
                        subscribed &= wanted
                    self._subscribed = frozenset(subscribed)
                    self.connected.set()
                    if not subscribed:
                        self._changed.clear()
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(self._changed.wait(), 1.0)
                        continue
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=READ_TIMEOUT_S)
                    backoff = 0.1
                    if message is not None and message.get("type") == "message":
                        await self._dispatch(str(message["channel"]), message["data"])
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                self.connected.clear()
                self._subscribed = frozenset()
                logger.warning("live feed: Redis Pub/Sub failed (%s); reconnecting in %.1fs", exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(MAX_BACKOFF_S, backoff * 2)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

    async def _dispatch(self, channel: str, raw: Any) -> None:
        self.metrics.live_messages.labels(channel_kind(channel)).inc()
        listeners = self._listeners.get(channel)
        if not listeners:
            return
        try:
            payload = orjson.loads(raw)
        except orjson.JSONDecodeError:
            payload = {
                "type": "message",
                "raw": raw if isinstance(raw, str) else bytes(raw).decode("replace"),
            }
        if not isinstance(payload, dict):
            payload = {"type": "message", "data": payload}
        if self.transform is not None:
            try:
                payload = await self.transform(channel, payload)
            except Exception:
                logger.exception("live feed: enriching a message from %s failed", channel)
        message = LiveMessage(channel, orjson.dumps(payload))
        for queue in list(listeners):
            if queue.full():
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()
                self.metrics.live_dropped.inc()
            queue.put_nowait(message)
