"""The hourly export (Dagster asset ``raw_click_events``) rerun after a crash changes nothing.

One closed hour of simulated traffic, plus three events from a client clock 80 minutes ahead (valid for
the consumer, rejected by the export's expectation suite), goes through the real consumer into a private
clicks.enriched. A clean export of that hour into its own DuckDB file and lake is the reference, checked
against the event_ids the test sent: the simulated ones in click_events, the three in rejected_rows.
Then, for each stage in ``tests/faults/export_crash.py`` (Parquet half written; Parquet folder
published but the warehouse untouched; inside the warehouse transaction after the delete), a child process
runs the same export job and is SIGKILLed at that stage. The test checks:

- the crash left the hour's warehouse rows as they were before it (none, or the earlier run's rows: the
  DuckDB transaction that had deleted them is rolled back when the file is opened again);
- a rerun makes the hour's warehouse rows (click_events and rejected_rows, but for the time the rows were
  rejected at) and its Parquet file equal to the clean run's;
- the only other trace of the crash is the killed writer's staging folder, whose name starts with a dot
  so Hive-style readers of the lake skip it (a SIGKILL leaves no chance to remove it).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import orjson
import pyarrow.parquet as pq
import pytest

from assets.partitions import partition_key
from clickpulse.settings import PROJECT_ROOT, Settings
from streaming.consumer import RealtimeConsumer
from streaming.simulator import SimulationConfig, Simulator, backfill_window
from tests.faults.export_crash import STAGES
from tests.integration.batch_support import BatchEnv, produce
from tests.serving_support import cleanup, private_settings

EVENTS = 4000
TABLES = ("click_events", "rejected_rows")


@dataclass(frozen=True)
class Source:
    topic: str
    prefix: str
    hour: datetime
    event_ids: frozenset[str]  # every event sent, once
    rejected_ids: frozenset[str]  # those the suite rejects

    @property
    def key(self) -> str:
        return partition_key(self.hour)


@pytest.fixture(scope="module")
def source(kafka_bootstrap: str, redis_url: str) -> Iterator[Source]:
    """A closed hour (the one before last) on a private clicks.enriched, written by the real consumer."""
    start, end = backfill_window(1, now=datetime.now(UTC) - timedelta(hours=1))
    simulator = Simulator(SimulationConfig(events=EVENTS, seed=5, start=start, end=end, users=200, videos=40))
    records = list(simulator)
    template = next(r.event for r in records if r.event is not None)
    ahead = []
    for i in range(3):
        sent_at = start + timedelta(minutes=20 + i)
        event = {k: template[k] for k in ("user_id", "session_id", "video_id")}
        moment = (sent_at + timedelta(minutes=80)).isoformat()
        event.update(event_id=str(uuid.uuid4()), event_type="impression", event_time=moment)
        ahead.append((event["user_id"].encode(), orjson.dumps(event), int(sent_at.timestamp() * 1000), event))
    private = private_settings(kafka_bootstrap, redis_url, "export-crash")
    settings = private.settings
    try:
        stamped = [(r.key, r.payload, r.kafka_timestamp_ms or 0) for r in records]
        stamped += [(key, value, stamp) for key, value, stamp, _ in ahead]
        produce(settings, settings.topic_raw, stamped)
        consumer = RealtimeConsumer(settings)
        try:
            consumer.run(stop_when=lambda s: s.records >= len(stamped), idle_timeout_s=60)
        finally:
            consumer.close()
        rejected = frozenset(event["event_id"] for *_, event in ahead)
        sent = frozenset(r.event["event_id"] for r in records if r.event is not None and not r.is_duplicate)
        yield Source(settings.topic_enriched, settings.redis_prefix, start, sent | rejected, rejected)
    finally:
        cleanup(private)


def export(env: BatchEnv, source: Source, monkeypatch: pytest.MonkeyPatch) -> None:
    """The hourly_export job for the hour, in process, as a schedule or a rerun would start it."""
    monkeypatch.setenv("CLICKPULSE_DUCKDB_PATH", str(env.duckdb_path))
    with dg.instance_for_test() as instance:
        env.run("hourly_export", instance, first=source.key)


def crash(env: BatchEnv, source: Source, stage: str) -> None:
    """The same job in a child process that SIGKILLs itself at ``stage``."""
    child_env = {
        **os.environ,
        "CLICKPULSE_DUCKDB_PATH": str(env.duckdb_path),
        "CLICKPULSE_EXPORT_BATCH_SIZE": "500",  # several batches, so "parquet" dies with more to come
    }
    argv = [str(env.root), source.topic, source.prefix, source.key, stage]
    child = subprocess.run(
        [sys.executable, "-m", "tests.faults.export_crash", *argv],
        env=child_env,
        cwd=PROJECT_ROOT,
        capture_output=True,
        timeout=300,
        check=False,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr.decode(errors="replace")[-3000:]


def hour_rows(env: BatchEnv, source: Source) -> dict[str, list[tuple[Any, ...]]]:
    if not env.duckdb_path.exists():
        return {table: [] for table in TABLES}
    hour = source.hour.replace(tzinfo=None)
    # rejected_at is the time of the run that rejected the row: the one column a rerun changes
    columns = {"click_events": "*", "rejected_rows": "* exclude (rejected_at)"}
    return {
        table: env.query(
            f"select {columns[table]} from raw.{table} where partition_hour = ? order by all", [hour]
        )
        for table in TABLES
    }


def lake_entries(env: BatchEnv) -> list[str]:
    folder = env.lake_dir / "click_events"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def lake_rows(env: BatchEnv, source: Source) -> list[dict[str, Any]]:
    path = env.lake_dir / "click_events" / f"partition_hour={source.hour:%Y-%m-%dT%H}" / "part-0.parquet"
    rows = pq.read_table(path).to_pylist()
    return sorted(rows, key=lambda row: (row["kafka_partition"], row["kafka_offset"]))


@pytest.fixture(scope="module")
def clean(source: Source, settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> BatchEnv:
    """The reference: one uninterrupted export of the hour."""
    env = BatchEnv(settings, tmp_path_factory.mktemp("export-clean"), source.topic, source.prefix)
    with pytest.MonkeyPatch.context() as monkeypatch:
        export(env, source, monkeypatch)
    rows = hour_rows(env, source)
    ids = [row[0] for row in rows["click_events"]]
    rejected = {row[1] for row in rows["rejected_rows"]}
    assert len(ids) == len(set(ids)) and set(ids) == source.event_ids - source.rejected_ids
    assert rejected == source.rejected_ids, "the clean run must hold what was sent, rejects apart"
    return env


@pytest.mark.parametrize("stage", STAGES)
def test_rerun_after_a_crash_equals_a_clean_run(
    stage: str,
    source: Source,
    clean: BatchEnv,
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = BatchEnv(settings, tmp_path / "crashed", source.topic, source.prefix)
    if stage == "warehouse":
        shutil.copytree(clean.root, env.root)  # the hour's rows are there to delete: none may be lost
    before = hour_rows(env, source)

    crash(env, source, stage)
    assert hour_rows(env, source) == before, "the crash changed the hour's committed warehouse rows"

    export(env, source, monkeypatch)
    assert hour_rows(env, source) == hour_rows(clean, source)
    assert lake_rows(env, source) == lake_rows(clean, source)
    hour_folder = f"partition_hour={source.hour:%Y-%m-%dT%H}"
    leftovers = [name for name in lake_entries(env) if name != hour_folder]
    assert all(name.startswith(f".{hour_folder}.tmp-") for name in leftovers), leftovers
    assert len(leftovers) == (1 if stage == "parquet" else 0), leftovers
