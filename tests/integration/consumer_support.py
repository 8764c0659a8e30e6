"""Helpers for the consumer's integration tests: traffic, an independent expected state, Kafka I/O.

``Expected`` recounts what a test sent with nothing but the event contract and plain arithmetic (no
keyspace code), so a test compares Redis with numbers it computed itself.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import (
    Consumer,
    ConsumerGroupTopicPartitions,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient

from clickpulse.settings import PROJECT_ROOT, Settings
from streaming.contract import decode_and_validate
from streaming.kafka_io import end_offsets, is_transient
from streaming.simulator import SimulationConfig, Simulator, Truth, backfill_window
from tests.support.uniques import uniques_problem

WEIGHTS = {"impression": 0.1, "click": 1.0, "conversion": 5.0}
HALF_LIFE_S = 6 * 3600.0
METRIC = {"click": "clicks", "impression": "impressions", "conversion": "conversions"}


@dataclass(frozen=True, slots=True)
class Record:
    """One Kafka record a test sends."""

    value: bytes | None
    key: bytes | None
    timestamp_ms: int


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def simulated(
    events: int, seed: int, hours: int = 3, users: int = 300, videos: int = 60
) -> tuple[list[Record], Truth]:
    """The simulator's backfill traffic over the last ``hours`` closed hours (timestamp = event_time)."""
    start, end = backfill_window(hours)
    sim = Simulator(
        SimulationConfig(events=events, seed=seed, start=start, end=end, users=users, videos=videos)
    )
    records = [Record(r.payload, r.key, int(r.kafka_timestamp_ms or 0)) for r in sim]
    return records, sim.truth


def handmade(count: int, seed: int, now_ms: int, lateness_s: int, late_share: float = 0.25) -> list[Record]:
    """Events on their own videos/users: some beyond the lateness, some in the current minute."""
    rng = random.Random(seed)
    out: list[Record] = []
    for i in range(count):
        kind = rng.choice(["click", "click", "impression", "impression", "conversion"])
        if rng.random() < late_share:
            event_ms = now_ms - rng.randint(lateness_s * 1000 + 120_000, 3 * 3600 * 1000)
            ts = event_ms + lateness_s * 1000 + rng.randint(60_000, 600_000)
            ts = min(ts, now_ms)
            if ts - event_ms <= lateness_s * 1000:
                event_ms = ts - lateness_s * 1000 - 60_000
        else:
            event_ms = now_ms - rng.randint(0, 2 * 3600 * 1000) if i % 3 else now_ms - rng.randint(0, 30_000)
            ts = min(now_ms, event_ms + rng.randint(0, 5000))
        event: dict[str, Any] = {
            "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "event_type": kind,
            "event_time": iso(event_ms),
            "user_id": f"hm-u{rng.randint(1, 40)}",
            "session_id": f"s{rng.randint(1, 99)}",
            "video_id": f"hm-v{rng.randint(1, 12)}",
        }
        if kind == "click":
            event["button_id"] = rng.choice(["hm_play", "hm_pause", "hm_like"])
            event["playback_position_s"] = round(rng.uniform(0, 3000), 1)
        if rng.random() < 0.5:
            event["surface"] = rng.choice(["hm_home", "hm_rec_row"])
        if rng.random() < 0.3:
            event["rec_slot"] = rng.randint(0, 5)
            if rng.random() < 0.8:
                event["model_version"] = "hm-model"
        if kind == "conversion":
            event["conversion_type"] = "subscribe"
        out.append(Record(orjson.dumps(event), event["user_id"].encode(), ts))
    return out


def with_duplicates(records: list[Record], share: float, seed: int, now_ms: int) -> list[Record]:
    """Re-send some valid records (client retries): same bytes and key, received at once, a little
    later, or more than an hour later (so the dedupe looks back across hour buckets)."""
    rng = random.Random(seed)
    out: list[Record] = []
    pending: list[tuple[int, Record]] = []
    for i, record in enumerate(records):
        out.append(record)
        if record.value is not None and rng.random() < share:
            delay_ms = rng.choice([0, 1000, 3_700_000])
            again = Record(record.value, record.key, min(now_ms, record.timestamp_ms + delay_ms))
            pending.append((i + rng.choice([0, 1, 50, 500]), again))
        out.extend(r for due, r in pending if due <= i)
        pending = [(due, r) for due, r in pending if due > i]
    out.extend(r for _, r in pending)
    return out


def garbage(now_ms: int) -> list[Record]:
    """Records the consumer must dead-letter without crashing."""
    good = {
        "event_id": str(uuid.uuid4()),
        "event_type": "click",
        "event_time": iso(now_ms),
        "user_id": "bad-u",
        "session_id": "s",
        "video_id": "bad-v",
        "button_id": "play",
        "playback_position_s": 1.0,
    }
    payloads: list[bytes | None] = [
        b"\xff\xfe\x00\x81 not utf-8 \xc3\x28",
        b'{"event_id": ',
        b"[1, 2, 3]",
        b"null",
        b"",
        None,
        orjson.dumps({**good, "event_type": "tap"}),
        orjson.dumps({k: v for k, v in good.items() if k != "user_id"}),
        orjson.dumps({**good, "playback_position_s": "ten"}),
        orjson.dumps({**good, "button_id": None}),
        orjson.dumps({**good, "event_time": "yesterday"}),
        orjson.dumps({**good, "properties": {"blob": "x" * 40_000}}),
        os.urandom(64),
    ]
    return [Record(p, b"bad-u", now_ms) for p in payloads]


def traffic(settings: Settings, events: int, seed: int) -> tuple[list[Record], Truth]:
    """Simulator backfill + hand-made late/current events + garbage, with re-sent duplicates."""
    now = now_ms()
    sim_records, truth = simulated(events, seed)
    extra = handmade(events // 10, seed, now, settings.allowed_lateness_minutes * 60)
    bad = garbage(now)
    mixed = sim_records[: len(sim_records) // 2] + bad + extra + sim_records[len(sim_records) // 2 :]
    return with_duplicates(mixed, 0.02, seed, now), truth


@dataclass
class _Totals:
    counts: Counter[str] = field(default_factory=Counter)
    users: set[str] = field(default_factory=set)


@dataclass
class Expected:
    """What Redis must hold after the consumer applied ``records`` once each, recounted independently."""

    lateness_s: int
    now_s: float
    valid: int = 0
    duplicates: int = 0
    invalid: int = 0
    late: int = 0
    videos: dict[str, _Totals] = field(default_factory=lambda: defaultdict(_Totals))
    minutes: dict[tuple[str, int], Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    hours: dict[tuple[str, int], _Totals] = field(default_factory=lambda: defaultdict(_Totals))
    days: dict[tuple[str, int], set[str]] = field(default_factory=lambda: defaultdict(set))
    totals: Counter[str] = field(default_factory=Counter)
    ctr: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    ctr_hours: dict[tuple[str, int], Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    trending: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    first_events: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def of(cls, records: Iterable[Record], lateness_s: int, now_s: float) -> Expected:
        exp = cls(lateness_s=lateness_s, now_s=now_s)
        seen: set[str] = set()
        for record in records:
            outcome = decode_and_validate(record.value) if record.value is not None else None
            if outcome is None or outcome.event is None:
                exp.invalid += 1
                continue
            event = outcome.event
            if event.event_id in seen:
                exp.duplicates += 1
                continue
            seen.add(event.event_id)
            exp._add(event, record.timestamp_ms)
        return exp

    def _add(self, event: Any, ts_ms: int) -> None:
        self.valid += 1
        et_ms = round(event.event_time.timestamp() * 1000)
        late = ts_ms - et_ms > self.lateness_s * 1000
        self.late += late
        metric = METRIC[event.event_type]
        v = self.videos[event.video_id]
        v.counts[metric] += 1
        v.users.add(event.user_id)
        if late:
            v.counts["late"] += 1
        if event.event_type == "click" and event.button_id:
            v.counts[f"clicks:{event.button_id}"] += 1
        self.totals["events"] += 1
        self.totals[metric] += 1
        self.totals["late"] += late
        slot = None
        if event.rec_slot is not None or event.model_version is not None:
            slot = f"{event.model_version or '-'}|{'-' if event.rec_slot is None else event.rec_slot}"
        dims = {"button": event.button_id, "surface": event.surface, "slot": slot}
        for dim, value in dims.items():
            if value:
                self.ctr[dim][f"{value}|{metric}"] += 1
        t = min(et_ms, ts_ms) / 1000
        self.trending[event.video_id] += WEIGHTS[event.event_type] * 2 ** ((t - self.now_s) / HALF_LIFE_S)
        if not late:
            minute, hour, day = et_ms // 60_000, et_ms // 3_600_000, et_ms // 86_400_000
            m = self.minutes[(event.video_id, minute)]
            h = self.hours[(event.video_id, hour)]
            for c in (m, h.counts):
                c[metric] += 1
                if event.event_type == "click" and event.button_id:
                    c[f"clicks:{event.button_id}"] += 1
            h.users.add(event.user_id)
            self.days[(event.video_id, day)].add(event.user_id)
            self.ctr_hours[("all", hour)][metric] += 1
            for dim, value in dims.items():
                if value:
                    self.ctr_hours[(dim, hour)][f"{value}|{metric}"] += 1
        u = self.users.setdefault(
            event.user_id,
            {"counts": Counter(), "buttons": Counter(), "recent": [], "last_seen_ms": -1, "last_video": None},
        )
        u["counts"]["events"] += 1
        u["counts"][metric] += 1
        if event.event_type == "click" and event.button_id:
            u["buttons"][event.button_id] += 1
        if event.event_type != "impression":
            if event.video_id in u["recent"]:
                u["recent"].remove(event.video_id)
            u["recent"].insert(0, event.video_id)
        if et_ms > u["last_seen_ms"]:
            u["last_seen_ms"] = et_ms
            u["last_video"] = event.video_id
        self.first_events.append(
            {"event_id": event.event_id, "user_id": event.user_id, "ts": ts_ms, "late": late}
        )

    # Windows as the API defines them, by plain arithmetic.
    def window(self, video_id: str, which: str) -> dict[str, Any]:
        now_minute, now_hour = int(self.now_s // 60), int(self.now_s // 3600)
        counts: Counter[str] = Counter()
        users: set[str] = set()
        if which == "last_hour":
            for minute in range(now_minute - 59, now_minute + 1):
                counts.update(self.minutes.get((video_id, minute), Counter()))
            for hour in (now_hour - 1, now_hour):
                users |= self.hours[(video_id, hour)].users if (video_id, hour) in self.hours else set()
        else:
            for hour in range(now_hour - 23, now_hour + 1):
                if (video_id, hour) in self.hours:
                    counts.update(self.hours[(video_id, hour)].counts)
                    users |= self.hours[(video_id, hour)].users
        return {"counts": counts, "unique_users": len(users), "users": users}


def compare(
    router: Any, keyspace: Any, exp: Expected, recent_cap: int = 50, live_only: bool = False
) -> list[str]:
    """Every Redis family against ``exp``; returns the differences (empty when all match).
    ``live_only`` checks just the live counters (no TTL), which must survive eviction."""
    from streaming.keyspace import read_ctr, read_global, read_trending, read_user_profile, read_video_stats
    from streaming.redis_conn import Family

    problems: list[str] = []
    windows = router.client(Family.WINDOWS)

    def check(what: str, got: Any, want: Any) -> None:
        if got != want:
            problems.append(f"{what}: redis {got!r} != expected {want!r}")

    for video_id, totals in exp.videos.items():
        stats = read_video_stats(router, video_id, exp.now_s, keyspace=keyspace)
        for metric in ("clicks", "impressions", "conversions"):
            check(f"{video_id} {metric}", stats[metric], totals.counts[metric])
        buttons = {k[7:]: n for k, n in totals.counts.items() if k.startswith("clicks:")}
        check(f"{video_id} clicks_by_button", stats["clicks_by_button"], dict(sorted(buttons.items())))
        check(f"{video_id} late", stats["late_events"], totals.counts["late"])
        if problem := uniques_problem(windows, video_id, stats["unique_users"], totals.users):
            problems.append(problem)
        for which in () if live_only else ("last_hour", "last_24h"):
            want = exp.window(video_id, which)
            got = stats[which]
            for metric in ("clicks", "impressions", "conversions"):
                check(f"{video_id} {which} {metric}", got[metric], want["counts"][metric])
            wb = {k[7:]: n for k, n in want["counts"].items() if k.startswith("clicks:")}
            check(f"{video_id} {which} buttons", got["clicks_by_button"], dict(sorted(wb.items())))
            if problem := uniques_problem(windows, f"{video_id} {which}", got["unique_users"], want["users"]):
                problems.append(problem)
    for (video_id, hour), h in ({} if live_only else exp.hours).items():
        name = datetime.fromtimestamp(hour * 3600, UTC).strftime("%Y%m%d%H")
        raw = windows.hgetall(keyspace.video_hour(video_id, name))
        check(f"{video_id} hour {name}", {k: int(v) for k, v in raw.items()}, dict(+h.counts))
        est = windows.pfcount(keyspace.video_uniques_hour(video_id, name))
        if problem := uniques_problem(windows, f"{video_id} hour {name}", est, h.users):
            problems.append(problem)
    for (video_id, day), users in ({} if live_only else exp.days).items():
        name = datetime.fromtimestamp(day * 86400, UTC).strftime("%Y%m%d")
        est = windows.pfcount(keyspace.video_uniques_day(video_id, name))
        if problem := uniques_problem(windows, f"{video_id} day {name}", est, users):
            problems.append(problem)

    glob = read_global(router, exp.now_s, keyspace=keyspace, trending_limit=100_000)
    check(
        "global totals",
        glob["totals"],
        {k: exp.totals[k] for k in ("clicks", "impressions", "conversions", "events", "late")},
    )
    for dim in ("button", "surface", "slot"):
        want = {}
        for field_name, n in exp.ctr[dim].items():
            value, _, metric = field_name.rpartition("|")
            want.setdefault(value, {"clicks": 0, "impressions": 0, "conversions": 0})[metric] = n
        got = {
            k: {m: v[m] for m in ("clicks", "impressions", "conversions")}
            for k, v in read_ctr(router, dim, keyspace=keyspace).items()
        }
        check(f"ctr {dim}", got, dict(sorted(want.items())))
    for (dim, hour), counts in ({} if live_only else exp.ctr_hours).items():
        name = datetime.fromtimestamp(hour * 3600, UTC).strftime("%Y%m%d%H")
        key = keyspace.global_hour(name) if dim == "all" else keyspace.ctr_hour(dim, name)
        raw = windows.hgetall(key)
        check(f"hourly {dim} {name}", {k: int(v) for k, v in raw.items()}, dict(+counts))
    trending = {
        item["video_id"]: item["score"]
        for item in read_trending(router, 100_000, exp.now_s, keyspace=keyspace)
    }
    check("trending members", sorted(trending), sorted(exp.trending))
    for video_id, score in exp.trending.items():
        got_score = trending.get(video_id, 0.0)
        if abs(got_score - score) > 1e-6 * max(1.0, score):
            problems.append(f"trending {video_id}: {got_score} vs {score}")

    for user_id, u in ({} if live_only else exp.users).items():
        profile = read_user_profile(router, user_id, keyspace=keyspace)
        got = {k: profile[k] for k in ("events", "clicks", "impressions", "conversions")}
        check(f"user {user_id} counts", got, {k: u["counts"][k] for k in got})
        check(f"user {user_id} buttons", profile["button_affinities"], dict(u["buttons"]))
        check(f"user {user_id} recent", profile["recent_videos"], u["recent"][:recent_cap])
        check(f"user {user_id} last_video", profile["last_video"], u["last_video"])
        want_seen = datetime.fromtimestamp(u["last_seen_ms"] / 1000, UTC).isoformat()
        check(f"user {user_id} last_seen", profile["last_seen"], want_seen)
    return problems


def compare_with_simulator_truth(
    router: Any, keyspace: Any, truth: Truth, hours_truth: Truth | None = None
) -> list[str]:
    """The simulator's own ground truth: per video totals and uniques, per video-hour, buttons, surfaces,
    (rec_slot, model_version); only for the simulator's videos (tests add their own elsewhere).

    ``hours_truth`` holds only the events the stream may bucket by hour (those within the allowed
    lateness) when that differs from ``truth``, as it does for live traffic with late events."""
    from streaming.keyspace import read_ctr, read_video_stats
    from streaming.redis_conn import Family

    doc = truth.to_dict()
    hours_doc = (hours_truth or truth).to_dict()
    problems: list[str] = []
    windows = router.client(Family.WINDOWS)
    for video_id, want in doc["videos"].items():
        stats = read_video_stats(router, video_id, keyspace=keyspace)
        for metric in ("clicks", "impressions", "conversions", "clicks_by_button"):
            if stats[metric] != want[metric]:
                problems.append(f"{video_id} {metric}: {stats[metric]} vs truth {want[metric]}")
        if problem := uniques_problem(windows, video_id, stats["unique_users"], truth.video_users(video_id)):
            problems.append(problem)
    for video_id, hours in hours_doc["video_hours"].items():
        for iso_hour, want in hours.items():
            name = iso_hour[0:4] + iso_hour[5:7] + iso_hour[8:10] + iso_hour[11:13]
            raw = windows.hgetall(keyspace.video_hour(video_id, name))
            got = {m: int(raw.get(m, 0)) for m in ("clicks", "impressions", "conversions")}
            if got != {m: want[m] for m in got}:
                problems.append(f"{video_id} {iso_hour}: {got} vs truth {want}")
            est = windows.pfcount(keyspace.video_uniques_hour(video_id, name))
            users = (hours_truth or truth).video_hour_users(video_id, iso_hour)
            if problem := uniques_problem(windows, f"{video_id} {iso_hour}", est, users):
                problems.append(problem)
    return problems + _compare_dimensions(router, keyspace, doc, read_ctr)


def _compare_dimensions(router: Any, keyspace: Any, doc: Mapping[str, Any], read_ctr: Any) -> list[str]:
    problems = []
    buttons = read_ctr(router, "button", keyspace=keyspace)
    for button, clicks in doc["buttons"].items():
        if buttons.get(button, {}).get("clicks") != clicks:
            problems.append(f"button {button}: {buttons.get(button)} vs truth clicks {clicks}")
    surfaces = read_ctr(router, "surface", keyspace=keyspace)
    for surface, want in doc["surfaces"].items():
        got = {m: surfaces.get(surface, {}).get(m) for m in want}
        if got != want:
            problems.append(f"surface {surface}: {got} vs truth {want}")
    slots = read_ctr(router, "slot", keyspace=keyspace)
    for row in doc["rec_slots"]:
        value = f"{row['model_version'] or '-'}|{row['rec_slot']}"
        got = {m: slots.get(value, {}).get(m) for m in ("impressions", "clicks")}
        if got != {"impressions": row["impressions"], "clicks": row["clicks"]}:
            problems.append(f"slot {value}: {got} vs truth {row}")
    return problems


# Kafka helpers.
def produce(bootstrap: str, topic: str, records: Iterable[Record]) -> int:
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5})
    n = 0
    for r in records:
        while True:
            try:
                producer.produce(topic, value=r.value, key=r.key, timestamp=r.timestamp_ms)
                break
            except BufferError:
                producer.poll(0.1)
        n += 1
    assert producer.flush(60) == 0
    return n


def read_topic(bootstrap: str, topic: str, expected: int, timeout_s: float = 30) -> list[Any]:
    """Every record of ``topic`` (at least ``expected`` of them, or what arrived within the timeout)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"reader.{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
        }
    )
    meta = consumer.list_topics(topic, timeout=10).topics[topic]
    consumer.assign([TopicPartition(topic, p, 0) for p in meta.partitions])
    out: list[Any] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for msg in consumer.consume(num_messages=1000, timeout=0.5):
            if msg.error() is None:
                out.append(msg)
        if len(out) >= expected:
            # drain what else might be there
            extra = consumer.consume(num_messages=1000, timeout=1.0)
            out.extend(m for m in extra if m.error() is None)
            if not extra:
                break
    consumer.close()
    return out


def group_assignment(bootstrap: str, group: str, timeout_s: float = 60.0) -> list[list[int]]:
    """The partitions each live member of ``group`` holds now, one sorted list per member.

    Retriable errors (a coordinator that moved or is still loading, as right after a cluster starts)
    are asked again until ``timeout_s``."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            description = admin.describe_consumer_groups([group])[group].result(timeout=30)
            break
        except KafkaException as exc:
            if not is_transient(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    return sorted(
        sorted(tp.partition for tp in member.assignment.topic_partitions) for member in description.members
    )


def reset_group(bootstrap: str, group: str, topic: str) -> None:
    """Rewind the (inactive) group to the first offset of every partition, like a replay."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    ends = end_offsets(bootstrap, topic)
    request = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p, 0) for p in ends])
    for future in admin.alter_consumer_group_offsets([request]).values():
        future.result(timeout=30)


# Redis snapshots for the replay check.
def redis_state(
    client: Any, prefix: str, skip: tuple[str, ...] = (":lag", ":live:lock", ":eps:")
) -> dict[str, Any]:
    """Every key under ``prefix`` with its value (HLLs by their raw bytes), TTLs left out."""
    state: dict[str, Any] = {}
    for key in client.scan_iter(match=f"{prefix}:*", count=1000):
        if any(s in key for s in skip):
            continue
        kind = client.type(key)
        if kind == "hash":
            state[key] = client.hgetall(key)
        elif kind == "zset":
            state[key] = client.zrange(key, 0, -1, withscores=True)
        elif kind == "list":
            state[key] = client.lrange(key, 0, -1)
        elif kind == "string":
            state[key] = client.pfcount(key) if ":uniq" in key else client.get(key)
        else:
            state[key] = kind
    return state


# A consumer in its own process, for kill tests.
def consumer_env(settings: Settings, prefix: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
            "REDIS_URL": settings.redis_url,
            "CLICKPULSE_TOPIC_RAW": settings.topic_raw,
            "CLICKPULSE_TOPIC_ENRICHED": settings.topic_enriched,
            "CLICKPULSE_TOPIC_DLQ": settings.topic_dlq,
            "CLICKPULSE_REDIS_PREFIX": prefix,
            "CLICKPULSE_LIVE_CHANNEL_PREFIX": prefix,
            "CLICKPULSE_CONSUMER_SESSION_TIMEOUT_MS": "6000",
            "CLICKPULSE_ALLOWED_LATENESS_MINUTES": str(settings.allowed_lateness_minutes),
        }
    )
    env.update(extra or {})
    return env


def start_consumer_process(
    env: Mapping[str, str], group: str, batch_size: int, log: Path
) -> subprocess.Popen[bytes]:
    handle = open(log, "ab")  # noqa: SIM115 - the child keeps writing after this returns
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "clickpulse.cli",
            "consumer",
            "--group",
            group,
            "--batch-size",
            str(batch_size),
            "--metrics-port",
            "0",
        ],
        env=dict(env),
        cwd=PROJECT_ROOT,
        stdout=handle,
        stderr=subprocess.STDOUT,
    )


def wait_until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def counted(router: Any, keyspace: Any) -> int:
    """Events the consumers counted so far (all-time global total)."""
    from streaming.keyspace import read_global

    return int(read_global(router, keyspace=keyspace)["totals"]["events"])


def now_ms() -> int:
    return int(time.time() * 1000)


def hours_ago_ms(hours: float) -> int:
    return int((datetime.now(UTC) - timedelta(hours=hours)).timestamp() * 1000)
