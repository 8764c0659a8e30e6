"""The peer: ClickPulse's per-video real-time aggregation written with Quix Streams.

Runs in its own environment (``bench/.peer-venv``, see ``bench/peer_env.py``): Quix Streams pins an
older confluent-kafka than ClickPulse. Imports nothing from ClickPulse.

What it does, per record of the topic (consumer group of its own, from the earliest offset):

- decode the JSON value (orjson, as Quix's own JSON deserializer does) and check the fields the
  aggregation needs: a known ``event_type``, string ``video_id`` / ``user_id`` / ``event_id``, an RFC 3339
  ``event_time`` (``datetime.fromisoformat``) and, for clicks, a ``button_id``; anything else is dropped;
- per video, in Redis: all-time totals by event type and clicks per button (``HINCRBY``), the same
  counters per event_time minute and per hour (``HINCRBY`` + ``EXPIRE``), unique users all time, per hour
  and per day (``PFADD``, windowed ones with ``EXPIRE``): the video-level keys ClickPulse's consumer
  writes, with the same TTLs.

A ``BatchingSink`` adds each record to a per-partition batch; on every Quix checkpoint (``--commit-interval``
seconds) ``flush`` pre-aggregates all batches and writes them with one non-transactional pipeline,
then Quix commits the offsets (at-least-once: no event_id dedupe, no replay protection).

Prints one JSON line: records, valid events, seconds from the first record to the last flush, rate.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

import orjson
import redis
from quixstreams import Application
from quixstreams.sinks import BatchingSink

KINDS = {"click": "clicks", "impression": "impressions", "conversion": "conversions"}
PIPELINE_CHUNK = 5000

# (video_id, metric, button, user_id, minute, hour, day)
Parsed = tuple[str, str, str, str, str, str, str]


def parse(value: bytes) -> Parsed | None:
    """The fields the aggregation needs, or None for a record it cannot count."""
    try:
        event = orjson.loads(value)
        metric = KINDS[event["event_type"]]
        video_id, user_id = event["video_id"], event["user_id"]
        at = datetime.fromisoformat(event["event_time"]).astimezone(UTC)
        button = event.get("button_id") or ""
        if not (
            isinstance(video_id, str) and isinstance(user_id, str) and isinstance(event["event_id"], str)
        ):
            return None
        if metric == "clicks" and not isinstance(button, str | None):
            return None
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None
    minute = at.strftime("%Y%m%d%H%M")
    return video_id, metric, button, user_id, minute, minute[:10], minute[:8]


class VideoCountersSink(BatchingSink):
    """Per checkpoint: aggregate every partition's batch, then one Redis pipeline."""

    def __init__(self, redis_url: str, prefix: str, ttls: dict[str, int]) -> None:
        super().__init__(on_client_connect_success=lambda: None)
        self.redis_url = redis_url
        self.prefix = prefix
        self.ttls = ttls
        self.client: redis.Redis | None = None
        self.records = 0
        self.valid = 0
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
        for batch in self._batches.values():
            for item in batch:
                parsed = item.value
                if parsed is None:
                    continue
                self.valid += 1
                video_id, metric, button, user_id, minute, hour, day = parsed
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
        self._batches.clear()
        if counters:
            self._write(counters, ttls, hlls)
        self.last_flush_at = time.perf_counter()

    def _write(
        self, counters: dict[str, dict[str, int]], ttls: dict[str, int], hlls: dict[str, set[str]]
    ) -> None:
        assert self.client is not None
        pipe = self.client.pipeline(transaction=False)
        queued = 0
        for key, fields in counters.items():
            for name, n in fields.items():
                pipe.hincrby(key, name, n)
            queued += len(fields)
            if key in ttls:
                pipe.expire(key, ttls[key])
                queued += 1
            if queued >= PIPELINE_CHUNK:
                pipe.execute()
                queued = 0
        for key, users in hlls.items():
            pipe.pfadd(key, *users)
            queued += 1
            if key in ttls:
                pipe.expire(key, ttls[key])
                queued += 1
            if queued >= PIPELINE_CHUNK:
                pipe.execute()
                queued = 0
        pipe.execute()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--count", type=int, required=True, help="stop after this many records")
    parser.add_argument("--commit-interval", type=float, default=5.0, help="Quix checkpoint interval, s")
    parser.add_argument("--ttls", default="{}", help='JSON {"minute", "hour", "uniq_hour", "uniq_day"}: s')
    parser.add_argument("--state-dir", default=None)
    parser.add_argument("--timeout", type=float, default=60.0, help="stop when idle this long, s")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    app = Application(
        broker_address=args.bootstrap,
        consumer_group=args.group,
        auto_offset_reset="earliest",
        commit_interval=args.commit_interval,
        state_dir=args.state_dir,
        loglevel="WARNING",
        auto_create_topics=False,
        use_changelog_topics=False,
    )
    topic = app.topic(args.topic, value_deserializer="bytes", key_deserializer="bytes")
    ttls = {"minute": 7200, "hour": 172800, "uniq_hour": 172800, "uniq_day": 691200, **json.loads(args.ttls)}
    sink = VideoCountersSink(args.redis_url, args.prefix, ttls)
    sdf = app.dataframe(topic)
    sdf = sdf.apply(parse)
    sdf.sink(sink)
    app.run(count=args.count, timeout=args.timeout, collect=False)

    seconds = (sink.last_flush_at or 0.0) - (sink.first_at or 0.0)
    print(
        json.dumps(
            {
                "records": sink.records,
                "valid": sink.valid,
                "seconds": seconds,
                "rate": sink.records / seconds if seconds > 0 else None,
            }
        )
    )
    return 0 if sink.records >= args.count else 1


if __name__ == "__main__":
    sys.exit(main())
