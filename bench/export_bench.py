"""Batch path benchmarks: hourly export + load rate, its scaling, and dbt build time on 10M events.

Every ratio has a baseline measured in the same run on the same data:

- ``export_load_*``: one hour of N enriched events (private topic, private DuckDB file and lake) through
  ``export_hour`` (offset lookup, batched read, conversion, Parquet, the expectation suite evaluated with
  pyarrow.compute, DuckDB partition replace; not the Great Expectations rerun of the asset check), against
  a bare ``consume(num_messages=...)`` loop over the same records with no decoding;
- ``export_scaling``: seconds for 1M / seconds for 100K, against the linear 10;
- ``export_target``: the 1M rate against the 50K events/s the issue asks for;
- ``dbt_build_10m``: ``dbt build`` of every model over 10M events generated in DuckDB, against one
  hand-written DuckDB query computing the hourly engagement mart from the same raw table.

``CLICKPULSE_BENCH_SCALE`` (default 1) scales every event count down for a quick smoke run.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Consumer, Producer, TopicPartition

from assets.dbt.project import dbt_project
from assets.kafka_export.export import export_hour
from assets.kafka_export.reader import lookup_ranges
from clickpulse.settings import get_settings
from clickpulse.stack.topics import delete_topics, ensure_topics
from orchestration.lake import LakeResource
from orchestration.warehouse import DuckDBWarehouse
from streaming.kafka_io import consumer_config, producer_config

logger = logging.getLogger(__name__)

PARTITIONS = 6
BATCH = 20_000
TARGET_EVENTS_PER_S = 50_000
BUTTONS = ("play", "pause", "seek_forward", "seek_back", "like", "skip_intro", "next_episode", "rec_tile")


def _scale(n: int) -> int:
    return max(1000, int(n * float(os.environ.get("CLICKPULSE_BENCH_SCALE", "1"))))


def _hour() -> datetime:
    return datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=5)


def _payloads(n: int, hour: datetime) -> Iterator[tuple[bytes, bytes, int]]:
    """Enriched-shaped records spread over the hour: (key, value, timestamp ms)."""
    start_ms = int(hour.timestamp() * 1000)
    step = 3_600_000 / n
    for i in range(n):
        ts = start_ms + int(i * step)
        kind = ("impression", "click", "click", "conversion")[i % 4]
        user = f"u{i % 5000:05d}"
        event: dict[str, Any] = {
            "event_id": str(uuid.UUID(int=i + 1, version=4)),
            "event_type": kind,
            "event_time": datetime.fromtimestamp(ts / 1000, UTC).isoformat(timespec="milliseconds"),
            "user_id": user,
            "session_id": f"s{i // 20}",
            "video_id": f"v{i % 997:04d}",
            "surface": "player",
            "device": "web",
            "app_version": "4.2.0",
            "received_at": datetime.fromtimestamp(ts / 1000, UTC).isoformat(timespec="milliseconds"),
            "user_country": "US",
            "user_tier": "free",
            "user_language": "en",
            "is_late": False,
        }
        if kind == "click":
            event["button_id"] = BUTTONS[i % len(BUTTONS)]
            event["playback_position_s"] = float(i % 3600)
        if kind == "impression":
            event["properties"] = {"tile_index": i % 8}
        yield user.encode(), orjson.dumps(event), ts


@contextmanager
def _topic(bootstrap: str) -> Iterator[str]:
    name = f"bench.export.{uuid.uuid4().hex[:8]}"
    ensure_topics(bootstrap, {name: PARTITIONS})
    try:
        yield name
    finally:
        delete_topics(bootstrap, [name])


def _produce(topic: str, n: int, hour: datetime) -> None:
    producer = Producer(producer_config(get_settings(), **{"linger.ms": 50}))
    for key, value, ts in _payloads(n, hour):
        while True:
            try:
                producer.produce(topic, value=value, key=key, timestamp=ts)
                break
            except BufferError:
                producer.poll(0.2)
        producer.poll(0)
    if producer.flush(120) != 0:
        raise RuntimeError("records left unconfirmed")


def _consumer() -> Consumer:
    settings = get_settings()
    return Consumer(
        consumer_config(
            settings,
            f"bench-export-{uuid.uuid4().hex[:8]}",
            **{
                "enable.auto.commit": False,
                "enable.partition.eof": True,
                "fetch.min.bytes": 256 * 1024,
                "max.partition.fetch.bytes": 8 * 1024 * 1024,
            },
        )
    )


def _bare_consume_rate(topic: str, hour: datetime) -> float:
    """Baseline: the same offset range read with consume(num_messages) and nothing else."""
    consumer = _consumer()
    try:
        ranges = [r for r in lookup_ranges(consumer, topic, hour, hour + timedelta(hours=1)) if r.count]
        expected = sum(r.count for r in ranges)
        started = time.perf_counter()
        consumer.assign([TopicPartition(topic, r.partition, r.start) for r in ranges])
        seen = 0
        while seen < expected:
            for message in consumer.consume(num_messages=BATCH, timeout=1.0):
                if message.error() is None:
                    seen += 1
        return expected / (time.perf_counter() - started)
    finally:
        consumer.close()


def _export_rate(topic: str, hour: datetime, workdir: Path) -> tuple[float, float, int]:
    settings = get_settings()
    warehouse = DuckDBWarehouse(path=str(workdir / "bench.duckdb"))
    lake = LakeResource(root=str(workdir / "lake"))
    consumer = _consumer()
    try:
        started = time.perf_counter()
        result = export_hour(
            consumer,
            topic,
            hour,
            lake,
            warehouse,
            batch_size=BATCH,
            stall_timeout_s=60,
            log_every=10**9,
            lateness_minutes=settings.allowed_lateness_minutes,
            early_minutes=settings.allowed_early_minutes,
            log=logger.debug,
        )
        seconds = time.perf_counter() - started
    finally:
        consumer.close()
    return result.records / seconds, seconds, result.records


def export_rows(bootstrap: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    seconds: dict[str, float] = {}
    rates: dict[str, float] = {}
    for label, n in (("100k", _scale(100_000)), ("1m", _scale(1_000_000))):
        hour = _hour()
        with _topic(bootstrap) as topic, tempfile.TemporaryDirectory(prefix="bench-export-") as tmp:
            logger.info("producing %d records for the %s export benchmark", n, label)
            _produce(topic, n, hour)
            # the first pass warms caches and lazy imports on both sides; the second one is measured
            _bare_consume_rate(topic, hour)
            baseline = _bare_consume_rate(topic, hour)
            _export_rate(topic, hour, Path(tmp))
            rate, took, exported = _export_rate(topic, hour, Path(tmp))  # a rerun: same work, same result
        if exported != n:
            raise RuntimeError(f"exported {exported} of {n} records")
        seconds[label], rates[label] = took, rate
        rows.append(
            {
                "name": f"export_load_{label}",
                "value": rate,
                "baseline": baseline,
                "ratio": rate / baseline,
                "unit": "events/s",
                "note": f"{n} events, one hour: Kafka → Parquet → DuckDB vs bare consume loop",
            }
        )
    growth = seconds["1m"] / seconds["100k"]
    size_ratio = _scale(1_000_000) / _scale(100_000)
    rows.append(
        {
            "name": "export_scaling",
            "value": growth,
            "baseline": size_ratio,
            "ratio": growth / size_ratio,
            "unit": "x time",
            "note": "time(1M) / time(100K) against linear; ratio near 1 = linear",
        }
    )
    rows.append(
        {
            "name": "export_target",
            "value": rates["1m"],
            "baseline": float(TARGET_EVENTS_PER_S),
            "ratio": rates["1m"] / TARGET_EVENTS_PER_S,
            "unit": "events/s",
            "note": "1M-event hour against the 50K events/s target (ratio >= 1 meets it)",
        }
    )
    return rows


_GENERATE = """
create schema if not exists raw;
create or replace table raw.click_events as
select
    uuid()::varchar as event_id,
    case i % 10 when 0 then 'conversion' when 1 then 'click' when 2 then 'click' when 3 then 'click'
        else 'impression' end as event_type,
    start + to_milliseconds(i * span_ms // n) as event_time,
    start + to_milliseconds(i * span_ms // n + 300) as received_at,
    start + to_milliseconds(i * span_ms // n + 300) as kafka_timestamp,
    (i % 6)::integer as kafka_partition,
    (i // 6)::bigint as kafka_offset,
    date_trunc('hour', start + to_milliseconds(i * span_ms // n)) as partition_hour,
    'u' || lpad((hash(i) % 200000)::varchar, 6, '0') as user_id,
    's' || (i // 25)::varchar as session_id,
    'v' || lpad((hash(i * 7) % 5000)::varchar, 4, '0') as video_id,
    case when i % 10 in (1, 2, 3) then ['play', 'pause', 'like', 'rec_tile', 'seek_forward'][1 + i % 5] end
        as button_id,
    case when i % 10 in (1, 2, 3) then (i % 5400)::double end as playback_position_s,
    case when i % 3 = 0 then 'rec_row' else 'player' end as surface,
    case when i % 3 = 0 then (i % 10)::integer end as rec_slot,
    case when i % 3 = 0 then 'als-v1' end as model_version,
    case when i % 10 = 0 then 'watch_complete' end as conversion_type,
    'web' as device,
    '4.2.0' as app_version,
    null::varchar as properties,
    'US' as user_country,
    'free' as user_tier,
    'en' as user_language,
    false as is_late
from (select range as i, ? as n, ? as span_ms, ?::timestamp as start from range(?));
create or replace table raw.video_catalog as
select 'v' || lpad(i::varchar, 4, '0') as video_id, 'Title ' || i as title, '' as series,
    'drama' as genre, 3600 as duration_s, date '2024-01-01' as release_date
from range(5000) t(i);
create or replace table raw.user_profiles as
select 'u' || lpad(i::varchar, 6, '0') as user_id, 'US' as country, 'free' as subscription_tier,
    date '2023-01-01' as signup_date, 'en' as language
from range(200000) t(i);
create table if not exists raw.rejected_rows (partition_hour timestamp, event_id varchar,
    event_time timestamp, kafka_partition integer, kafka_offset bigint, failed_expectations varchar,
    detail varchar, raw_json varchar, rejected_at timestamp);
"""

_HAND_WRITTEN = """
select date_trunc('hour', event_time) as event_hour, video_id,
    count(*) filter (where event_type = 'impression') as impressions,
    count(*) filter (where event_type = 'click') as clicks,
    count(*) filter (where event_type = 'conversion') as conversions,
    count(distinct user_id) as unique_users
from (select distinct on (event_id) * from raw.click_events)
group by all
"""


def dbt_rows() -> list[dict[str, Any]]:
    import duckdb

    n = _scale(10_000_000)
    with tempfile.TemporaryDirectory(prefix="bench-dbt-") as tmp:
        path = Path(tmp) / "bench.duckdb"
        start = _hour() - timedelta(days=2)
        connection = duckdb.connect(str(path))
        try:
            logger.info("generating %d events in DuckDB", n)
            for statement in filter(str.strip, _GENERATE.split(";")):
                params = [n, 48 * 3_600_000, start.replace(tzinfo=None), n] if "range(?)" in statement else []
                connection.execute(statement, params)
            began = time.perf_counter()
            connection.execute(f"create table hand_written as {_HAND_WRITTEN}")
            baseline = time.perf_counter() - began
        finally:
            connection.close()
        project = dbt_project()
        env = {**os.environ, "CLICKPULSE_DUCKDB_PATH": str(path)}
        dbt = Path(sys.executable).with_name("dbt")
        command = [str(dbt), "build", "--project-dir", str(project.project_dir)]
        command += ["--profiles-dir", str(project.profiles_dir), "--target-path", str(Path(tmp) / "target")]
        began = time.perf_counter()
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        seconds = time.perf_counter() - began
        if done.returncode != 0:
            raise RuntimeError(f"dbt build failed:\n{done.stdout[-4000:]}")
    return [
        {
            "name": "dbt_build_10m",
            "value": seconds,
            "baseline": baseline,
            "ratio": seconds / baseline,
            "unit": "s",
            "note": f"dbt build (all models and tests) over {n} events vs one hand-written engagement query",
        }
    ]


def run() -> list[dict[str, Any]]:
    bootstrap = get_settings().kafka_bootstrap_servers
    return [*export_rows(bootstrap), *dbt_rows()]


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for row in run():
        print(row)
