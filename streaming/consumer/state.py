"""Applies one batch of events to Redis with exactly-once effect, in a few Lua calls.

Two phases, each one pipeline per Redis client:

1. ``live.lua`` over the video groups: event_id dedupe (seen-set) and each video's live counters, plus
   its windows when the windows family shares the Redis. It tells which events are first occurrences;
   a duplicate event_id from another offset is dropped everywhere.
2. For first occurrences only: ``live.lua`` over the {global} group (totals, CTR, trending),
   ``profile.lua`` over the user groups, and ``windows.lua`` when windows have their own Redis.
   While no offset is being replayed, the {global} and user groups go as totals the consumer counted
   (``global_totals``, ``user_totals``) rather than event by event: the scripts then only write.

Every call carries the groups of one Cluster hash slot (one call per slot), or on a single Redis a
contiguous slice of the batch (at most ``consumer_lua_max_events`` events), plus one watermark key in
the same slot that records, per partition, the highest offset its role applied. Calls skip offsets at
or below it, so re-running a batch after a crash, a rebalance or a group reset never counts twice.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import msgspec
from redis.crc import key_slot
from redis.exceptions import NoScriptError

from clickpulse.settings import Settings
from streaming.consumer.records import CountedEvent
from streaming.consumer.reply_stream import ReplyStream, Written
from streaming.keyspace import (
    EPS_TTL_S,
    METRICS,
    SEEN_BUCKET_S,
    Keyspace,
    Retention,
    bucket_names,
    hour_name,
    slot_tag,
    slot_value,
)
from streaming.redis_conn import Family, RedisClient, RedisRouter, is_cluster_client

logger = logging.getLogger(__name__)

SCRIPTS = ("live", "windows", "profile")
KIND_CODES = {"click": "c", "impression": "i", "conversion": "v"}
# The counter field of each event type (common.lua's METRIC).
METRIC_OF = dict(zip(("click", "impression", "conversion"), METRICS, strict=True))
# Phase one's video groups are one flat list (live.lua, video): VIDEO_STRIDE values per event, the
# windows' bucket names last (empty when the event is late or the windows have their own Redis).
VIDEO_STRIDE = 12
NO_BUCKETS = ("", "", "")
# Watermark roles: each stream of calls keeps its own offsets.
ROLE_VIDEOS, ROLE_GLOBAL, ROLE_WINDOWS, ROLE_GLOBAL_WINDOWS, ROLE_USERS = "v", "g", "w", "gw", "u"


# Per partition, the first and the last offset a call covers.
_Span = tuple[dict[int, int], dict[int, int]]
# A plain command (the user attribute look-ups) sent with the calls of its client.
Read = tuple[RedisClient, tuple[Any, ...]]
# What ``send`` wrote to one stream: (stream, what ``ReplyStream.read`` needs, reply slots).
SentPart = tuple["ReplyStream", "Written", list[int]]


@dataclass(slots=True)
class _Group:
    base_key: str
    kind: str
    # What the script takes: a list per event, or one flat list (phase one's video groups, VIDEO_STRIDE)
    events: list[Any] = field(default_factory=list)
    members: list[CountedEvent] = field(default_factory=list)
    # Groups sent as totals: what the script gets, counted from the members when the call is sent
    # (after phase one dropped the duplicates).
    totals: Callable[[list[CountedEvent]], Any] | None = None

    def payload(self) -> Any:
        return self.events if self.totals is None else self.totals(self.members)


@dataclass(slots=True)
class LuaCall:
    client: RedisClient
    script: str
    groups: list[_Group]
    watermark_key: str
    header: dict[str, Any]
    # Per partition: the last offset the call covers, and the last offset of the previous call of its
    # role and watermark key when this call continues from there (``StateWriter._chain``).
    upto: dict[int, int] = field(default_factory=dict)
    after: dict[int, int] = field(default_factory=dict)
    # Calls with groups sent as totals: per partition, the first offset the call covers. The script
    # refuses to run (REPLAY error) unless its role's watermark is below it: totals cannot skip the
    # events an earlier run already counted.
    fresh_from: dict[int, int] | None = None


@dataclass(slots=True)
class ApplyResult:
    """What one batch did: duplicates dropped, and per user the clicks applied for the first time."""

    duplicates: int = 0
    applied_clicks: dict[str, list[CountedEvent]] = field(default_factory=dict)


# The scripts' argument (ARGV[1]): MessagePack, which Redis' Lua unpacks (cmsgpack) faster than JSON.
_PACK = msgspec.msgpack.Encoder().encode


@lru_cache(maxsize=200_000)
def _slot(key: str) -> int:
    return int(key_slot(key.encode()))


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
        # Calls can be written before earlier replies are read (``send``) only to standalone Redis
        # servers; the consumer then uses the streamed queue, and calls carry ``after`` (``_chain``).
        self.streams = not any(is_cluster_client(c) for c in router.clients())
        # (watermark key, role, partition) -> the last offset of the role's last planned call
        self._last_planned: dict[tuple[str, str, int], int] = {}
        self._streams: dict[int, ReplyStream] = {}
        for client in router.clients():
            self._scripts[id(client)] = ScriptSet(client)
            if is_cluster_client(client):
                slot_tag(0)  # build the slot -> tag table now rather than in the first batch
        self._weights = {
            "c": settings.trending_weight_click,
            "i": settings.trending_weight_impression,
            "v": settings.trending_weight_conversion,
        }
        self._weight_of = {t: self._weights[code] for t, code in KIND_CODES.items()}
        self._half_life_s = settings.trending_half_life_hours * 3600
        self._renormalise_s = settings.trending_renormalise_half_lives * self._half_life_s
        self._trending_max = settings.trending_max_members
        self._recent_cap = settings.profile_recent_videos
        r = self.retention
        self._windows_header = {
            "minute_ttl": r.minute_s,
            "hour_ttl": r.hour_s,
            "uniq_hour_ttl": r.uniq_hour_s,
            "uniq_day_ttl": r.uniq_day_s,
            "global_hour_ttl": r.global_hour_s,
        }
        # Windows on the live Redis are applied by live.lua in the same call, under the same watermark.
        self.merged_windows = router.shares_client(Family.LIVE, Family.WINDOWS)
        # Phase two goes as totals once a batch showed that no offset is being replayed (every event of
        # its {global} group applied); events again after a retry or a new assignment (``expect_replay``).
        self.send_totals = False

    def expect_replay(self) -> None:
        """Offsets counted before may come again (a restart, a rebalance, a rewind): phase two goes
        event by event until a batch shows otherwise."""
        self.send_totals = False

    def apply(self, events: list[CountedEvent]) -> ApplyResult:
        """Apply ``events`` (in offset order per partition) and wait: phase one (event_id dedupe, the
        per-video live counters, and the video windows when they share the Redis), then phase two for
        the first occurrences (global live counters and windows, profiles, the video windows when they
        live on their own Redis). Marks duplicates with ``first = False``; returns them and, per user,
        the clicks applied now (not by an earlier run of the same offsets). Event by event (a retry)."""
        self.send_totals = False
        first, second = self.plan(events)
        duplicates = self.phase_one_result(first, self.execute(first))
        if duplicates:
            second = without_duplicates(second)
        return ApplyResult(duplicates, self.phase_two_result(second, self.execute(second)))

    @staticmethod
    def phase_one_result(calls: list[LuaCall], replies: list[Any]) -> int:
        """Marks duplicates (``first = False``) from phase one's replies; returns how many."""
        duplicates = 0
        for call, reply in zip(calls, replies, strict=True):
            for group, flags in zip(call.groups, reply, strict=True):
                for member, flag in zip(group.members, flags, strict=True):
                    member.first = flag == "1"
                    duplicates += not member.first
        return duplicates

    def plan(self, events: list[CountedEvent]) -> tuple[list[LuaCall], list[LuaCall]]:
        """The calls of phase one and of phase two for ``events``, in one pass (no I/O). The consumer
        plans both for the whole batch, runs phase one, then drops the duplicates it found from phase
        two (``without_duplicates``). Calls of a role must be planned in the order they are sent.

        Events go to groups (one per base key) as they come; each group becomes part of one call per
        Cluster hash slot, or of one call on a single Redis. A batch larger than
        ``consumer_lua_max_events`` is planned in contiguous slices of that size, one set of calls each,
        so that no call runs longer and calls of a role still cover increasing offsets."""
        if not events:
            return [], []
        size = self.max_events_per_call
        if len(events) > size:
            first: list[LuaCall] = []
            second: list[LuaCall] = []
            for i in range(0, len(events), size):
                one, two = self.plan(events[i : i + size])
                first += one
                second += two
            return first, second
        ks = self.keyspace
        video, user = ks.video, ks.user
        merged = self.merged_windows
        global_key = ks.global_()
        video_groups: dict[str, _Group] = {}
        user_groups: dict[str, _Group] = {}
        window_groups: dict[str, _Group] = {}
        totals = self.send_totals
        global_group = (
            _Group(global_key, "G", totals=self.global_totals) if totals else _Group(global_key, "g")
        )
        global_window_group = _Group(global_key, "g")
        for e in events:
            ev = e.event
            p, o, t = e.partition, e.offset, e.event_time_s
            kind = KIND_CODES[ev.event_type]
            button = ev.button_id or ""
            video_id, user_id = ev.video_id, ev.user_id
            late = e.is_late
            buckets = NO_BUCKETS if late else bucket_names(t)
            # groups by id: each key name is built once per batch
            group = video_groups.get(video_id)
            if group is None:
                group = video_groups[video_id] = _Group(video(video_id), "v")
            # flat, VIDEO_STRIDE values per event (live.lua, video)
            group.events += (
                p,
                o,
                kind,
                button,
                e.compact_id,
                str(int(t // SEEN_BUCKET_S)),
                1 if late else 0,
                user_id,
                f"{p}:{o}",
                *(buckets if merged else NO_BUCKETS),
            )
            group.members.append(e)
            global_group.members.append(e)
            group = user_groups.get(user_id)
            if group is None:
                user_key = user(user_id)
                group = user_groups[user_id] = (
                    _Group(user_key, "U", totals=self.user_totals) if totals else _Group(user_key, "u")
                )
            group.members.append(e)
            if totals and merged:  # phase two is counted when it is sent; the windows ride in phase one
                continue
            surface = ev.surface or ""
            model_version, rec_slot = ev.model_version, ev.rec_slot
            slot = "" if model_version is None and rec_slot is None else slot_value(model_version, rec_slot)
            args: list[Any] = [p, o, kind, button, surface, slot, video_id, min(t, e.timestamp_ms / 1000)]
            if not totals:
                global_group.events.append(args)
                group.events.append([p, o, kind, button, video_id, round(t * 1000)])
            if late:
                args.append(1)
                continue
            minute, hour, day = buckets
            if merged:
                args += (0, hour)
                continue
            args.append(0)
            group = window_groups.get(video_id)
            if group is None:
                group = window_groups[video_id] = _Group(video(video_id), "v")
            group.events.append([p, o, kind, button, minute, hour, day, user_id])
            group.members.append(e)
            global_window_group.events.append([p, o, kind, button, surface, slot, hour])
            global_window_group.members.append(e)

        # Per partition, the first and last offset of the batch (events are in offset order per
        # partition): the span of a call that holds every event (``_calls``).
        span = ({e.partition: e.offset for e in reversed(events)}, {e.partition: e.offset for e in events})
        video_header: dict[str, Any] = {"seen_ttl": self.retention.seen_s, "stride": VIDEO_STRIDE}
        live_header: dict[str, Any] = {
            "weights": self._weights,
            "half_life_s": self._half_life_s,
            "renormalise_s": self._renormalise_s,
            "trending_max": self._trending_max,
            "now_s": int(time.time()),
            "eps_ttl": EPS_TTL_S,
        }
        if merged:
            video_header.update(self._windows_header, win=True)
            live_header.update(self._windows_header, win=True)
        profile_header = {"profile_ttl": self.retention.profile_s, "recent_cap": self._recent_cap}
        windows_header = self._windows_header
        global_windows = [global_window_group] if global_window_group.events else []
        return self._calls(Family.LIVE, "live", ROLE_VIDEOS, video_groups.values(), video_header, span), [
            *self._calls(Family.LIVE, "live", ROLE_GLOBAL, [global_group], live_header, span),
            *self._calls(Family.PROFILES, "profile", ROLE_USERS, user_groups.values(), profile_header, span),
            *self._calls(Family.WINDOWS, "windows", ROLE_WINDOWS, window_groups.values(), windows_header),
            *self._calls(Family.WINDOWS, "windows", ROLE_GLOBAL_WINDOWS, global_windows, windows_header),
        ]

    def phase_two_result(self, calls: list[LuaCall], replies: list[Any]) -> dict[str, list[CountedEvent]]:
        """Per user, the clicks phase two applied now (from the profile script's replies). Phase two of
        later batches goes as totals when every event of this one's {global} group was applied."""
        applied: dict[str, list[CountedEvent]] = {}
        all_applied: list[bool] = []  # per {global} group sent event by event
        for call, reply in zip(calls, replies, strict=True):
            if call.script == "live":
                all_applied += (
                    n == len(g.members) for g, n in zip(call.groups, reply, strict=True) if g.kind == "g"
                )
            if call.script != "profile":
                continue
            for group, flags in zip(call.groups, reply, strict=True):
                for member, flag in zip(group.members, flags, strict=True):
                    if flag == "1" and member.event.event_type == "click":
                        applied.setdefault(member.event.user_id, []).append(member)
        if all_applied and all(all_applied):
            self.send_totals = True
        return applied

    def global_totals(self, members: list[CountedEvent]) -> dict[str, Any]:
        """The {global} group as totals (live.lua, global_totals): what ``global`` would count from
        these events, all fresh. Events are counted by what their counters depend on (type, button,
        surface, rec slot, late or the hour), then each distinct combination once. Trending scores are
        summed relative to ``tref`` (the first event's hour); the script scales them to the stored t0."""
        combos: dict[tuple[Any, ...], int] = {}
        scores: dict[str, float] = {}
        merged = self.merged_windows
        weight_of, half_life = self._weight_of, self._half_life_s
        first = members[0]
        t_first = min(first.event_time_s, first.timestamp_ms / 1000)
        t_ref = t_first - t_first % 3600
        t_max = t_first
        for e in members:
            ev = e.event
            kind = ev.event_type
            late = e.is_late
            hour = int(e.event_time_s // 3600) if merged and not late else None
            combo = (kind, ev.button_id, ev.surface, ev.model_version, ev.rec_slot, late, hour)
            combos[combo] = combos.get(combo, 0) + 1
            t = min(e.event_time_s, e.timestamp_ms / 1000)
            if t > t_max:
                t_max = t
            video_id = ev.video_id
            scores[video_id] = scores.get(video_id, 0.0) + weight_of[kind] * 2 ** ((t - t_ref) / half_life)
        totals: dict[str, int] = {}
        ctr: dict[str, dict[str, int]] = {"button": {}, "surface": {}, "slot": {}}
        hours: dict[str, dict[str, dict[str, int]]] = {}
        for (kind, button, surface, model_version, rec_slot, late, hour), n in combos.items():
            metric = METRIC_OF[kind]
            slot = slot_value(model_version, rec_slot)
            # the CTR fields of the dimensions the events have a value for
            fields = [
                (dim, f"{value}|{metric}")
                for dim, value in (("button", button), ("surface", surface), ("slot", slot))
                if value
            ]
            _add(totals, metric, n)
            for dim, f in fields:
                _add(ctr[dim], f, n)
            if late:
                _add(totals, "late", n)
            elif hour is not None:
                name = hour_name(hour * 3600)
                h = hours.get(name)
                if h is None:
                    h = hours[name] = {"funnel": {}, "button": {}, "surface": {}, "slot": {}}
                _add(h["funnel"], metric, n)
                for dim, f in fields:
                    _add(h[dim], f, n)
        return {
            "n": len(members),
            "totals": totals,
            "ctr": ctr,
            "hours": hours,
            "scores": scores,
            "tref": t_ref,
            "tfirst": t_first,
            "tmax": t_max,
        }

    @staticmethod
    def user_totals(members: list[CountedEvent]) -> list[Any]:
        """One user's events as totals (profile.lua, user_totals): what ``user`` would count from them,
        all fresh, as [events, counts, latest time, its video, recent videos] (a list: about a thousand
        users per call, whose field names would otherwise be packed and unpacked for each)."""
        counts: dict[str, int] = {}
        recent: dict[str, None] = {}  # by the last click or conversion, oldest first
        t_max, video = -1, ""
        for e in members:
            ev = e.event
            kind, video_id = ev.event_type, ev.video_id
            metric = METRIC_OF[kind]
            counts[metric] = counts.get(metric, 0) + 1
            if kind == "click" and ev.button_id:
                f = f"button:{ev.button_id}"
                counts[f] = counts.get(f, 0) + 1
            if kind != "impression":
                recent.pop(video_id, None)
                recent[video_id] = None
            t_ms = round(e.event_time_s * 1000)
            if t_ms > t_max:
                t_max, video = t_ms, video_id
        return [len(members), counts, t_max, video, list(recent)]

    def _calls(
        self,
        family: Family,
        script: str,
        role: str,
        groups: Iterable[_Group],
        header: dict[str, Any],
        span: _Span | None = None,
    ) -> list[LuaCall]:
        """Groups of one role packed into calls: one per hash slot on a Cluster, one on a single Redis.
        ``span``: the offsets the call covers when it holds every event of the batch (else they are
        taken from its groups)."""
        client = self.router.client(family)
        full_header = {**header, "topic": self.topic, "role": role}
        if is_cluster_client(client):
            by_slot: dict[int, list[_Group]] = defaultdict(list)
            for group in groups:
                by_slot[_slot(group.base_key)].append(group)
            return [
                self._chain(
                    LuaCall(client, script, in_slot, self.keyspace.watermarks(slot_tag(slot)), full_header),
                    _span_of(in_slot),
                )
                for slot, in_slot in by_slot.items()
            ]
        groups = list(groups)
        if not groups:
            return []
        call = LuaCall(client, script, groups, self.keyspace.watermarks(), full_header)
        return [self._chain(call, span or _span_of(groups))]

    def _chain(self, call: LuaCall, span: _Span) -> LuaCall:
        """Sets the call's ``upto`` (per partition, the last offset of its events as planned, duplicates
        dropped later included) and ``after`` (common.lua, Watermark). Calls of a role are planned in
        the order they are sent; a call that starts at or below where the previous one ended (a retry,
        a replay after a rewind) gets no ``after``: the consumer runs those alone."""
        starts, upto = span
        call.upto = upto
        if any(g.totals is not None for g in call.groups):
            call.fresh_from = starts
        if not self.streams:  # one round at a time (a Cluster): nothing to chain, and no entry per slot
            return call
        role = (call.watermark_key, call.header["role"])
        last = self._last_planned
        for partition, offset in upto.items():
            previous = last.get((*role, partition))
            if previous is not None and previous < starts[partition]:
                call.after[partition] = previous
            last[(*role, partition)] = offset
        return call

    def execute(self, calls: list[LuaCall], reads: Sequence[Read] = ()) -> list[Any]:
        """Run the calls, then ``reads`` (plain commands, each with its client), in one pipeline per
        client and wait; the replies of the calls, then those of the reads. The scripts are loaded
        again once if a server lost them."""
        replies: list[Any] = [None] * (len(calls) + len(reads))
        for client, call_indexes, read_indexes in _by_client(calls, reads):
            scripts = self._scripts[id(client)]
            mine = [calls[i] for i in call_indexes]
            commands = [reads[i][1] for i in read_indexes]
            for attempt in range(2):
                results = self._send(client, scripts, mine, commands)
                if any(isinstance(r, NoScriptError) for r in results) and attempt == 0:
                    logger.warning(
                        "Redis lost the ClickPulse scripts (restart or failover?); loading them again"
                    )
                    scripts.load()
                    continue
                break
            slots = [*call_indexes, *(len(calls) + i for i in read_indexes)]
            for i, result in zip(slots, results, strict=True):
                if isinstance(result, Exception):
                    raise result
                replies[i] = result
        return replies

    @staticmethod
    def _send(
        client: RedisClient,
        scripts: ScriptSet,
        calls: Iterable[LuaCall],
        commands: Iterable[tuple[Any, ...]] = (),
    ) -> list[Any]:
        pipe = client.pipeline(transaction=False)
        for call in calls:
            # execute_command: ClusterPipeline blocks its evalsha() helper, the raw command is routed by key.
            pipe.execute_command(*_evalsha(call, scripts))
        for command in commands:
            pipe.execute_command(*command)
        return list(pipe.execute(raise_on_error=False))

    def send(self, calls: list[LuaCall], reads: Sequence[Read] = ()) -> list[SentPart]:
        """Write the calls, then ``reads``, to one ``ReplyStream`` per client (standalone Redis only)
        without waiting; ``collect`` reads the replies. A write that fails drops every stream's
        connection (the replies of everything written before are lost with it)."""
        parts: list[SentPart] = []
        try:
            for client, call_indexes, read_indexes in _by_client(calls, reads):
                stream = self._streams.get(id(client))
                if stream is None:
                    stream = self._streams[id(client)] = ReplyStream(client)
                scripts = self._scripts[id(client)]
                commands = [_evalsha(calls[i], scripts) for i in call_indexes]
                commands += [reads[i][1] for i in read_indexes]
                slots = [*call_indexes, *(len(calls) + i for i in read_indexes)]
                parts.append((stream, stream.write(commands), slots))
        except BaseException:
            self.drop_streams()
            raise
        return parts

    def collect(self, parts: list[SentPart], size: int) -> list[Any]:
        """The replies of ``send``'s parts in the order of its calls and reads (``size`` in all); raises
        the first error reply, or why a connection was lost. A lost connection drops every stream's
        (another stream's replies to this round, unread, would otherwise be taken for the next one's)."""
        replies: list[Any] = [None] * size
        try:
            for stream, written, slots in parts:
                for slot, reply in zip(slots, stream.read(written), strict=True):
                    replies[slot] = reply
        except BaseException:
            self.drop_streams()
            raise
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        return replies

    def drop_streams(self) -> None:
        for stream in self._streams.values():
            stream.drop()


def _evalsha(call: LuaCall, scripts: ScriptSet) -> tuple[Any, ...]:
    payload = _PACK(
        {
            **call.header,
            "k": [g.kind for g in call.groups],
            "g": [g.payload() for g in call.groups],
            "upto": call.upto,
            "after": call.after,
            "from": call.fresh_from,
        }
    )
    keys = [*(g.base_key for g in call.groups), call.watermark_key]
    return ("EVALSHA", scripts.sha(call.script), len(keys), *keys, payload)


def _by_client(calls: list[LuaCall], reads: Sequence[Read]) -> list[tuple[RedisClient, list[int], list[int]]]:
    """Per client (in order of first use): the indexes of its calls and of its reads."""
    by_client: dict[int, tuple[RedisClient, list[int], list[int]]] = {}
    for index, call in enumerate(calls):
        by_client.setdefault(id(call.client), (call.client, [], []))[1].append(index)
    for index, (client, _command) in enumerate(reads):
        by_client.setdefault(id(client), (client, [], []))[2].append(index)
    return list(by_client.values())


def _add(counts: dict[str, int], key: str, n: int) -> None:
    counts[key] = counts.get(key, 0) + n


def _span_of(groups: list[_Group]) -> _Span:
    """Per partition, the first and the last offset of the groups' events."""
    starts: dict[int, int] = {}
    upto: dict[int, int] = {}
    for group in groups:
        for e in group.members:
            p, o = e.partition, e.offset
            if o > upto.get(p, -1):
                upto[p] = o
            if o < starts.get(p, o + 1):
                starts[p] = o
    return starts, upto


def without_duplicates(calls: list[LuaCall]) -> list[LuaCall]:
    """Phase two's calls planned for a whole batch, less the events phase one marked as duplicates
    (groups left empty are dropped; a call left empty is kept: it still moves its watermark to its
    ``upto``, where the next call of its role starts)."""
    for call in calls:
        groups = []
        for group in call.groups:
            if group.totals is not None:  # counted from the members when sent
                group.members = [m for m in group.members if m.first]
            elif not all(m.first for m in group.members):
                pairs = [(a, m) for a, m in zip(group.events, group.members, strict=True) if m.first]
                group.events = [a for a, _m in pairs]
                group.members = [m for _a, m in pairs]
            if group.members:
                groups.append(group)
        call.groups = groups
    return calls
