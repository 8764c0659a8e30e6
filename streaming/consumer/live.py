"""Live updates on Redis Pub/Sub: throttled snapshots and per-user click notifications.

Channels (``Keyspace.channel_*``; names gain ``<CLICKPULSE_LIVE_CHANNEL_PREFIX>:`` when that is set):

- ``live:global``: at most one snapshot per interval (250 ms) across all consumer instances (a
  ``SET NX PX`` lock in the {global} slot picks the publisher): events/s, totals and funnel, CTR by
  button / surface / slot, top trending videos, consumer lag per partition.
- ``live:events:<event_type>``: per instance and interval, how many events of that type it counted
  and the last few of them (a ticker for the dashboard).
- ``live:user:<user_id>``: after a batch in which the user clicked, one message listing those clicks.
  Sent by a hook (``UserClickHook``) so the recommendations service can add next-up suggestions.

Pub/Sub is fire-and-forget: a subscriber that is not connected misses messages; the numbers stay in
Redis and the next snapshot carries them.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import redis
from redis.cluster import RedisCluster

from streaming.consumer.records import CountedEvent
from streaming.event import utc_text
from streaming.keyspace import LAG_TTL_S, Keyspace, read_global
from streaming.redis_conn import RedisClient

logger = logging.getLogger(__name__)

TICKER_SIZE = 20


@dataclass(frozen=True, slots=True)
class UserClicks:
    """The clicks one user made in a batch, each counted for the first time."""

    user_id: str
    clicks: tuple[dict[str, Any], ...]


UserClickHook = Callable[[Sequence[UserClicks]], None]


def click_summary(e: CountedEvent) -> dict[str, Any]:
    ev = e.event
    return {
        "video_id": ev.video_id,
        "button_id": ev.button_id,
        "event_time": utc_text(ev.event_time),
        "surface": ev.surface,
        "playback_position_s": ev.playback_position_s,
    }


def user_clicks(applied: Mapping[str, list[CountedEvent]]) -> list[UserClicks]:
    return [
        UserClicks(user_id, tuple([click_summary(e) for e in events])) for user_id, events in applied.items()
    ]


def publishing_client(client: RedisClient) -> redis.Redis:
    """A plain client for PUBLISH: on a Cluster any node relays classic Pub/Sub to the others."""
    if isinstance(client, RedisCluster):
        return client.get_redis_connection(client.get_default_node())
    return client


# Every (channel, message) of ARGV published in one call: one command and one reply, where a pipeline
# of PUBLISH commands cost this process a command and a parsed reply per message.
_PUBLISH_ALL = """
local receivers = 0
for i = 1, #ARGV, 2 do
  receivers = receivers + redis.call('PUBLISH', ARGV[i], ARGV[i + 1])
end
return receivers
"""


class BulkPublisher:
    """Publishes many messages in one round trip (one Lua call; loaded again if Redis lost it)."""

    def __init__(self, client: redis.Redis) -> None:
        self._script = client.register_script(_PUBLISH_ALL)

    def __call__(self, messages: Sequence[tuple[str, bytes]]) -> int:
        if not messages:
            return 0
        args: list[str | bytes] = []
        for channel, message in messages:
            args += (channel, message)
        return int(self._script(keys=[], args=args))


class UserClickPublisher:
    """The default hook: one ``live:user:<id>`` message per clicking user and batch, in one call."""

    def __init__(self, client: RedisClient, keyspace: Keyspace) -> None:
        self.client = publishing_client(client)
        self.keyspace = keyspace
        self.publish = BulkPublisher(self.client)

    def __call__(self, batch: Sequence[UserClicks]) -> None:
        channel = self.keyspace.channel_user
        self.publish(
            [
                (
                    channel(item.user_id),
                    orjson.dumps({"type": "clicks", "user_id": item.user_id, "clicks": list(item.clicks)}),
                )
                for item in batch
            ]
        )


class LivePublisher:
    """Publishes snapshots and tickers at most once per ``interval_s``."""

    def __init__(self, client: RedisClient, keyspace: Keyspace, interval_s: float) -> None:
        self.client = client
        self.pub = publishing_client(client)
        self.keyspace = keyspace
        self.interval_s = interval_s
        self._last = 0.0
        self._counts: dict[str, int] = {}
        self._ticker: dict[str, deque[CountedEvent]] = {}
        self._lag: dict[str, int] = {}
        self.snapshots_published = 0

    def record(self, events: Sequence[CountedEvent]) -> None:
        for e in events:
            if not e.first:
                continue
            kind = e.event.event_type
            self._counts[kind] = self._counts.get(kind, 0) + 1
            ticker = self._ticker.get(kind)
            if ticker is None:
                ticker = self._ticker[kind] = deque(maxlen=TICKER_SIZE)
            ticker.append(e)

    def set_lag(self, lag: Mapping[str, int]) -> None:
        self._lag.update(lag)

    def maybe_publish(self, force: bool = False) -> bool:
        """Publish when the interval passed; never raises (live updates must not stop counting)."""
        now = time.monotonic()
        elapsed = now - self._last
        if not force and elapsed < self.interval_s:
            return False
        self._last = now
        try:
            self._publish(elapsed)
        except redis.RedisError as exc:
            logger.warning("live publish failed: %s", exc)
            return False
        return True

    def _publish(self, elapsed: float) -> None:
        ks = self.keyspace
        at = utc_text(datetime.now(UTC))
        pipe = self.pub.pipeline(transaction=False)
        for kind, count in self._counts.items():
            recent = [
                {
                    "video_id": e.event.video_id,
                    "user_id": e.event.user_id,
                    "button_id": e.event.button_id,
                    "surface": e.event.surface,
                    "event_time": utc_text(e.event.event_time),
                }
                for e in self._ticker.get(kind, ())
            ]
            message = {
                "type": "events",
                "at": at,
                "event_type": kind,
                "count": count,
                "per_s": count / elapsed if elapsed > 0 else None,
                "recent": recent,
            }
            pipe.publish(ks.channel_events(kind), orjson.dumps(message))
        if self._counts:
            pipe.execute()
        self._counts.clear()
        self._ticker.clear()

        if self._lag:
            lag_key = ks.consumer_lag()
            self.client.hset(lag_key, mapping=dict[Any, Any](self._lag))
            self.client.expire(lag_key, LAG_TTL_S)
        lock_ms = max(1, int(self.interval_s * 1000))
        if not self.client.set(ks.live_lock(), at, nx=True, px=lock_ms):
            return  # another consumer instance published this interval's snapshot
        snapshot = read_global(self.client, keyspace=ks)
        self.pub.publish(ks.channel_global(), orjson.dumps({"type": "snapshot", "at": at, **snapshot}))
        self.snapshots_published += 1
