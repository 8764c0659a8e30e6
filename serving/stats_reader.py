"""An asyncio twin of ``streaming.keyspace.read_video_stats`` for the API's hot path.

``read_video_stats`` sends 88 commands (60 minute buckets, 24 hour buckets, HyperLogLogs) through a
sync pipeline; parsing those replies in Python, plus the thread-pool hop, made a stats request cost six
times a constant answer. This twin reads the same keys, named by the same ``Keyspace``, with one Lua
call that sums the buckets inside Redis and returns a handful of numbers, on the event loop.

Same keys, same windows (``keyspace.window_buckets``), same result dictionary: the integration tests
compare it with ``read_video_stats`` on every video. All keys of a call share the ``{video:ID}`` hash
tag, so the call stays in one Redis Cluster slot. When the live and windows families live on different
Redis servers the call is split in two, one per server.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, Final

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.commands.core import AsyncScript

from streaming.keyspace import Keyspace, window_buckets

AsyncClient = Redis | RedisCluster

# KEYS: [totals, uniques]? then minute buckets, hour buckets, last-hour HLLs, last-24h HLLs.
# ARGV: has_live (0/1), #minutes, #hours, #last-hour HLLs, #last-24h HLLs.
# Returns {totals (flat field/value), uniques, minutes summed (flat), hours summed (flat), uniq 1h, uniq 24h}.
STATS_LUA: Final = """
local has_live = tonumber(ARGV[1]) == 1
local n_min, n_hour = tonumber(ARGV[2]), tonumber(ARGV[3])
local n_uh, n_ud = tonumber(ARGV[4]), tonumber(ARGV[5])
local i = 1
local totals, uniques = {}, 0
if has_live then
  totals = redis.call('HGETALL', KEYS[1])
  uniques = redis.call('PFCOUNT', KEYS[2])
  i = 3
end
local function sum(count)
  local acc, order = {}, {}
  for _ = 1, count do
    local flat = redis.call('HGETALL', KEYS[i])
    for j = 1, #flat, 2 do
      local f = flat[j]
      if acc[f] == nil then
        acc[f] = 0
        order[#order + 1] = f
      end
      acc[f] = acc[f] + tonumber(flat[j + 1])
    end
    i = i + 1
  end
  local out = {}
  for _, f in ipairs(order) do
    out[#out + 1] = f
    out[#out + 1] = tostring(acc[f])
  end
  return out
end
local minutes = sum(n_min)
local hours = sum(n_hour)
local function pfcount(count)
  if count == 0 then
    return 0
  end
  local keys = {}
  for k = 1, count do
    keys[k] = KEYS[i]
    i = i + 1
  end
  return redis.call('PFCOUNT', unpack(keys))
end
local uh = pfcount(n_uh)
local ud = pfcount(n_ud)
return {totals, uniques, minutes, hours, uh, ud}
"""


def _pairs(flat: list[Any]) -> dict[str, str]:
    return {str(flat[j]): str(flat[j + 1]) for j in range(0, len(flat), 2)}


def _int(value: Any) -> int:
    return int(value) if value not in (None, "", b"") else 0


def _ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def summarise(fields: Mapping[str, Any]) -> dict[str, Any]:
    """The counters of one hash (or of summed buckets), as ``read_video_stats`` reports them."""
    clicks = _int(fields.get("clicks"))
    impressions = _int(fields.get("impressions"))
    conversions = _int(fields.get("conversions"))
    by_button = {k[7:]: _int(v) for k, v in fields.items() if k.startswith("clicks:")}
    return {
        "clicks": clicks,
        "clicks_by_button": dict(sorted(by_button.items())),
        "impressions": impressions,
        "conversions": conversions,
        "ctr": _ratio(clicks, impressions),
        "conversion_rate": _ratio(conversions, clicks),
    }


class AsyncStatsReader:
    """Holds the registered script per client; ``read(video_id, now)`` returns the stats dictionary."""

    def __init__(self, live: AsyncClient, windows: AsyncClient, keyspace: Keyspace) -> None:
        self.live = live
        self.windows = windows
        self.keyspace = keyspace
        self.shared = live is windows
        self._script: AsyncScript = windows.register_script(STATS_LUA)

    async def read(self, video_id: str, now: float) -> dict[str, Any]:
        ks = self.keyspace
        buckets = window_buckets(now)
        window_keys = [
            *(ks.video_minute(video_id, m) for m in buckets["last_hour"]),
            *(ks.video_hour(video_id, h) for h in buckets["last_24h"]),
            *(ks.video_uniques_hour(video_id, h) for h in buckets["last_hour_uniques"]),
            *(ks.video_uniques_hour(video_id, h) for h in buckets["last_24h"]),
        ]
        counts = [
            len(buckets["last_hour"]),
            len(buckets["last_24h"]),
            len(buckets["last_hour_uniques"]),
            len(buckets["last_24h"]),
        ]
        live_keys = [ks.video_totals(video_id), ks.video_uniques(video_id)]
        if self.shared:
            reply = await self._script(keys=[*live_keys, *window_keys], args=[1, *counts])
            totals, uniques = _pairs(reply[0]), int(reply[1])
        else:
            pipe = self.live.pipeline(transaction=False)
            pipe.hgetall(live_keys[0])
            pipe.execute_command("PFCOUNT", live_keys[1])
            live_reply = await pipe.execute()
            totals = {str(k): str(v) for k, v in (live_reply[0] or {}).items()}
            uniques = int(live_reply[1])
            reply = await self._script(keys=window_keys, args=[0, *counts])
        last_hour = summarise(_pairs(reply[2]))
        last_hour["unique_users"] = int(reply[4])
        last_24h = summarise(_pairs(reply[3]))
        last_24h["unique_users"] = int(reply[5])
        return {
            "video_id": video_id,
            **summarise(totals),
            "unique_users": uniques,
            "late_events": _int(totals.get("late")),
            "last_hour": last_hour,
            "last_24h": last_24h,
        }


class StatsCache:
    """Per-process reuse of a video's stats for ``ttl_s`` (the answer keeps the time it was read).

    A popular video asked for by many clients at once costs one Redis call per ``ttl_s`` instead of
    one per request; a second of staleness is invisible next to the consumer's batch cadence.
    """

    def __init__(self, reader: AsyncStatsReader, ttl_s: float, size: int = 10_000) -> None:
        self.reader = reader
        self.ttl_s = ttl_s
        self.size = size
        self._entries: OrderedDict[str, tuple[float, float, dict[str, Any]]] = OrderedDict()

    async def read(self, video_id: str, now: float) -> tuple[float, dict[str, Any]]:
        """(read_at, stats): ``read_at`` is ``now`` unless a fresh cached answer was used."""
        if self.ttl_s <= 0:
            return now, await self.reader.read(video_id, now)
        entry = self._entries.get(video_id)
        mono = time.monotonic()
        if entry is not None and entry[0] > mono:
            return entry[1], entry[2]
        data = await self.reader.read(video_id, now)
        self._entries[video_id] = (mono + self.ttl_s, now, data)
        self._entries.move_to_end(video_id)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)
        return now, data
