"""Helpers for the batch path's integration tests: private topics, Dagster runs, expected mart numbers.

``Expected`` recounts the marts' numbers from the events a test sent, with plain Python and the
definitions the marts document (dedupe by event_id, UTC hours and dates, position buckets, trending
decay), so every assertion compares the warehouse with numbers the test computed itself.
"""

from __future__ import annotations

import math
import os
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

from clickpulse.settings import Settings
from clickpulse.stack.topics import ensure_topics
from orchestration.definitions import build_defs
from orchestration.sensors import RANGE_END_TAG, RANGE_START_TAG
from streaming.kafka_io import producer_config

METRIC = {"click": "clicks", "impression": "impressions", "conversion": "conversions"}
WEIGHTS = {"impression": 0.1, "click": 1.0, "conversion": 5.0}
HALF_LIFE_H = 6.0


@contextmanager
def private_topics(bootstrap: str, *prefixes: str, partitions: int = 3) -> Iterator[list[str]]:
    names = [f"test.{prefix}.{uuid.uuid4().hex[:10]}" for prefix in prefixes]
    ensure_topics(bootstrap, dict.fromkeys(names, partitions))
    try:
        yield names
    finally:
        AdminClient({"bootstrap.servers": bootstrap}).delete_topics(names, operation_timeout=10)


def produce(settings: Settings, topic: str, records: Iterable[tuple[bytes | None, bytes | None, int]]) -> int:
    """(key, value, timestamp ms) records, flushed before returning."""
    producer = Producer(producer_config(settings))
    sent = 0
    for key, value, timestamp_ms in records:
        while True:
            try:
                producer.produce(topic, value=value, key=key, timestamp=timestamp_ms)
                break
            except BufferError:
                producer.poll(0.5)
        sent += 1
        producer.poll(0)
    assert producer.flush(60) == 0
    return sent


@dataclass
class BatchEnv:
    """Where one test's batch path lives: its topic, DuckDB file, lake and Redis prefix.

    Its Definitions are the production ones (``build_defs``) with settings pointing at those places,
    so the local resource map is what the test exercises. dbt reads the DuckDB path from the
    environment, so the caller sets CLICKPULSE_DUCKDB_PATH to ``duckdb_path`` (checked on every run).
    """

    base: Settings
    root: Path
    enriched_topic: str
    redis_prefix: str

    @property
    def duckdb_path(self) -> Path:
        return self.root / "warehouse.duckdb"

    @property
    def lake_dir(self) -> Path:
        return self.root / "lake"

    @property
    def dimensions_dir(self) -> Path:
        return self.root / "dimensions"

    @property
    def settings(self) -> Settings:
        return self.base.model_copy(
            update={
                "duckdb_path": self.duckdb_path,
                "lake_dir": self.lake_dir,
                "dimensions_dir": self.dimensions_dir,
                "topic_enriched": self.enriched_topic,
                "redis_prefix": self.redis_prefix,
                "env": "local",
            }
        )

    def definitions(self) -> dg.Definitions:
        if os.environ.get("CLICKPULSE_DUCKDB_PATH") != str(self.duckdb_path):
            raise RuntimeError(
                "set CLICKPULSE_DUCKDB_PATH to the test's DuckDB file: dbt reads it from there"
            )
        return build_defs(self.settings)

    def run(
        self,
        job: str,
        instance: dg.DagsterInstance,
        *,
        first: str | None = None,
        last: str | None = None,
        raise_on_error: bool = True,
    ) -> dg.ExecuteInProcessResult:
        """Run a job in process; ``first``..``last`` is a partition range run as one run."""
        tags = {RANGE_START_TAG: first, RANGE_END_TAG: last or first} if first else {}
        job_def = self.definitions().resolve_job_def(job)
        return job_def.execute_in_process(instance=instance, tags=tags, raise_on_error=raise_on_error)

    def materialize(self, instance: dg.DagsterInstance, *keys: str) -> dg.ExecuteInProcessResult:
        job = self.definitions().resolve_implicit_global_asset_job_def()
        return job.execute_in_process(instance=instance, asset_selection=[dg.AssetKey(k) for k in keys])

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        connection = duckdb.connect(str(self.duckdb_path), read_only=True)
        try:
            return connection.execute(sql, list(params)).fetchall()
        finally:
            connection.close()


def check_results(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {f"{e.asset_key.to_user_string()}:{e.check_name}": e for e in result.get_asset_check_evaluations()}


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def hour_of(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def position_bucket(position: float | None) -> str:
    if position is None or position < 0:
        return "unknown"
    if position < 60:
        return "0-60s"
    if position < 300:
        return "1-5min"
    if position < 1200:
        return "5-20min"
    return "20min+"


@dataclass
class Expected:
    """The marts' numbers, recounted from the distinct valid events a test sent."""

    events: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def from_events(cls, events: Iterable[Mapping[str, Any]]) -> Expected:
        seen: set[str] = set()
        kept = []
        for event in events:
            if event["event_id"] not in seen:
                seen.add(event["event_id"])
                kept.append({**event, "_time": parse_time(event["event_time"])})
        return cls(kept)

    def video_hours(self) -> dict[tuple[datetime, str], dict[str, Any]]:
        out: dict[tuple[datetime, str], dict[str, Any]] = {}
        for e in self.events:
            row = out.setdefault(
                (hour_of(e["_time"]), e["video_id"]),
                {"impressions": 0, "clicks": 0, "conversions": 0, "users": set()},
            )
            row[METRIC[e["event_type"]]] += 1
            row["users"].add(e["user_id"])
        return out

    def button_clicks_hourly(self) -> Counter[tuple[datetime, str, str]]:
        return Counter(
            (hour_of(e["_time"]), e["video_id"], e.get("button_id") or "unknown")
            for e in self.events
            if e["event_type"] == "click"
        )

    def button_usage(self) -> dict[tuple[str, str], dict[str, Any]]:
        out: dict[tuple[str, str], dict[str, Any]] = {}
        for e in self.events:
            bucket = position_bucket(e.get("playback_position_s"))
            if e["event_type"] == "click":
                row = out.setdefault((e.get("button_id") or "unknown", bucket), {"clicks": 0, "users": set()})
                row["clicks"] += 1
                row["users"].add(e["user_id"])
        return out

    def rec_tile_impressions(self) -> Counter[str]:
        return Counter(
            position_bucket(e.get("playback_position_s"))
            for e in self.events
            if e["event_type"] == "impression" and e.get("rec_slot") is not None
        )

    def videos(self) -> dict[str, dict[str, Any]]:
        as_of = max(e["_time"] for e in self.events)
        out: dict[str, dict[str, Any]] = {}
        for e in self.events:
            row = out.setdefault(
                e["video_id"],
                {"impressions": 0, "clicks": 0, "conversions": 0, "users": set(), "trending": 0.0},
            )
            row[METRIC[e["event_type"]]] += 1
            row["users"].add(e["user_id"])
            age_h = (as_of - e["_time"]).total_seconds() / 3600.0
            row["trending"] += WEIGHTS[e["event_type"]] * math.pow(0.5, age_h / HALF_LIFE_H)
        return out

    def rec_ctr(self) -> Counter[tuple[date, str, int, str]]:
        return Counter(
            (e["_time"].date(), e.get("model_version") or "unknown", e["rec_slot"], METRIC[e["event_type"]])
            for e in self.events
            if e.get("rec_slot") is not None
        )

    def user_days(self) -> dict[tuple[date, str], dict[str, Any]]:
        out: dict[tuple[date, str], dict[str, Any]] = {}
        for e in self.events:
            row = out.setdefault(
                (e["_time"].date(), e["user_id"]),
                {"impressions": 0, "clicks": 0, "conversions": 0, "videos": set()},
            )
            row[METRIC[e["event_type"]]] += 1
            if e["event_type"] == "click":
                row["videos"].add(e["video_id"])
        return out

    def sessions_per_user_day(self) -> Counter[tuple[date, str]]:
        """Sessions start at their first event; the session's user is that event's user."""
        first: dict[str, dict[str, Any]] = {}
        for e in self.events:
            current = first.get(e["session_id"])
            if current is None or (e["_time"], e["event_id"]) < (current["_time"], current["event_id"]):
                first[e["session_id"]] = e
        return Counter((e["_time"].date(), e["user_id"]) for e in first.values())

    def user_videos(self) -> dict[tuple[str, str], dict[str, int]]:
        out: dict[tuple[str, str], dict[str, int]] = defaultdict(
            lambda: {"impressions": 0, "clicks": 0, "conversions": 0}
        )
        for e in self.events:
            out[(e["user_id"], e["video_id"])][METRIC[e["event_type"]]] += 1
        return dict(out)
