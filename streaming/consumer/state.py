"""Applies one batch of events to Redis with exactly-once effect, in a few Lua calls.

Two phases, each one pipeline per Redis client:

1. ``live.lua`` per video group: event_id dedupe (seen-set) and the video's live counters. It tells
   which events are first occurrences; a duplicate event_id from another offset is dropped everywhere.
2. For first occurrences only: ``live.lua`` for the {global} slot (totals, CTR, trending),
   ``windows.lua`` per video and for {global} (buckets by event_time, within the lateness allowance),
   ``profile.lua`` per user.

Each group (one video, one user, {global}) keeps a per-partition offset watermark next to its data
and skips offsets it already applied, so re-running a batch after a crash, a rebalance or a group
reset never counts twice. Groups are packed into one Lua call per Cluster hash slot, or, on a single
Redis, into as few calls as ``consumer_lua_max_events`` allows.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
from redis.crc import key_slot
from redis.exceptions import NoScriptError

from clickpulse.settings import Settings
from streaming.consumer.records import CountedEvent
from streaming.keyspace import EPS_TTL_S, SEEN_BUCKET_S, Keyspace, Retention, bucket_names, slot_value
from streaming.redis_conn import Family, RedisClient, RedisRouter, is_cluster_client

logger = logging.getLogger(__name__)

SCRIPTS = ("live", "windows", "profile")
KIND_CODES = {"click": "c", "impression": "i", "conversion": "v"}


@dataclass(slots=True)
class _Group:
    base_key: str
    kind: str
    events: list[list[Any]] = field(default_factory=list)
    members: list[CountedEvent] = field(default_factory=list)


@dataclass(slots=True)
class _Call:
    client: RedisClient
    script: str
    groups: list[_Group]
    header: dict[str, Any]


@dataclass(slots=True)
class ApplyResult:
    """What one batch did: duplicates dropped, and per user the clicks applied for the first time."""

    duplicates: int = 0
    applied_clicks: dict[str, list[CountedEvent]] = field(default_factory=dict)


class ScriptSet:
    """The Lua scripts registered on one client (``register_script``) and loaded on every node."""

    def __init__(self, client: RedisClient) -> None:
        from streaming.keyspace import lua_source

        self.client = client
        self.scripts = {name: client.register_script(lua_source(name)) for name in SCRIPTS}
        self.load()

    def load(self) -> None:
        for script in self.scripts.values():
            script.sha = self.client.script_load(script.script)

    def sha(self, name: str) -> str:
        return str(self.scripts[name].sha)


class StateWriter:
    """Writes batches to the Redis families of a ``RedisRouter``; safe to call again with the same batch."""

    def __init__(
        self, router: RedisRouter, keyspace: Keyspace, settings: Settings, source_topic: str
    ) -> None:
        self.router = router
        self.keyspace = keyspace
        self.retention = Retention.from_settings(settings)
        self.topic = source_topic
        self.max_events_per_call = settings.consumer_lua_max_events
        self._scripts: dict[int, ScriptSet] = {}
        for client in router.clients():
            self._scripts[id(client)] = ScriptSet(client)
        self._weights = {
            "c": settings.trending_weight_click,
            "i": settings.trending_weight_impression,
            "v": settings.trending_weight_conversion,
        }
        self._half_life_s = settings.trending_half_life_hours * 3600
        self._renormalise_s = settings.trending_renormalise_half_lives * self._half_life_s
        self._trending_max = settings.trending_max_members
        self._recent_cap = settings.profile_recent_videos
        r = self.retention
        self._windows_header = {
            "win": True,
            "topic": self.topic,
            "minute_ttl": r.minute_s,
            "hour_ttl": r.hour_s,
            "uniq_hour_ttl": r.uniq_hour_s,
            "uniq_day_ttl": r.uniq_day_s,
            "global_hour_ttl": r.global_hour_s,
        }
        # Windows on the live Redis are applied by live.lua in the same call, under the same watermark.
        self.merged_windows = router.shares_client(Family.LIVE, Family.WINDOWS)

    def apply(self, events: list[CountedEvent]) -> ApplyResult:
        """Apply ``events`` (in offset order per partition); marks duplicates with ``first = False``."""
        duplicates = self.phase_one(events)
        return ApplyResult(duplicates, self.phase_two([e for e in events if e.first]))

    def phase_one(self, events: list[CountedEvent]) -> int:
        """Dedupe by event_id and apply the per-video live counters (and the video windows when they
        share the Redis); returns the number of duplicates. ``phase_two`` takes the first occurrences."""
        if not events:
            return 0
        ks = self.keyspace
        merged = self.merged_windows
        groups: dict[str, _Group] = {}
        for e in events:
            ev = e.event
            group = groups.get(ev.video_id)
            if group is None:
                group = groups[ev.video_id] = _Group(ks.video(ev.video_id), "v")
            row = [
                e.partition,
                e.offset,
                KIND_CODES[ev.event_type],
                ev.button_id or "",
                e.compact_id,
                int(e.event_time_s // SEEN_BUCKET_S),
                1 if e.is_late else 0,
                ev.user_id,
            ]
            if merged and not e.is_late:
                row.extend(bucket_names(e.event_time_s))
            group.events.append(row)
            group.members.append(e)
        header: dict[str, Any] = {"topic": self.topic, "seen_ttl": self.retention.seen_s}
        if merged:
            header.update(self._windows_header)
        calls = self._pack(self.router.client(Family.LIVE), "live", list(groups.values()), header)
        duplicates = 0
        for call, replies in zip(calls, self._execute(calls), strict=True):
            for group, flags in zip(call.groups, replies, strict=True):
                for member, flag in zip(group.members, flags, strict=True):
                    member.first = flag == "1"
                    duplicates += not member.first
        return duplicates

    def phase_two(self, events: list[CountedEvent]) -> dict[str, list[CountedEvent]]:
        """Global live counters (and global windows), profiles, and the video windows when they live on
        their own Redis, for first occurrences; returns, per user, the clicks applied now (not by an
        earlier run of the same offsets)."""
        if not events:
            return {}
        ks = self.keyspace
        merged = self.merged_windows
        global_live = _Group(ks.global_(), "g")
        global_windows = _Group(ks.global_(), "g")
        video_windows: dict[str, _Group] = {}
        users: dict[str, _Group] = {}
        for e in events:
            ev = e.event
            kind = KIND_CODES[ev.event_type]
            button = ev.button_id or ""
            surface = ev.surface or ""
            slot = slot_value(ev.model_version, ev.rec_slot)
            trend_time = min(e.event_time_s, e.timestamp_ms / 1000)
            row: list[Any] = [e.partition, e.offset, kind, button, surface, slot, ev.video_id, trend_time]
            global_live.events.append(row)
            user = users.get(ev.user_id)
            if user is None:
                user = users[ev.user_id] = _Group(ks.user(ev.user_id), "u")
            user.events.append(
                [e.partition, e.offset, kind, button, ev.video_id, round(e.event_time_s * 1000)]
            )
            user.members.append(e)
            if e.is_late:
                row.append(1)
                continue
            row.append(0)
            minute, hour, day = bucket_names(e.event_time_s)
            if merged:
                row.append(hour)
                continue
            vw = video_windows.get(ev.video_id)
            if vw is None:
                vw = video_windows[ev.video_id] = _Group(ks.video(ev.video_id), "v")
            vw.events.append([e.partition, e.offset, kind, button, minute, hour, day, ev.user_id])
            global_windows.events.append([e.partition, e.offset, kind, button, surface, slot, hour])

        live_header: dict[str, Any] = {
            "topic": self.topic,
            "weights": self._weights,
            "half_life_s": self._half_life_s,
            "renormalise_s": self._renormalise_s,
            "trending_max": self._trending_max,
            "now_s": int(time.time()),
            "eps_ttl": EPS_TTL_S,
        }
        if merged:
            live_header.update(self._windows_header)
        window_groups = list(video_windows.values())
        if global_windows.events:
            window_groups.append(global_windows)
        profile_header = {
            "topic": self.topic,
            "profile_ttl": self.retention.profile_s,
            "recent_cap": self._recent_cap,
        }
        profile_calls = self._pack(
            self.router.client(Family.PROFILES), "profile", list(users.values()), profile_header
        )
        calls = [
            *self._pack(self.router.client(Family.LIVE), "live", [global_live], live_header),
            *self._pack(self.router.client(Family.WINDOWS), "windows", window_groups, self._windows_header),
            *profile_calls,
        ]
        replies = self._execute(calls)
        applied: dict[str, list[CountedEvent]] = {}
        for call, reply in zip(calls, replies, strict=True):
            if call.script != "profile":
                continue
            for group, flags in zip(call.groups, reply, strict=True):
                for member, flag in zip(group.members, flags, strict=True):
                    if flag == "1" and member.event.event_type == "click":
                        applied.setdefault(member.event.user_id, []).append(member)
        return applied

    def _pack(
        self, client: RedisClient, script: str, groups: list[_Group], header: dict[str, Any]
    ) -> list[_Call]:
        """One call per hash slot on a Cluster; on a single Redis, calls of up to max_events events."""
        if not groups:
            return []
        if is_cluster_client(client):
            by_slot: dict[int, list[_Group]] = defaultdict(list)
            for group in groups:
                by_slot[key_slot(group.base_key.encode())].append(group)
            return [_Call(client, script, g, header) for g in by_slot.values()]
        calls: list[_Call] = []
        current: list[_Group] = []
        size = 0
        for group in groups:
            current.append(group)
            size += len(group.events)
            if size >= self.max_events_per_call:
                calls.append(_Call(client, script, current, header))
                current, size = [], 0
        if current:
            calls.append(_Call(client, script, current, header))
        return calls

    def _execute(self, calls: list[_Call]) -> list[Any]:
        """Run the calls, one pipeline per client; reload the scripts once if a server lost them."""
        by_client: dict[int, list[int]] = defaultdict(list)
        for index, call in enumerate(calls):
            by_client[id(call.client)].append(index)
        replies: list[Any] = [None] * len(calls)
        for indexes in by_client.values():
            client = calls[indexes[0]].client
            scripts = self._scripts[id(client)]
            for attempt in range(2):
                results = self._send(client, scripts, [calls[i] for i in indexes])
                if any(isinstance(r, NoScriptError) for r in results) and attempt == 0:
                    logger.warning(
                        "Redis lost the ClickPulse scripts (restart or failover?); loading them again"
                    )
                    scripts.load()
                    continue
                break
            for i, result in zip(indexes, results, strict=True):
                if isinstance(result, Exception):
                    raise result
                replies[i] = result
        return replies

    @staticmethod
    def _send(client: RedisClient, scripts: ScriptSet, calls: Iterable[_Call]) -> list[Any]:
        pipe = client.pipeline(transaction=False)
        for call in calls:
            payload = orjson.dumps(
                {**call.header, "k": [g.kind for g in call.groups], "g": [g.events for g in call.groups]}
            )
            keys = [g.base_key for g in call.groups]
            # execute_command: ClusterPipeline blocks its evalsha() helper, the raw command is routed by key.
            pipe.execute_command("EVALSHA", scripts.sha(call.script), len(keys), *keys, payload)
        return list(pipe.execute(raise_on_error=False))
