"""An asyncio twin of ``streaming.keyspace.read_video_stats`` for the API's hot path.

``read_video_stats`` sends 88 commands (60 minute buckets, 24 hour buckets, HyperLogLogs) through a
sync pipeline; parsing those replies in Python, plus the thread-pool hop, made a stats request cost six
times a constant answer. This twin reads the same keys with one Lua call that sums the buckets inside
Redis and returns a handful of numbers, on the event loop.

The call declares one key, the video's tagged base key (``Keyspace.video``), and passes the suffixes
(``keyspace.SUFFIXES``) and the bucket names (``keyspace.window_buckets``, space-separated, computed
once per minute); the script appends them, as the consumer's scripts do. Packing 110 key names into
the command cost redis-py more CPU than the rest of the request (measured: README "How it reads
Redis"). Same keys, same windows, same result dictionary: the integration tests compare it with
``read_video_stats`` on every video. Every key shares the ``{video:ID}`` hash tag of the declared key,
so the call stays in one Redis Cluster slot. When the live and windows families live on different
Redis servers the call is split in two, one per server.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Final

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from streaming.keyspace import SUFFIXES, Keyspace, summarise_counters, window_buckets
from streaming.multiplexed_redis import AsyncReads, ReadScript, as_async_reads, flat_pairs

AsyncClient = AsyncReads | Redis | RedisCluster

# KEYS: the video's tagged base key.
# ARGV: has_live (0/1); the suffixes of totals, uniques, minute, hour and hour-uniques keys; the bucket
# names, space-separated: the last hour's minutes, the last 24 hours, the hours of the last hour's uniques.
# Returns {totals (flat field/value), uniques, minutes summed (flat), hours summed (flat), uniq 1h, uniq 24h}.
STATS_LUA: Final = """
local base = KEYS[1]
local has_live = ARGV[1] == '1'
local s_totals, s_uniq, s_minute, s_hour, s_uniq_hour = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local function names(joined)
  local out = {}
  for name in string.gmatch(joined, '%S+') do
    out[#out + 1] = name
  end
  return out
end
local minutes, hours, uniq_hours = names(ARGV[7]), names(ARGV[8]), names(ARGV[9])
local totals, uniques = {}, 0
if has_live then
  totals = redis.call('HGETALL', base .. s_totals)
  uniques = redis.call('PFCOUNT', base .. s_uniq)
end
local function sum(suffix, buckets)
  local acc, order = {}, {}
  for _, bucket in ipairs(buckets) do
    local flat = redis.call('HGETALL', base .. suffix .. bucket)
    for j = 1, #flat, 2 do
      local f = flat[j]
      if acc[f] == nil then
        acc[f] = 0
        order[#order + 1] = f
      end
      acc[f] = acc[f] + tonumber(flat[j + 1])
    end
  end
  local out = {}
  for _, f in ipairs(order) do
    out[#out + 1] = f
    out[#out + 1] = tostring(acc[f])
  end
  return out
end
local function pfcount(suffix, buckets)
  if #buckets == 0 then
    return 0
  end
  local keys = {}
  for k, bucket in ipairs(buckets) do
    keys[k] = base .. suffix .. bucket
  end
  return redis.call('PFCOUNT', unpack(keys))
end
return {
  totals, uniques, sum(s_minute, minutes), sum(s_hour, hours),
  pfcount(s_uniq_hour, uniq_hours), pfcount(s_uniq_hour, hours),
}
"""
_SUFFIX_ARGS: Final = tuple(SUFFIXES[name] for name in ("totals", "uniq", "minute", "hour", "uniq_hour"))


class AsyncStatsReader:
    """Holds the registered script per client; ``read(video_id, now)`` returns the stats dictionary."""

    def __init__(self, live: AsyncClient, windows: AsyncClient, keyspace: Keyspace) -> None:
        self.shared = live is windows
        self.live = as_async_reads(live)
        self.windows = self.live if self.shared else as_async_reads(windows)
        self.keyspace = keyspace
        self._script = ReadScript(STATS_LUA)
        self._buckets: tuple[int, list[str]] = (-1, [])

    def _bucket_args(self, now: float) -> list[str]:
        """The script's bucket arguments for the minute of ``now`` (the same for every video)."""
        minute = int(now // 60)
        if self._buckets[0] != minute:
            buckets = window_buckets(now)
            names = [" ".join(buckets[w]) for w in ("last_hour", "last_24h", "last_hour_uniques")]
            self._buckets = (minute, names)
        return self._buckets[1]

    async def read(self, video_id: str, now: float) -> dict[str, Any]:
        ks = self.keyspace
        bucket_args = self._bucket_args(now)
        keys = [ks.video(video_id)]
        if self.shared:
            reply = await self._script(self.windows, keys, [1, *_SUFFIX_ARGS, *bucket_args])
            totals, uniques = flat_pairs(reply[0]), int(reply[1])
        else:
            live_reply = await self.live.execute(
                [("HGETALL", ks.video_totals(video_id)), ("PFCOUNT", ks.video_uniques(video_id))]
            )
            totals, uniques = flat_pairs(live_reply[0]), int(live_reply[1])
            reply = await self._script(self.windows, keys, [0, *_SUFFIX_ARGS, *bucket_args])
        last_hour = summarise_counters(flat_pairs(reply[2]))
        last_hour["unique_users"] = int(reply[4])
        last_24h = summarise_counters(flat_pairs(reply[3]))
        last_24h["unique_users"] = int(reply[5])
        return {
            "video_id": video_id,
            **summarise_counters(totals),
            "unique_users": uniques,
            "late_events": int(totals.get("late") or 0),
            "last_hour": last_hour,
            "last_24h": last_24h,
        }


@dataclass
class StatsEntry:
    """One read of a video's stats: when it was read, the numbers, and the route's rendered answer.

    The route stores its serialised response in ``body`` (the answer depends only on ``read_at`` and
    ``data``), so a cache hit costs no validation or serialisation."""

    read_at: float
    data: dict[str, Any]
    body: bytes | None = None


class StatsCache:
    """Per-process reuse of a video's stats for ``ttl_s`` (the answer keeps the time it was read).

    A popular video asked for by many clients at once costs one Redis call per ``ttl_s`` instead of
    one per request; a second of staleness is invisible next to the consumer's batch cadence.
    Concurrent misses on one video share one Redis call. Each entry lives a random 80-100 % of ``ttl_s``:
    entries filled together (a burst of requests, a restart) would otherwise all expire together and be
    re-read in a burst as costly as the uncached endpoint (measured: the p99 of cached stats at half
    saturation, README "How it reads Redis").
    """

    def __init__(self, reader: AsyncStatsReader, ttl_s: float, size: int = 10_000) -> None:
        self.reader = reader
        self.ttl_s = ttl_s
        self.size = size
        self._entries: OrderedDict[str, tuple[float, StatsEntry]] = OrderedDict()
        self._pending: dict[str, asyncio.Future[StatsEntry]] = {}

    async def read(self, video_id: str, now: float) -> StatsEntry:
        """A fresh cached entry, else a read at ``now`` (shared with concurrent misses on the video)."""
        if self.ttl_s <= 0:
            return StatsEntry(now, await self.reader.read(video_id, now))
        entry = self._entries.get(video_id)
        mono = time.monotonic()
        if entry is not None and entry[0] > mono:
            return entry[1]
        pending = self._pending.get(video_id)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[StatsEntry] = asyncio.get_running_loop().create_future()
        self._pending[video_id] = future
        try:
            fresh = StatsEntry(now, await self.reader.read(video_id, now))
        except Exception as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning when nobody else waited
            raise
        except BaseException:
            future.cancel()
            raise
        finally:
            del self._pending[video_id]
        future.set_result(fresh)
        self._entries[video_id] = (mono + self.ttl_s * (0.8 + 0.2 * random.random()), fresh)
        self._entries.move_to_end(video_id)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)
        return fresh
