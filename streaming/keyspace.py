"""The Redis keyspace: every key family ClickPulse writes or reads, named in this one module.

Why one module: the consumer writes these keys, the API, the Dagster assets and the reconciliation
check read them, and the Lua scripts under ``streaming/lua`` build the same names from the suffixes
defined here (they are substituted into the script text when it is registered). Rules:

- Every key starts with a configurable prefix (``cp`` by default; tests use their own) and carries a
  hash tag: ``{video:ID}``, ``{user:ID}``, ``{global}`` or ``{recs}``, so the keys one Lua call touches
  sit in one Redis Cluster slot.
- Live counters carry no TTL: under ``maxmemory-policy volatile-lru`` Redis never evicts them. Caches
  and windows always carry a TTL, set in the same call that writes them, so they are the only keys
  Redis may evict. the README section "Redis keyspace" documents every family, memory per million events and
  the eviction advice.
- Each family belongs to one router group (``Family``): live, windows, profiles, videos, recs; each
  group may live on its own Redis (``CLICKPULSE_REDIS_URL_<GROUP>``).

Reader functions at the bottom (``read_video_stats``, ``read_trending``, ...) are the supported way for
the API to read what the consumer wrote.
"""

from __future__ import annotations

import logging
import string
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any, Final

from clickpulse.settings import Settings
from streaming.multiplexed_redis import flat_pairs
from streaming.redis_conn import Family, RedisClient, RedisRouter, as_router

logger = logging.getLogger(__name__)

LUA_DIR: Final = Path(__file__).resolve().parent / "lua"

# Key suffixes after the tagged base key. The Lua scripts receive these through ${name} tokens.
SUFFIXES: Final[dict[str, str]] = {
    "totals": ":totals",
    "uniq": ":uniq",
    "wm": ":wm",
    "seen": ":seen:",
    "minute": ":m:",
    "hour": ":h:",
    "uniq_hour": ":uniq:h:",
    "uniq_day": ":uniq:d:",
    "meta": ":meta",
    "profile": ":profile",
    "recent": ":recent",
    "attrs": ":attrs",
    "recs": ":recs:",
    "ctr": ":ctr:",
    "trending": ":trending",
    "trending_meta": ":trending:meta",
    "eps": ":eps:",
    "lag": ":lag",
    "live_lock": ":live:lock",
    "current": ":current",
    "versions": ":versions",
    "popular": ":popular:",
}
METRICS: Final = ("clicks", "impressions", "conversions")
CTR_DIMENSIONS: Final = ("button", "surface", "slot")
MINUTE_FORMAT: Final = "%Y%m%d%H%M"
HOUR_FORMAT: Final = "%Y%m%d%H"
DAY_FORMAT: Final = "%Y%m%d"
SEEN_BUCKET_S: Final = 3600
EPS_TTL_S: Final = 120
LAG_TTL_S: Final = 60
USER_ATTRIBUTE_FIELDS: Final = ("country", "subscription_tier", "language")
VIDEO_METADATA_FIELDS: Final = ("title", "series", "genre", "duration_s", "release_date")
DEFAULT_ATTRS_TTL_S: Final = 7 * 86400
DEFAULT_METADATA_TTL_S: Final = 7 * 86400
DEFAULT_RECS_TTL_S: Final = 3 * 86400


def glob_escape(text: str) -> str:
    """``text`` as a literal inside a Redis glob pattern (SCAN MATCH, ACL key and channel patterns):
    ids are free text and may contain ``*``, ``?``, ``[`` or ``\\``."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


@dataclass(frozen=True, slots=True)
class KeyFamily:
    """One documented key family: its pattern, Redis type, router group, TTL rule and purpose."""

    name: str
    pattern: str
    redis_type: str
    group: Family
    ttl: str
    doc: str


def _ttl_text(seconds: int) -> str:
    if seconds % 86400 == 0:
        return f"{seconds // 86400} d"
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    return f"{seconds // 60} min"


@dataclass(frozen=True, slots=True)
class Retention:
    """TTL (seconds) of every windowed or cached family, derived from the lateness allowance.

    A bucket must outlive the window readers ask for plus the lateness during which events may still
    be written to it; the event_id seen-set must outlive the lateness plus a margin.
    """

    minute_s: int
    hour_s: int
    uniq_hour_s: int
    uniq_day_s: int
    global_hour_s: int
    seen_s: int
    profile_s: int
    lateness_s: int

    @classmethod
    def from_settings(cls, settings: Settings) -> Retention:
        lateness = settings.allowed_lateness_minutes * 60
        dedupe_window = lateness + settings.dedupe_margin_minutes * 60
        return cls(
            minute_s=2 * 3600 + lateness,
            hour_s=48 * 3600 + lateness,
            uniq_hour_s=48 * 3600 + lateness,
            uniq_day_s=8 * 86400,
            global_hour_s=8 * 86400,
            seen_s=SEEN_BUCKET_S + dedupe_window,
            profile_s=settings.profile_ttl_days * 86400,
            lateness_s=lateness,
        )


@dataclass(frozen=True, slots=True)
class Keyspace:
    """Key and channel names under one prefix. ``Keyspace(prefix=unique)`` isolates a test.

    ``channel_prefix`` namespaces the Pub/Sub channels; empty gives the documented ``live:*`` names.
    """

    prefix: str = "cp"
    channel_prefix: str = ""

    @classmethod
    def from_settings(cls, settings: Settings) -> Keyspace:
        return cls(prefix=settings.redis_prefix, channel_prefix=settings.live_channel_prefix)

    # Tagged base keys: a Lua call receives these and appends SUFFIXES.
    def video(self, video_id: str) -> str:
        return f"{self.prefix}:{{video:{video_id}}}"

    def user(self, user_id: str) -> str:
        return f"{self.prefix}:{{user:{user_id}}}"

    def global_(self) -> str:
        return f"{self.prefix}:{{global}}"

    def recs_base(self) -> str:
        return f"{self.prefix}:{{recs}}"

    # Per video.
    def video_totals(self, video_id: str) -> str:
        """HASH, live, no TTL: clicks, impressions, conversions, late, clicks:<button_id>."""
        return self.video(video_id) + SUFFIXES["totals"]

    def video_uniques(self, video_id: str) -> str:
        """HLL, live, no TTL: users with any event on the video, all time."""
        return self.video(video_id) + SUFFIXES["uniq"]

    def video_seen(self, video_id: str, epoch_hour: int | str) -> str:
        """HASH, live, TTL seen_s: event_id -> "<partition>:<offset>" of its first occurrence, one hash
        per event_time hour (hours since the epoch): a re-sent event carries the same event_time."""
        return f"{self.video(video_id)}{SUFFIXES['seen']}{epoch_hour}"

    def video_minute(self, video_id: str, minute: str) -> str:
        """HASH, windows, TTL minute_s: counters of one event_time minute (YYYYMMDDHHMM, UTC)."""
        return f"{self.video(video_id)}{SUFFIXES['minute']}{minute}"

    def video_hour(self, video_id: str, hour: str) -> str:
        """HASH, windows, TTL hour_s: counters of one event_time hour (YYYYMMDDHH, UTC)."""
        return f"{self.video(video_id)}{SUFFIXES['hour']}{hour}"

    def video_uniques_hour(self, video_id: str, hour: str) -> str:
        """HLL, windows, TTL uniq_hour_s: users with an event in that event_time hour."""
        return f"{self.video(video_id)}{SUFFIXES['uniq_hour']}{hour}"

    def video_uniques_day(self, video_id: str, day: str) -> str:
        """HLL, windows, TTL uniq_day_s: users with an event on that event_time day (YYYYMMDD, UTC)."""
        return f"{self.video(video_id)}{SUFFIXES['uniq_day']}{day}"

    def video_metadata(self, video_id: str) -> str:
        """HASH, videos, TTL set by the writer (Dagster ``video_catalog``): title, series, genre, ..."""
        return self.video(video_id) + SUFFIXES["meta"]

    # Per user.
    def user_profile(self, user_id: str) -> str:
        """HASH, profiles, TTL profile_s: clicks, impressions, conversions, button:<button_id> (clicks
        per button: the affinities), last_seen_ms (newest event_time), last_video (its video)."""
        return self.user(user_id) + SUFFIXES["profile"]

    def user_recent(self, user_id: str) -> str:
        """LIST, profiles, TTL profile_s: distinct video_ids clicked or converted, newest first, capped."""
        return self.user(user_id) + SUFFIXES["recent"]

    def user_attributes(self, user_id: str) -> str:
        """HASH, profiles, TTL set by the writer (Dagster ``user_profiles``): country, subscription_tier,
        language; read by the consumer for enrichment."""
        return self.user(user_id) + SUFFIXES["attrs"]

    def user_recommendations(self, user_id: str, version: str) -> str:
        """STRING (JSON list), recs, TTL: precomputed items of one model version."""
        return f"{self.user(user_id)}{SUFFIXES['recs']}{version}"

    # Recommendations.
    def recs_current(self) -> str:
        """STRING, recs, no TTL: the model_version the API serves (swapped atomically)."""
        return self.recs_base() + SUFFIXES["current"]

    def recs_versions(self) -> str:
        """ZSET, recs, no TTL: published model versions scored by publish time (for rollback)."""
        return self.recs_base() + SUFFIXES["versions"]

    def recs_popular(self, version: str) -> str:
        """STRING (JSON list), recs, TTL: fallback items for users without their own list."""
        return f"{self.recs_base()}{SUFFIXES['popular']}{version}"

    # Global ({global} slot).
    def global_totals(self) -> str:
        """HASH, live, no TTL: events, clicks, impressions, conversions, late."""
        return self.global_() + SUFFIXES["totals"]

    def global_hour(self, hour: str) -> str:
        """HASH, windows, TTL global_hour_s: clicks, impressions, conversions of one event_time hour."""
        return f"{self.global_()}{SUFFIXES['hour']}{hour}"

    def ctr(self, dimension: str) -> str:
        """HASH, live, no TTL: "<value>|<metric>" -> count for dimension button, surface or slot."""
        return f"{self.global_()}{SUFFIXES['ctr']}{dimension}"

    def ctr_hour(self, dimension: str, hour: str) -> str:
        """HASH, windows, TTL global_hour_s: the same counters for one event_time hour."""
        return f"{self.global_()}{SUFFIXES['ctr']}{dimension}{SUFFIXES['hour']}{hour}"

    def trending(self) -> str:
        """ZSET, live, no TTL: video_id -> decayed score scaled by 2^((t - t0) / half_life)."""
        return self.global_() + SUFFIXES["trending"]

    def trending_meta(self) -> str:
        """HASH, live, no TTL: t0 (epoch s) and half_life_s, to turn stored scores into scores now."""
        return self.global_() + SUFFIXES["trending_meta"]

    def events_per_second(self, epoch_s: int | str) -> str:
        """STRING, live, TTL 120 s: events applied during that wall-clock second, all consumers."""
        return f"{self.global_()}{SUFFIXES['eps']}{epoch_s}"

    def consumer_lag(self) -> str:
        """HASH, live, TTL 60 s: "<topic>:<partition>" -> records behind, refreshed by each consumer."""
        return self.global_() + SUFFIXES["lag"]

    def live_lock(self) -> str:
        """STRING, live, PX = publish interval: at most one global snapshot per interval, all consumers."""
        return self.global_() + SUFFIXES["live_lock"]

    def watermarks(self, tag: str = "wm") -> str:
        """HASH, every family's Redis, no TTL: "<role>:<topic>:<partition>" -> highest offset applied by
        the Lua calls of that role (v: videos, g: global, w/gw: windows on their own Redis, u: users).
        One per Redis (tag "wm"); on a Cluster one per hash slot written (tag from ``slot_tag``)."""
        return f"{self.prefix}:{{{tag}}}{SUFFIXES['wm']}"

    # Pub/Sub channels.
    def _channel(self, name: str) -> str:
        return f"{self.channel_prefix}:{name}" if self.channel_prefix else name

    def live_channel_start(self) -> str:
        """What every live channel name starts with (``live:`` or ``<channel_prefix>:live:``)."""
        return self._channel("live:")

    def channel_global(self) -> str:
        return self._channel("live:global")

    def channel_events(self, event_type: str) -> str:
        return self._channel(f"live:events:{event_type}")

    def channel_user(self, user_id: str) -> str:
        return self._channel(f"live:user:{user_id}")


def key_families(retention: Retention | None = None) -> tuple[KeyFamily, ...]:
    """Every family with its pattern (default prefix ``cp``); the README documents the same list."""
    r = retention
    minute = _ttl_text(r.minute_s) if r else "2 h + lateness"
    hour = _ttl_text(r.hour_s) if r else "48 h + lateness"
    seen = _ttl_text(r.seen_s) if r else "1 h + lateness + margin"
    profile = _ttl_text(r.profile_s) if r else "30 d"
    ks = Keyspace()
    v, u = "ID", "ID"
    live, win, prof, vids, recs = Family.LIVE, Family.WINDOWS, Family.PROFILES, Family.VIDEOS, Family.RECS
    return (
        KeyFamily("video totals", ks.video_totals(v), "hash", live, "none", "all-time counters per video"),
        KeyFamily("video uniques", ks.video_uniques(v), "hll", live, "none", "all-time unique users"),
        KeyFamily("event_id seen-set", ks.video_seen(v, "EPOCHHOUR"), "hash", live, seen, "dedupe"),
        KeyFamily("minute buckets", ks.video_minute(v, "YYYYMMDDHHMM"), "hash", win, minute, "last hour"),
        KeyFamily("hour buckets", ks.video_hour(v, "YYYYMMDDHH"), "hash", win, hour, "last 24 h"),
        KeyFamily("hourly uniques", ks.video_uniques_hour(v, "YYYYMMDDHH"), "hll", win, hour, "uniques"),
        KeyFamily("daily uniques", ks.video_uniques_day(v, "YYYYMMDD"), "hll", win, "8 d", "uniques per day"),
        KeyFamily("video metadata", ks.video_metadata(v), "hash", vids, "7 d (writer)", "titles etc."),
        KeyFamily("user profile", ks.user_profile(u), "hash", prof, profile, "counts, last seen"),
        KeyFamily("user recent videos", ks.user_recent(u), "list", prof, profile, "recent videos"),
        KeyFamily("user attributes", ks.user_attributes(u), "hash", prof, "7 d (writer)", "enrichment"),
        KeyFamily(
            "user recommendations", ks.user_recommendations(u, "VERSION"), "string", recs, "3 d", "recs"
        ),
        KeyFamily("recs pointer", ks.recs_current(), "string", recs, "none", "served model version"),
        KeyFamily("recs versions", ks.recs_versions(), "zset", recs, "none", "published versions"),
        KeyFamily("recs popular", ks.recs_popular("VERSION"), "string", recs, "3 d", "fallback list"),
        KeyFamily("global totals", ks.global_totals(), "hash", live, "none", "funnel, all time"),
        KeyFamily("global hourly", ks.global_hour("YYYYMMDDHH"), "hash", win, "8 d", "funnel per hour"),
        KeyFamily("CTR counters", ks.ctr("DIM"), "hash", live, "none", "per button/surface/slot"),
        KeyFamily("hourly CTR counters", ks.ctr_hour("DIM", "YYYYMMDDHH"), "hash", win, "8 d", "per hour"),
        KeyFamily("trending", ks.trending(), "zset", live, "none", "decayed popularity"),
        KeyFamily("trending meta", ks.trending_meta(), "hash", live, "none", "t0, half-life"),
        KeyFamily("events per second", ks.events_per_second("EPOCHSEC"), "string", live, "120 s", "rate"),
        KeyFamily("offset watermarks", ks.watermarks(), "hash", live, "none", "replay guard, per Redis"),
        KeyFamily("offset watermarks (Cluster)", ks.watermarks("wm-N"), "hash", live, "none", "per slot"),
        KeyFamily("consumer lag", ks.consumer_lag(), "hash", live, "60 s", "lag per partition"),
        KeyFamily("live lock", ks.live_lock(), "string", live, "250 ms", "snapshot throttle"),
    )


@cache
def _slot_tags() -> dict[int, str]:
    from redis.crc import key_slot

    tags: dict[int, str] = {}
    i = 0
    while len(tags) < 16384:
        tag = f"wm-{i}"
        tags.setdefault(int(key_slot(tag.encode())), tag)
        i += 1
    return tags


def slot_tag(slot: int) -> str:
    """A hash tag that maps to Cluster ``slot``, for the watermark key of the calls on that slot."""
    return _slot_tags()[slot]


@cache
def lua_source(name: str) -> str:
    """A script from ``streaming/lua`` with ``common.lua`` prepended and key suffixes filled in."""
    common = (LUA_DIR / "common.lua").read_text()
    body = (LUA_DIR / f"{name}.lua").read_text()
    return string.Template(common + "\n" + body).substitute(SUFFIXES)


# Time buckets (UTC) shared by the writer and the readers.
@cache
def _minute_names(epoch_minute: int) -> tuple[str, str, str]:
    stamp = datetime.fromtimestamp(epoch_minute * 60, UTC)
    return stamp.strftime(MINUTE_FORMAT), stamp.strftime(HOUR_FORMAT), stamp.strftime(DAY_FORMAT)


def bucket_names(epoch_s: float) -> tuple[str, str, str]:
    """(minute, hour, day) bucket names of a UTC instant, e.g. ("202501011230", "2025010112", "20250101")."""
    return _minute_names(int(epoch_s // 60))


def hour_name(epoch_s: float) -> str:
    return bucket_names(epoch_s)[1]


# Readers: the API, the dashboard and the reconciliation check use these.
def _int(value: Any) -> int:
    return int(value) if value not in (None, "", b"") else 0


def _ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def summarise_counters(fields: Mapping[str, Any]) -> dict[str, Any]:
    """The counters of one hash (or of summed buckets) as the stats readers report them: clicks (total and
    by button), impressions, conversions, CTR and conversion rate."""
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


def _merge(hashes: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    total: dict[str, int] = {}
    for fields in hashes:
        for key, value in (fields or {}).items():
            total[key] = total.get(key, 0) + _int(value)
    return total


def _now(now: float | datetime | None) -> float:
    if now is None:
        return time.time()
    if isinstance(now, datetime):
        return now.timestamp()
    return float(now)


def window_buckets(now: float | datetime | None = None) -> dict[str, list[str]]:
    """Bucket names behind each window: ``last_hour`` = the 60 minute buckets ending with the current
    minute; ``last_24h`` = the current hour and the 23 before it; ``last_hour_uniques`` = the hour
    buckets overlapping the last 60 minutes (current and previous hour)."""
    t = _now(now)
    minute0 = int(t // 60)
    hour0 = int(t // 3600)
    return {
        "last_hour": [_minute_names(minute0 - i)[0] for i in range(60)],
        "last_24h": [_minute_names((hour0 - i) * 60)[1] for i in range(24)],
        "last_hour_uniques": [_minute_names((hour0 - i) * 60)[1] for i in range(2)],
    }


def _pfcount(pipe: Any, *keys: str) -> None:
    # ClusterPipeline blocks the pfcount() method (multi-key); the keys share a hash tag, so it is safe.
    pipe.execute_command("PFCOUNT", *keys)


def read_video_stats(
    redis: RedisClient | RedisRouter,
    video_id: str,
    now: float | datetime | None = None,
    *,
    keyspace: Keyspace | None = None,
) -> dict[str, Any]:
    """All-time and windowed stats of one video, as ``GET /v1/videos/{id}/stats`` returns them.

    ``ctr`` = clicks / impressions and ``conversion_rate`` = conversions / clicks, ``None`` when the
    denominator is 0. ``unique_users`` is a HyperLogLog estimate (about 0.81% standard error).
    ``last_hour`` sums the 60 minute buckets ending now; ``last_24h`` the current hour bucket and the 23
    before it; their ``unique_users`` count the hour buckets the window overlaps (see window_buckets).
    """
    ks = keyspace or Keyspace()
    router = as_router(redis)
    buckets = window_buckets(now)

    live = router.client(Family.LIVE).pipeline(transaction=False)
    live.hgetall(ks.video_totals(video_id))
    _pfcount(live, ks.video_uniques(video_id))
    totals, uniques = live.execute()

    windows = router.client(Family.WINDOWS).pipeline(transaction=False)
    for minute in buckets["last_hour"]:
        windows.hgetall(ks.video_minute(video_id, minute))
    for hour in buckets["last_24h"]:
        windows.hgetall(ks.video_hour(video_id, hour))
    _pfcount(windows, *(ks.video_uniques_hour(video_id, h) for h in buckets["last_hour_uniques"]))
    _pfcount(windows, *(ks.video_uniques_hour(video_id, h) for h in buckets["last_24h"]))
    replies = windows.execute()
    minutes, hours = replies[:60], replies[60:84]
    uniques_hour, uniques_24h = replies[84], replies[85]

    last_hour = summarise_counters(_merge(minutes))
    last_hour["unique_users"] = int(uniques_hour)
    last_24h = summarise_counters(_merge(hours))
    last_24h["unique_users"] = int(uniques_24h)
    return {
        "video_id": video_id,
        **summarise_counters(totals),
        "unique_users": int(uniques),
        "late_events": _int(totals.get("late")),
        "last_hour": last_hour,
        "last_24h": last_24h,
    }


def read_video_uniques_by_day(
    redis: RedisClient | RedisRouter, video_id: str, days: Iterable[str], *, keyspace: Keyspace | None = None
) -> dict[str, int]:
    """Unique users per UTC day (``YYYYMMDD``) for the days still retained (8 days)."""
    ks = keyspace or Keyspace()
    client = as_router(redis).client(Family.WINDOWS)
    day_list = list(days)
    pipe = client.pipeline(transaction=False)
    for day in day_list:
        _pfcount(pipe, ks.video_uniques_day(video_id, day))
    return {day: int(n) for day, n in zip(day_list, pipe.execute(), strict=True)}


def trending_scale(meta: Mapping[str, Any], now: float) -> float:
    """Factor that turns a stored trending score into the decayed score at ``now``."""
    if not meta or "t0" not in meta:
        return 1.0
    t0 = float(meta["t0"])
    half_life = float(meta.get("half_life_s") or 6 * 3600)
    return float(2.0 ** (-(now - t0) / half_life))


def read_trending(
    redis: RedisClient | RedisRouter,
    limit: int = 10,
    now: float | datetime | None = None,
    *,
    keyspace: Keyspace | None = None,
) -> list[dict[str, Any]]:
    """Top videos by exponentially decayed score: impression 0.1, click 1.0, conversion 5.0 (by default),
    halving every 6 h; the score is in those units as of ``now``."""
    ks = keyspace or Keyspace()
    client = as_router(redis).client(Family.LIVE)
    pipe = client.pipeline(transaction=False)
    pipe.hgetall(ks.trending_meta())
    pipe.zrevrange(ks.trending(), 0, max(0, limit - 1), withscores=True)
    meta, top = pipe.execute()
    scale = trending_scale(meta, _now(now))
    return [{"video_id": member, "score": score * scale} for member, score in top[:limit]]


def _parse_ctr(fields: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for field, value in fields.items():
        name, _, metric = field.rpartition("|")
        if metric in METRICS:
            out.setdefault(name, {m: 0 for m in METRICS})[metric] = _int(value)
    for counts in out.values():
        counts["ctr"] = _ratio(counts["clicks"], counts["impressions"])
        counts["conversion_rate"] = _ratio(counts["conversions"], counts["clicks"])
    return dict(sorted(out.items()))


def read_ctr(
    redis: RedisClient | RedisRouter,
    dimension: str,
    hour: str | None = None,
    *,
    keyspace: Keyspace | None = None,
) -> dict[str, dict[str, Any]]:
    """Impressions, clicks, conversions, CTR and conversion rate per value of ``dimension`` (button,
    surface, or slot = "<model_version>|<rec_slot>"), all time or for one event_time hour (YYYYMMDDHH)."""
    if dimension not in CTR_DIMENSIONS:
        raise ValueError(f"dimension must be one of {CTR_DIMENSIONS}")
    ks = keyspace or Keyspace()
    router = as_router(redis)
    if hour is None:
        return _parse_ctr(flat_pairs(router.client(Family.LIVE).hgetall(ks.ctr(dimension))))
    return _parse_ctr(flat_pairs(router.client(Family.WINDOWS).hgetall(ks.ctr_hour(dimension, hour))))


def slot_value(model_version: str | None, rec_slot: int | None) -> str:
    """The ``slot`` dimension value of an event: "<model_version>|<rec_slot>", "-" for a missing part."""
    if model_version is None and rec_slot is None:
        return ""
    return (
        f"{model_version if model_version is not None else '-'}|{rec_slot if rec_slot is not None else '-'}"
    )


def read_global(
    redis: RedisClient | RedisRouter,
    now: float | datetime | None = None,
    *,
    keyspace: Keyspace | None = None,
    trending_limit: int = 10,
    rate_window_s: int = 5,
) -> dict[str, Any]:
    """The live dashboard's numbers: funnel totals, events/s (all consumers, last few seconds), CTR by
    button and surface and slot, top videos by trending, consumer lag per partition."""
    ks = keyspace or Keyspace()
    client = as_router(redis).client(Family.LIVE)
    t = _now(now)
    second = int(t) - 1
    pipe = client.pipeline(transaction=False)
    pipe.hgetall(ks.global_totals())
    for dim in CTR_DIMENSIONS:
        pipe.hgetall(ks.ctr(dim))
    pipe.hgetall(ks.trending_meta())
    pipe.zrevrange(ks.trending(), 0, max(0, trending_limit - 1), withscores=True)
    pipe.hgetall(ks.consumer_lag())
    for s in range(second - rate_window_s + 1, second + 1):
        pipe.get(ks.events_per_second(s))
    replies = pipe.execute()
    totals, ctr_raw, (meta, top, lag), rates = replies[0], replies[1:4], replies[4:7], replies[7:]
    scale = trending_scale(meta, t)
    counts = {m: _int(totals.get(m)) for m in METRICS}
    return {
        "totals": {**counts, "events": _int(totals.get("events")), "late": _int(totals.get("late"))},
        "funnel": {
            "impressions": counts["impressions"],
            "clicks": counts["clicks"],
            "conversions": counts["conversions"],
            "ctr": _ratio(counts["clicks"], counts["impressions"]),
            "conversion_rate": _ratio(counts["conversions"], counts["clicks"]),
        },
        "events_per_s": sum(_int(r) for r in rates) / rate_window_s,
        "ctr": {dim: _parse_ctr(raw) for dim, raw in zip(CTR_DIMENSIONS, ctr_raw, strict=True)},
        "trending": [{"video_id": m, "score": s * scale} for m, s in top],
        "consumer_lag": {k: _int(v) for k, v in sorted(lag.items())},
    }


def read_user_profile(
    redis: RedisClient | RedisRouter, user_id: str, *, keyspace: Keyspace | None = None
) -> dict[str, Any]:
    """Counts, last seen, button affinities and recent videos of a user (empty when unknown/expired)."""
    ks = keyspace or Keyspace()
    client = as_router(redis).client(Family.PROFILES)
    pipe = client.pipeline(transaction=False)
    pipe.hgetall(ks.user_profile(user_id))
    pipe.lrange(ks.user_recent(user_id), 0, -1)
    pipe.hgetall(ks.user_attributes(user_id))
    profile, recent, attrs = pipe.execute()
    buttons = {k[7:]: _int(v) for k, v in profile.items() if k.startswith("button:")}
    last_seen = profile.get("last_seen_ms")
    counts = {m: _int(profile.get(m)) for m in METRICS}
    return {
        "user_id": user_id,
        "events": sum(counts.values()),
        **counts,
        "last_seen": datetime.fromtimestamp(int(last_seen) / 1000, UTC).isoformat() if last_seen else None,
        "last_video": profile.get("last_video"),
        "button_affinities": dict(sorted(buttons.items(), key=lambda kv: (-kv[1], kv[0]))),
        "recent_videos": list(recent),
        "attributes": {k: attrs.get(k) for k in USER_ATTRIBUTE_FIELDS},
    }


def read_video_metadata(
    redis: RedisClient | RedisRouter, video_id: str, *, keyspace: Keyspace | None = None
) -> dict[str, str]:
    ks = keyspace or Keyspace()
    return flat_pairs(as_router(redis).client(Family.VIDEOS).hgetall(ks.video_metadata(video_id)))


def _write_hashes(
    client: RedisClient,
    rows: Iterable[Mapping[str, Any]],
    key_of: Callable[[str], str],
    id_field: str,
    fields: Sequence[str],
    ttl_s: int,
) -> int:
    """One pipeline: HSET the non-null ``fields`` of each row under ``key_of(row[id_field])`` with a TTL."""
    pipe = client.pipeline(transaction=False)
    count = 0
    for row in rows:
        values: dict[Any, Any] = {f: str(row[f]) for f in fields if row.get(f) is not None}
        if values:
            key = key_of(str(row[id_field]))
            pipe.hset(key, mapping=values)
            pipe.expire(key, ttl_s)
            count += 1
    pipe.execute()
    return count


def write_video_metadata(
    redis: RedisClient | RedisRouter,
    rows: Iterable[Mapping[str, Any]],
    *,
    keyspace: Keyspace | None = None,
    ttl_s: int = DEFAULT_METADATA_TTL_S,
) -> int:
    """Write ``video_id`` + metadata rows (the Dagster ``video_catalog`` asset), TTL in the same pipeline."""
    ks = keyspace or Keyspace()
    client = as_router(redis).client(Family.VIDEOS)
    return _write_hashes(client, rows, ks.video_metadata, "video_id", VIDEO_METADATA_FIELDS, ttl_s)


def write_user_attributes(
    redis: RedisClient | RedisRouter,
    rows: Iterable[Mapping[str, Any]],
    *,
    keyspace: Keyspace | None = None,
    ttl_s: int = DEFAULT_ATTRS_TTL_S,
) -> int:
    """Write ``user_id`` + country/subscription_tier/language rows (the Dagster ``user_profiles`` asset)."""
    ks = keyspace or Keyspace()
    client = as_router(redis).client(Family.PROFILES)
    return _write_hashes(client, rows, ks.user_attributes, "user_id", USER_ATTRIBUTE_FIELDS, ttl_s)
