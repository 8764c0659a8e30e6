"""Deterministic synthetic traffic for ClickPulse: the same seed gives the same bytes.

``Simulator`` walks a send clock across a time range (or follows the wall clock when sending live),
interleaves many concurrent viewer sessions and mixes in late, duplicated and malformed records in
configured shares. Records are generated lazily, so a million events need no more memory than the
ground truth they add to. The ``Truth`` it keeps counts exactly the valid, de-duplicated events it
emitted, and the planted taste clusters are exported with it, not with the dimension files.
"""

from __future__ import annotations

import logging
import random
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import orjson

from streaming.simulation.behaviour import BehaviourSettings, ViewerBehaviour
from streaming.simulation.catalog import Dimensions, build_dimensions, write_dimensions
from streaming.simulation.malformed import malformed_payload
from streaming.simulation.truth import LATE_THRESHOLD_MS, Truth, epoch_ms, iso_ms, recount_truth

logger = logging.getLogger(__name__)

__all__ = [
    "SimulatedRecord",
    "SimulationConfig",
    "Simulator",
    "Truth",
    "backfill_window",
    "recount_truth",
    "write_dimensions",
]

DEFAULT_START: Final = datetime(2024, 5, 1, tzinfo=UTC)
_RECENT_FOR_RETRIES: Final = 256  # duplicates re-send one of the last N valid events, like client retries
_MAX_JITTER_MS: Final = 1000


def backfill_window(hours: int, now: datetime | None = None) -> tuple[datetime, datetime]:
    """The last ``hours`` closed hours: [floor(now) - hours, floor(now))."""
    if hours < 1:
        raise ValueError("backfill needs at least one hour")
    current = (now or datetime.now(UTC)).astimezone(UTC)
    end = current.replace(minute=0, second=0, microsecond=0)
    return end - timedelta(hours=hours), end


@dataclass(frozen=True)
class SimulationConfig:
    """What to simulate. ``events`` counts every record sent: valid, duplicated and malformed."""

    users: int = 1000
    videos: int = 200
    events: int = 10_000
    seed: int = 42
    start: datetime = DEFAULT_START
    end: datetime = DEFAULT_START + timedelta(hours=24)
    late_share: float = 0.02  # of new valid events
    late_beyond_share: float = 0.5  # of late events: delayed past the allowed lateness
    duplicate_share: float = 0.01  # of records sent
    malformed_share: float = 0.005  # of records sent
    allowed_lateness_minutes: int = 60
    clusters: int = 6
    taste_strength: float = 0.85
    zipf_exponent: float = 1.1
    concurrent_sessions: int = 64
    model_versions: tuple[str, ...] = ("als-v1", "pop-v0")
    behaviour: BehaviourSettings = field(init=False)

    def __post_init__(self) -> None:
        if self.users < 1 or self.videos < 1 or self.events < 0 or self.clusters < 1:
            raise ValueError("users, videos and clusters must be >= 1 and events >= 0")
        for name in (
            "late_share",
            "late_beyond_share",
            "duplicate_share",
            "malformed_share",
            "taste_strength",
        ):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1")
        if self.duplicate_share + self.malformed_share >= 1.0:
            raise ValueError("duplicate_share + malformed_share must stay below 1")
        if self.start.tzinfo is None or self.end.tzinfo is None or self.end <= self.start:
            raise ValueError("start and end must be timezone-aware with start < end")
        if self.allowed_lateness_minutes < 15:
            raise ValueError("allowed_lateness_minutes must be >= 15 to tell late from very late events")
        if not self.model_versions or self.concurrent_sessions < 1:
            raise ValueError("need at least one model version and one concurrent session")
        settings = BehaviourSettings(taste_strength=self.taste_strength, model_versions=self.model_versions)
        object.__setattr__(self, "behaviour", settings)


@dataclass(frozen=True, slots=True)
class SimulatedRecord:
    """One record as it goes on the wire; ``event`` is None for malformed payloads."""

    payload: bytes
    valid: bool
    event: dict[str, Any] | None
    is_duplicate: bool
    is_late: bool
    # what a backfill stamps: the event_time for events, the send time for malformed ones (None when live)
    kafka_timestamp_ms: int | None

    @property
    def key(self) -> bytes | None:
        """Kafka key: the user_id, so one user's events stay ordered on one partition."""
        return None if self.event is None else str(self.event["user_id"]).encode()

    @property
    def timestamp_ms(self) -> int | None:
        return self.kafka_timestamp_ms


@dataclass(frozen=True, slots=True)
class _Sent:
    payload: bytes
    event: dict[str, Any]
    event_time_ms: int
    is_late: bool


class Simulator:
    """Generates the traffic of ``config`` once; iterate it to get ``SimulatedRecord``s in send order.

    ``wall_clock`` (seconds since the epoch, e.g. ``time.time``) switches from the scheduled clock over
    ``config.start``..``config.end`` to real time, for live sending; bytes are then no longer repeatable.
    """

    def __init__(self, config: SimulationConfig, *, wall_clock: Callable[[], float] | None = None) -> None:
        self.config = config
        self.dimensions: Dimensions = build_dimensions(
            config.seed,
            users=config.users,
            videos=config.videos,
            clusters=config.clusters,
            zipf_exponent=config.zipf_exponent,
            reference=config.start.date(),
        )
        self.truth = Truth()
        self._rng = random.Random(f"clickpulse-events:{config.seed}")
        self._wall_clock = wall_clock
        self._behaviour = ViewerBehaviour(self._rng, self.dimensions, config.behaviour)
        self._started = False
        self._late_owed = 0

    def __iter__(self) -> Iterator[SimulatedRecord]:
        return self.records()

    def records(self) -> Iterator[SimulatedRecord]:
        """The records, lazily; the truth grows as they are consumed. Can be iterated only once."""
        if self._started:
            raise RuntimeError("a Simulator generates its traffic once; create a new one to start over")
        self._started = True
        return self._generate()

    def _clock_ms(self, index: int, start_ms: int, span_ms: int) -> int:
        if self._wall_clock is not None:
            return int(self._wall_clock() * 1000)
        return start_ms + span_ms * index // max(1, self.config.events)

    def _generate(self) -> Iterator[SimulatedRecord]:
        config, rng = self.config, self._rng
        start_ms, end_ms = epoch_ms(config.start), epoch_ms(config.end)
        pool = [self._behaviour.session() for _ in range(config.concurrent_sessions)]
        recent: deque[_Sent] = deque(maxlen=_RECENT_FOR_RETRIES)
        for index in range(config.events):
            clock = self._clock_ms(index, start_ms, end_ms - start_ms)
            draw = rng.random()
            if draw < config.malformed_share:
                yield self._malformed(recent, clock)
            elif draw < config.malformed_share + config.duplicate_share and recent:
                sent = rng.choice(recent)
                self.truth.add_duplicate()
                yield SimulatedRecord(sent.payload, True, sent.event, True, sent.is_late, sent.event_time_ms)
            else:
                sent = self._next_event(pool, clock, start_ms, bool(recent))
                recent.append(sent)
                yield SimulatedRecord(sent.payload, True, sent.event, False, sent.is_late, sent.event_time_ms)

    def _next_body(self, pool: list[Iterator[dict[str, Any]]]) -> dict[str, Any]:
        slot = self._rng.randrange(len(pool))
        while True:
            body = next(pool[slot], None)
            if body is not None:
                return body
            pool[slot] = self._behaviour.session()

    def _event_time(self, clock: int, start_ms: int, may_be_late: bool) -> tuple[int, bool, bool]:
        """(event_time_ms, late, beyond the allowed lateness) for an event sent at ``clock``.

        A late event must still fall inside the time range; one that cannot yet (early in the range) is
        owed and placed on a later event, so the realised share matches ``late_share``.
        """
        config, rng = self.config, self._rng
        if may_be_late and rng.random() < config.late_share:
            self._late_owed += 1
        if self._late_owed:
            lateness_ms = config.allowed_lateness_minutes * 60_000
            beyond = rng.random() < config.late_beyond_share
            if beyond:
                shortest, longest = lateness_ms * 3 // 2, lateness_ms * 6
            else:
                shortest, longest = 2 * LATE_THRESHOLD_MS, lateness_ms * 9 // 10
            if self._wall_clock is None:
                longest = min(longest, clock - start_ms)
            if longest >= shortest:
                self._late_owed -= 1
                return clock - rng.randint(shortest, longest), True, beyond
        jitter = rng.randrange(_MAX_JITTER_MS)
        if self._wall_clock is None and clock - jitter < start_ms:
            jitter = 0
        return clock - jitter, False, False

    def _next_event(
        self, pool: list[Iterator[dict[str, Any]]], clock: int, start_ms: int, may_be_late: bool
    ) -> _Sent:
        body = self._next_body(pool)
        event_time_ms, late, beyond = self._event_time(clock, start_ms, may_be_late)
        event = {
            "event_id": str(uuid.UUID(int=self._rng.getrandbits(128), version=4)),
            "event_type": body["event_type"],
            "event_time": iso_ms(event_time_ms),
            **body,
        }
        self.truth.add_event(event, event_time_ms, late=late, beyond_lateness=beyond)
        return _Sent(orjson.dumps(event), event, event_time_ms, late)

    def _malformed(self, recent: deque[_Sent], clock: int) -> SimulatedRecord:
        if recent:
            template = dict(self._rng.choice(recent).event)
        else:
            user = self.dimensions.users[0]
            template = {
                "event_type": "click",
                "user_id": user.user_id,
                "session_id": str(uuid.UUID(int=self._rng.getrandbits(128), version=4)),
                "video_id": self.dimensions.videos[0].video_id,
                "button_id": "play",
                "playback_position_s": 0.0,
                "surface": "home",
            }
        template["event_id"] = str(uuid.UUID(int=self._rng.getrandbits(128), version=4))
        template["event_time"] = iso_ms(clock)
        _, payload = malformed_payload(self._rng, template)
        self.truth.add_malformed()
        return SimulatedRecord(payload, False, None, False, False, None if self._wall_clock else clock)

    def write_dimensions(self, directory: Path) -> list[Path]:
        """video_catalog.csv and user_profiles.csv for the warehouse and Redis enrichment."""
        return write_dimensions(directory, self.dimensions)

    def planted_clusters(self) -> dict[str, Any]:
        """The hidden structure a recommender should recover: cluster genre mixes and membership."""
        return {
            "clusters": {c.cluster_id: dict(c.genres) for c in self.dimensions.clusters},
            "users": {u.user_id: u.cluster_id for u in self.dimensions.users},
            "genres": {v.video_id: v.genre for v in self.dimensions.videos},
        }

    def truth_document(self) -> dict[str, Any]:
        """Everything the truth file holds: the run's settings, the counts and the planted clusters."""
        config = self.config
        meta = {
            "seed": config.seed,
            "users": config.users,
            "videos": config.videos,
            "events": config.events,
            "start": iso_ms(epoch_ms(config.start)),
            "end": iso_ms(epoch_ms(config.end)),
            "late_share": config.late_share,
            "duplicate_share": config.duplicate_share,
            "malformed_share": config.malformed_share,
            "allowed_lateness_minutes": config.allowed_lateness_minutes,
            "late_threshold_ms": LATE_THRESHOLD_MS,
            "clock": "wall" if self._wall_clock is not None else "scheduled",
        }
        return {"meta": meta, **self.truth.to_dict(), "planted_clusters": self.planted_clusters()}

    def write_truth(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(
            orjson.dumps(self.truth_document(), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
        )
