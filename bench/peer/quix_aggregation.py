"""The peer: ClickPulse's real-time aggregation written with Quix Streams, on the same topic.

Runs in its own environment (``bench/.peer-venv``, see ``bench/peer_env.py``): Quix Streams pins an
older confluent-kafka than ClickPulse. Imports nothing from ClickPulse; key names and TTLs come from the
command line so Redis holds the same keys ClickPulse writes.

Two modes, each an ``Application`` + ``StreamingDataFrame`` with its own consumer group, from the earliest
offset, and a ``BatchingSink`` whose ``flush`` (run at every Quix checkpoint, ``--commit-interval``)
aggregates the checkpoint's records in Python and writes them with one non-transactional Redis pipeline
before Quix commits the offsets (at-least-once):

``--mode counters``: orjson decode and the checks the aggregation needs (known event_type, string ids,
RFC 3339 event_time, a button for clicks), then the per-video keys only: totals by event type and per
button, the same counters per event_time minute and hour, HLL uniques all time / per hour / per day.

``--mode full`` (comparable work): the event contract as a pydantic model (``model_validate_json``;
invalid records dropped), event_id dedupe in Quix state (RocksDB per message key, with its changelog
topic), enrichment with the user's attributes from Redis (a dict cache in front of one ``HMGET`` per
miss), the enriched record produced to ``--output-topic`` (``to_topic``), and in Redis the per-video keys
above plus global totals, CTR counters per button / surface / rec slot and per-user profile counts.
Not done: trending scores, recent-video lists, live snapshots, dead letters, replay watermarks.

Prints one JSON line: outputs that reached the sink, events written to Redis, seconds from the first
output to the last Redis write.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections import defaultdict
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import orjson
import redis
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, model_validator
from quixstreams import Application, State
from quixstreams.sinks import BatchingSink

KINDS = {"click": "clicks", "impression": "impressions", "conversion": "conversions"}
PIPELINE_KEYS = 2000
ATTRIBUTES = ("country", "subscription_tier", "language")
UUID = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"

Id = Annotated[str, StringConstraints(min_length=1, max_length=128)]


class Event(BaseModel):
    """ClickPulse's event contract v1, as a Quix Streams user would write it."""

    model_config = ConfigDict(extra="allow")

    event_id: Annotated[str, StringConstraints(pattern=UUID, to_lower=True)]
    event_type: Literal["click", "impression", "conversion"]
    event_time: AwareDatetime
    user_id: Id
    session_id: Id
    video_id: Id
    button_id: Annotated[str, StringConstraints(pattern=r"^[a-z0-9_]{1,64}$")] | None = None
    playback_position_s: float | None = Field(None, ge=0, allow_inf_nan=False)
    surface: Id | None = None
    rec_slot: int | None = Field(None, ge=0, le=10_000, strict=True)
    model_version: Id | None = None
    conversion_type: Id | None = None
    device: Id | None = None
    app_version: Id | None = None
    properties: dict[str, Any] | None = Field(None, max_length=32)
    received_at: AwareDatetime | None = None

    @model_validator(mode="after")
    def _clicks(self) -> Event:
        if self.event_type == "click" and (self.button_id is None or self.playback_position_s is None):
            raise ValueError("click events require button_id and playback_position_s")
        return self


# (video_id, metric, button, user_id, minute, hour, day, surface, slot)
Counted = tuple[str, str, str, str, str, str, str, str, str]


def _counted(
    video_id: str, metric: str, button: str, user_id: str, at: datetime, surface: str, slot: str
) -> Counted:
    minute = at.astimezone(UTC).strftime("%Y%m%d%H%M")
    return video_id, metric, button, user_id, minute, minute[:10], minute[:8], surface, slot


def parse_light(value: bytes) -> Counted | None:
    """Counters mode: the fields the aggregation needs, or None for a record it cannot count."""
    try:
        event = orjson.loads(value)
        metric = KINDS[event["event_type"]]
        video_id, user_id = event["video_id"], event["user_id"]
        at = datetime.fromisoformat(event["event_time"])
        button = event.get("button_id") or ""
        if not all(isinstance(event[name], str) for name in ("event_id", "video_id", "user_id")):
            return None
        if metric == "clicks" and not isinstance(button, str):
            return None
        if at.tzinfo is None:
            return None
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None
    return _counted(video_id, metric, button, user_id, at, "", "")


class Pipeline:
    """Full mode's per-record steps: validate, dedupe (Quix state), enrich."""

    def __init__(self, client: redis.Redis, prefix: str, cache_size: int = 50_000) -> None:
        self.client = client
        self.prefix = prefix
        self.cache: dict[str, dict[str, str | None]] = {}
        self.cache_size = cache_size

    @staticmethod
    def validate(value: bytes) -> Event | None:
        try:
            return Event.model_validate_json(value)
        except ValueError:
            return None

    @staticmethod
    def first_occurrence(event: Event, state: State) -> bool:
        if state.get(event.event_id):
            return False
        state.set(event.event_id, True)
        return True

    def enrich(self, event: Event, key: Any, timestamp: int, _headers: Any) -> dict[str, Any]:
        attrs = self.cache.get(event.user_id)
        if attrs is None:
            values = self.client.hmget(f"{self.prefix}:{{user:{event.user_id}}}:attrs", ATTRIBUTES)
            decoded = (v.decode() if isinstance(v, bytes) else v for v in values)
            attrs = dict(zip(ATTRIBUTES, decoded, strict=True))
            if len(self.cache) >= self.cache_size:
                self.cache.pop(next(iter(self.cache)))
            self.cache[event.user_id] = attrs
        record = event.model_dump(mode="json", exclude_none=True)
        record.update(
            user_country=attrs["country"],
            user_tier=attrs["subscription_tier"],
            user_language=attrs["language"],
            is_late=False,
        )
        record.setdefault("received_at", datetime.fromtimestamp(timestamp / 1000, UTC).isoformat())
        return record


def counted_from_enriched(record: dict[str, Any]) -> Counted:
    model_version, rec_slot = record.get("model_version"), record.get("rec_slot")
    slot = ""
    if model_version is not None or rec_slot is not None:
        slot = f"{'-' if model_version is None else model_version}|{'-' if rec_slot is None else rec_slot}"
    return _counted(
        record["video_id"],
        KINDS[record["event_type"]],
        record.get("button_id") or "",
        record["user_id"],
        datetime.fromisoformat(record["event_time"]),
        record.get("surface") or "",
        slot,
    )


class CountersSink(BatchingSink):
    """Per checkpoint: aggregate every partition's batch, then one Redis pipeline."""

    def __init__(self, redis_url: str, prefix: str, ttls: dict[str, int], full: bool) -> None:
        super().__init__(on_client_connect_success=lambda: None)
        self.redis_url = redis_url
        self.prefix = prefix
        self.ttls = ttls
        self.full = full
        self.client: redis.Redis | None = None
        self.records = 0
        self.written = 0
        self.first_at: float | None = None
        self.last_flush_at: float | None = None

    def setup(self) -> None:
        self.client = redis.Redis.from_url(self.redis_url)
        self.client.ping()

    def add(
        self, value: Any, key: Any, timestamp: int, headers: Any, topic: str, partition: int, offset: int
    ) -> None:
        if self.first_at is None:
            self.first_at = time.perf_counter()
        self.records += 1
        super().add(value, key, timestamp, headers, topic, partition, offset)

    def write(self, batch: Any) -> None:  # flush() below aggregates across partitions instead
        raise NotImplementedError

    def flush(self) -> None:
        counters: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        ttls: dict[str, int] = {}
        hlls: dict[str, set[str]] = defaultdict(set)
        global_base = f"{self.prefix}:{{global}}"
        for batch in self._batches.values():
            for item in batch:
                counted = item.value if not self.full else counted_from_enriched(item.value)
                if counted is None:
                    continue
                self.written += 1
                video_id, metric, button, user_id, minute, hour, day, surface, slot = counted
                base = f"{self.prefix}:{{video:{video_id}}}"
                minute_key, hour_key = f"{base}:m:{minute}", f"{base}:h:{hour}"
                ttls[minute_key], ttls[hour_key] = self.ttls["minute"], self.ttls["hour"]
                for key in (f"{base}:totals", minute_key, hour_key):
                    fields = counters[key]
                    fields[metric] += 1
                    if metric == "clicks" and button:
                        fields["clicks:" + button] += 1
                hlls[f"{base}:uniq"].add(user_id)
                hour_uniq, day_uniq = f"{base}:uniq:h:{hour}", f"{base}:uniq:d:{day}"
                hlls[hour_uniq].add(user_id)
                hlls[day_uniq].add(user_id)
                ttls[hour_uniq], ttls[day_uniq] = self.ttls["uniq_hour"], self.ttls["uniq_day"]
                if not self.full:
                    continue
                totals = counters[f"{global_base}:totals"]
                totals["events"] += 1
                totals[metric] += 1
                for dimension, value in (("button", button), ("surface", surface), ("slot", slot)):
                    if value:
                        counters[f"{global_base}:ctr:{dimension}"][f"{value}|{metric}"] += 1
                profile_key = f"{self.prefix}:{{user:{user_id}}}:profile"
                ttls[profile_key] = self.ttls["profile"]
                profile = counters[profile_key]
                profile[metric] += 1
                if metric == "clicks" and button:
                    profile["button:" + button] += 1
        self._batches.clear()
        if counters:
            self._write(counters, ttls, hlls)
            self.last_flush_at = time.perf_counter()

    def _write(
        self, counters: dict[str, dict[str, int]], ttls: dict[str, int], hlls: dict[str, set[str]]
    ) -> None:
        assert self.client is not None
        pipe = self.client.pipeline(transaction=False)
        for count, key in enumerate([*counters, *hlls], 1):  # counter and HLL keys never coincide
            if key in counters:
                for name, n in counters[key].items():
                    pipe.hincrby(key, name, n)
            else:
                pipe.pfadd(key, *hlls[key])
            if key in ttls:
                pipe.expire(key, ttls[key])
            if count % PIPELINE_KEYS == 0:
                pipe.execute()
        pipe.execute()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--mode", choices=("counters", "full"), default="counters")
    parser.add_argument("--output-topic", help="full mode: where the enriched records go")
    parser.add_argument("--count", type=int, required=True, help="stop after this many outputs")
    parser.add_argument("--commit-interval", type=float, default=5.0, help="Quix checkpoint interval, s")
    parser.add_argument("--ttls", default="{}", help="JSON: minute, hour, uniq_hour, uniq_day, profile (s)")
    parser.add_argument("--state-dir", default=None)
    parser.add_argument("--timeout", type=float, default=20.0, help="stop when idle this long, s")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    full = args.mode == "full"
    if full and not args.output_topic:
        parser.error("--mode full needs --output-topic")

    app = Application(
        broker_address=args.bootstrap,
        consumer_group=args.group,
        auto_offset_reset="earliest",
        commit_interval=args.commit_interval,
        state_dir=args.state_dir,
        loglevel="WARNING",
        auto_create_topics=full,  # the dedupe state's changelog topic
        use_changelog_topics=full,
    )
    topic = app.topic(args.topic, value_deserializer="bytes", key_deserializer="bytes")
    ttls = {
        "minute": 7200,
        "hour": 172800,
        "uniq_hour": 172800,
        "uniq_day": 691200,
        "profile": 2592000,
        **json.loads(args.ttls),
    }
    sink = CountersSink(args.redis_url, args.prefix, ttls, full)
    sdf = app.dataframe(topic)
    if full:
        steps = Pipeline(redis.Redis.from_url(args.redis_url), args.prefix)
        output = app.topic(args.output_topic, value_serializer="json", key_serializer="bytes")
        sdf = sdf.apply(steps.validate)
        sdf = sdf.filter(lambda event: event is not None)
        sdf = sdf.filter(steps.first_occurrence, stateful=True)
        sdf = sdf.apply(steps.enrich, metadata=True)
        sdf = sdf.to_topic(output)
    else:
        sdf = sdf.apply(parse_light)
    sdf.sink(sink)
    app.run(count=args.count, timeout=args.timeout, collect=False)

    seconds = (sink.last_flush_at or 0.0) - (sink.first_at or 0.0)
    summary = {"mode": args.mode, "outputs": sink.records, "written": sink.written, "seconds": seconds}
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
