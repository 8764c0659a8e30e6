"""Reconciliation of the stream's hourly Redis counters with the hourly engagement mart: pure parts.

The consumer counts an event in its event_time hour bucket only when it arrived within the allowed
lateness (``is_late`` false); the mart counts every event of the hour it rebuilt, late ones included
(its ``late_events`` column says how many). So for a closed hour, per video:

    redis count == mart count - late events of that type + counted rejects   (exact)
    redis unique users ≈ mart unique users (+ up to the counted rejects' users)  (HyperLogLog: 2 %,
                                                      or what register collisions explain)

and, for the whole hour, the stream's global hourly funnel equals the sum over videos, which also
catches a video missing on either side.

Counted rejects are records the export's expectation suite kept out of raw.click_events (they are in
raw.rejected_rows) although the stream counted them in an hour bucket: rejected for their event_time
only (so contract-valid events the consumer forwarded, and the earliest copy of a duplicate) and not
flagged ``is_late``, i.e. a client clock running ahead of the collector by more than the early allowance
plus the rest of the hour. The stream counts them in their event_time hour; the marts never see them.
Records rejected for anything else cannot have come through the consumer's contract check, or are later
copies of an event the stream counted once (uniqueness), or are late (never in hour buckets).
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from statistics import NormalDist
from typing import Any, Final

import orjson

from assets.kafka_export.expectations import EVENT_TIME_BOUNDS

logger = logging.getLogger(__name__)

COUNTED: Final = ("impressions", "clicks", "conversions")
EVENT_TYPE_METRIC: Final = {"impression": "impressions", "click": "clicks", "conversion": "conversions"}
UNIQUES_TOLERANCE: Final = 0.02
HLL_REGISTERS: Final = 16_384  # Redis's HyperLogLog
HLL_FALSE_ALARM: Final = 1e-4  # chance per video-hour that collisions alone exceed the allowance
ALL_VIDEOS: Final = "*"
EVENT_TIME_ONLY: Final = [EVENT_TIME_BOUNDS]

Pair = tuple[datetime, str]  # (event hour, aware UTC; video_id)


@dataclass(frozen=True, slots=True)
class MartRow:
    impressions: int
    clicks: int
    conversions: int
    unique_users: int
    late_events: int


@dataclass(frozen=True, slots=True)
class StreamCounts:
    impressions: int = 0
    clicks: int = 0
    conversions: int = 0
    unique_users: int = 0


@dataclass(frozen=True, slots=True)
class Mismatch:
    hour: datetime
    video_id: str
    metric: str
    redis: int
    mart: int
    expected_redis: int

    def to_metadata(self) -> dict[str, Any]:
        return {
            "hour": f"{self.hour:%Y-%m-%dT%H}",
            "video_id": self.video_id,
            "metric": self.metric,
            "redis": self.redis,
            "mart": self.mart,
            "expected_redis": self.expected_redis,
        }


@dataclass(slots=True)
class Reconciliation:
    hours: list[datetime]
    pairs: int = 0
    mismatches: list[Mismatch] = field(default_factory=list)
    not_comparable: list[Pair] = field(default_factory=list)
    redis_totals: dict[str, int] = field(default_factory=lambda: dict.fromkeys((*COUNTED, "unique_users"), 0))
    mart_totals: dict[str, int] = field(default_factory=lambda: dict.fromkeys((*COUNTED, "unique_users"), 0))
    late_events: int = 0
    counted_rejects: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTED, 0))

    @property
    def passed(self) -> bool:
        return not self.mismatches

    def to_metadata(self, sample: int = 50) -> dict[str, Any]:
        return {
            "hours": [f"{h:%Y-%m-%dT%H}" for h in self.hours],
            "video_hours_compared": self.pairs,
            "mismatches": len(self.mismatches),
            "mismatch_sample": [m.to_metadata() for m in self.mismatches[:sample]],
            "redis_totals": dict(self.redis_totals),
            "mart_totals": dict(self.mart_totals),
            "late_events_in_mart": self.late_events,
            "rejected_rows_counted_by_stream": dict(self.counted_rejects),
            "not_comparable": [f"{h:%Y-%m-%dT%H} {v}" for h, v in self.not_comparable[:sample]],
        }


def reconcilable_hours(
    window_start: datetime,
    window_end: datetime,
    *,
    lateness_minutes: int,
    now: datetime,
    retention_s: int,
) -> list[datetime]:
    """Event hours a run over the Kafka-hour window [start, end) completes, and Redis still holds.

    The run rebuilt event hours from floor(start - lateness); an event hour e is complete once every
    event that may count for it has arrived, i.e. e + 1h + lateness <= window end (and the clock).
    Hour buckets live ``retention_s`` after their last write, so older hours are left out.
    """
    lateness = timedelta(minutes=lateness_minutes)
    first = (window_start.astimezone(UTC) - lateness).replace(minute=0, second=0, microsecond=0)
    horizon = min(window_end.astimezone(UTC), now.astimezone(UTC))
    hours = []
    hour = first
    while hour + timedelta(hours=1) + lateness <= horizon:
        if hour + timedelta(seconds=retention_s) > now:
            hours.append(hour)
        hour += timedelta(hours=1)
    return hours


def fully_exported(
    hours: Sequence[datetime], exported: set[datetime], *, lateness_minutes: int, early_minutes: int
) -> list[datetime]:
    """The event hours every one of whose Kafka-hour partitions has been exported.

    Events of event hour e reach Kafka in [e - early, e + 1h + lateness); an hour whose partitions were
    not all exported (history older than the first export, a gap in a backfill) cannot agree with Redis,
    so it is left out rather than reported as a mismatch.
    """
    kept = []
    for hour in hours:
        first = (hour - timedelta(minutes=early_minutes)).replace(minute=0, second=0, microsecond=0)
        last = (hour + timedelta(hours=1, minutes=lateness_minutes) - timedelta(microseconds=1)).replace(
            minute=0, second=0, microsecond=0
        )
        needed, partition = [], first
        while partition <= last:
            needed.append(partition)
            partition += timedelta(hours=1)
        if all(p in exported for p in needed):
            kept.append(hour)
    return kept


def late_by_type(rows: Iterable[tuple[datetime, str, str]]) -> dict[tuple[datetime, str, str], int]:
    """(hour, video, metric) → late events, from (event_hour, video_id, event_type) rows of late events."""
    counts: dict[tuple[datetime, str, str], int] = {}
    for hour, video_id, event_type in rows:
        metric = EVENT_TYPE_METRIC.get(event_type)
        if metric is not None:
            key = (hour, video_id, metric)
            counts[key] = counts.get(key, 0) + 1
    return counts


def stream_counted_rejects(rows: Iterable[Mapping[str, Any]]) -> dict[Pair, StreamCounts]:
    """Per (event hour, video): the rejected records the stream counted in that hour bucket (see the
    module docstring), from raw.rejected_rows rows (``event_time``, ``failed_expectations``, ``raw_json``);
    ``unique_users`` is the number of distinct users among them."""
    counts: dict[Pair, dict[str, int]] = {}
    users: dict[Pair, set[str]] = {}
    for row in rows:
        if row.get("event_time") is None or not row.get("failed_expectations") or not row.get("raw_json"):
            continue
        if orjson.loads(row["failed_expectations"]) != EVENT_TIME_ONLY:
            continue
        record = orjson.loads(row["raw_json"])
        metric = EVENT_TYPE_METRIC.get(record.get("event_type"))
        if metric is None or record.get("is_late") or record.get("video_id") is None:
            continue
        moment = row["event_time"]
        moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
        pair = (moment.replace(minute=0, second=0, microsecond=0), str(record["video_id"]))
        here = counts.setdefault(pair, dict.fromkeys(COUNTED, 0))
        here[metric] += 1
        users.setdefault(pair, set()).add(str(record.get("user_id")))
    return {pair: StreamCounts(**here, unique_users=len(users[pair])) for pair, here in counts.items()}


def expected_collisions(users: int) -> float:
    """Pairs of ``users`` expected to share an HLL register: n(n-1)/2 pairs, each 1 in 16,384."""
    return users * (users - 1) / 2 / HLL_REGISTERS


@functools.cache
def hll_collision_allowance(users: int, false_alarm: float = HLL_FALSE_ALARM) -> int:
    """How far a Redis HyperLogLog of ``users`` distinct members may miss, from register collisions.

    Each pair of users shares one of the 16,384 registers with probability 1/16,384, and every
    shared register costs one count (the estimator adds the expected number back). Collisions are
    Poisson with mean λ = n(n-1)/2/16,384, so this is the smallest ``a`` with P(X > λ + a) below
    ``false_alarm``: 1 user for 8 users, 2 for 38, 3 for 74, a little over 2 % from a thousand on (the
    normal approximation from λ > 1,000, ~5,700 users); above 16,384 users (the registers fill) only the
    2 % tolerance applies. Cached: an hour's video-hours share few sizes."""
    if users > HLL_REGISTERS:
        return 0
    mean = expected_collisions(users)
    if mean > 1000:
        return math.ceil(NormalDist().inv_cdf(1 - false_alarm) * math.sqrt(mean))
    cdf, k = 0.0, -1  # cdf = P(X <= k)
    allowance = 0
    while True:
        while k < math.floor(mean + allowance):
            k += 1
            cdf += math.exp(k * math.log(mean) - mean - math.lgamma(k + 1)) if mean > 0 else float(k == 0)
        if 1.0 - cdf < false_alarm:
            return allowance
        allowance += 1


def uniques_agree(redis: int, mart: int, tolerance: float = UNIQUES_TOLERANCE, extra: int = 0) -> bool:
    """``redis`` (an estimate) agrees with a true count between ``mart`` and ``mart + extra``: within
    ``tolerance`` of it, or within what register collisions explain at that size."""
    nearest = min(max(redis, mart), mart + extra)
    size = max(redis, nearest)
    collisions = hll_collision_allowance(size)
    if redis > nearest:  # the estimator adds the expected collisions back: at most that much over
        collisions = min(collisions, math.floor(expected_collisions(size)))
    return abs(redis - nearest) <= max(math.floor(tolerance * size), collisions)


def reconcile(
    hours: Sequence[datetime],
    mart: Mapping[Pair, MartRow],
    late: Mapping[tuple[datetime, str, str], int],
    stream: Mapping[Pair, StreamCounts],
    stream_global: Mapping[datetime, StreamCounts],
    rejected: Mapping[Pair, StreamCounts] | None = None,
) -> Reconciliation:
    """Compare every (hour, video) of the mart or of the counted rejects, and every hour's totals, with
    the stream's counters."""
    result = Reconciliation(hours=list(hours))
    rejected = rejected or {}
    expected_global: dict[datetime, dict[str, int]] = {h: dict.fromkeys(COUNTED, 0) for h in hours}
    mart_global: dict[datetime, dict[str, int]] = {h: dict.fromkeys(COUNTED, 0) for h in hours}
    absent = MartRow(0, 0, 0, 0, 0)
    for hour, video_id in sorted(set(mart) | set(rejected)):
        if hour not in expected_global:
            continue
        row = mart.get((hour, video_id), absent)
        extra = rejected.get((hour, video_id), StreamCounts())
        result.pairs += 1
        result.late_events += row.late_events
        late_here = {m: late.get((hour, video_id, m), 0) for m in COUNTED}
        if row.late_events and row.late_events != sum(late_here.values()):
            # the mart counted only some of the late events present: per-type numbers are unknowable
            result.not_comparable.append((hour, video_id))
            continue
        counts = stream.get((hour, video_id), StreamCounts())
        for metric in COUNTED:
            mart_value = getattr(row, metric)
            expected = mart_value - (late_here[metric] if row.late_events else 0) + getattr(extra, metric)
            result.counted_rejects[metric] += getattr(extra, metric)
            redis_value = getattr(counts, metric)
            expected_global[hour][metric] += expected
            mart_global[hour][metric] += mart_value
            result.redis_totals[metric] += redis_value
            result.mart_totals[metric] += mart_value
            if redis_value != expected:
                result.mismatches.append(Mismatch(hour, video_id, metric, redis_value, mart_value, expected))
        result.redis_totals["unique_users"] += counts.unique_users
        result.mart_totals["unique_users"] += row.unique_users
        if not uniques_agree(counts.unique_users, row.unique_users, extra=extra.unique_users):
            result.mismatches.append(
                Mismatch(
                    hour, video_id, "unique_users", counts.unique_users, row.unique_users, row.unique_users
                )
            )
    for hour in hours:
        if any(h == hour for h, _ in result.not_comparable):
            continue
        totals = stream_global.get(hour, StreamCounts())
        for metric in COUNTED:
            redis_value = getattr(totals, metric)
            if redis_value != expected_global[hour][metric]:
                result.mismatches.append(
                    Mismatch(
                        hour,
                        ALL_VIDEOS,
                        metric,
                        redis_value,
                        mart_global[hour][metric],
                        expected_global[hour][metric],
                    )
                )
    return result
