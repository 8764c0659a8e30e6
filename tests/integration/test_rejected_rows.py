"""Rows failing the Great Expectations suite leave raw.click_events, on the real stack end to end.

Three closed hours of simulated traffic plus hand-made events that pass the event contract (so the real
consumer counts and forwards them) but fail the export's suite: clicks and impressions from a client
clock running 80 minutes ahead (event_time past the hour's early allowance: the stream counts them in
their event_time hour) and events arriving 150 minutes after they happened (beyond the allowed
lateness: flagged late, never in hour buckets). Two events only 4 minutes ahead stay inside the
allowance and are loaded. Everything goes simulator → Kafka → consumer → Dagster export → dbt in
process, on private topics, a private Redis prefix, DuckDB file and lake. The test checks, against
numbers it computes from what it sent: loaded + rejected = exported records per hour, the rejected rows
and their reasons, the checks (a warning below CLICKPULSE_EXPORT_MAX_REJECTED_SHARE), dbt's tests, the
marts without the rejected events, the reconciliation with Redis adding back exactly the events the
stream counted, and that rerunning an hour changes nothing.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import orjson
import pyarrow.parquet as pq
import pytest

from assets.kafka_export.expectations import EVENT_TIME_BOUNDS
from assets.partitions import partition_key
from clickpulse.settings import Settings
from orchestration.history import materialize_history
from streaming.consumer.app import RealtimeConsumer
from streaming.simulator import SimulationConfig, Simulator, backfill_window
from tests.integration.batch_support import (
    METRIC,
    BatchEnv,
    Expected,
    check_results,
    hour_of,
    parse_time,
    private_topics,
    produce,
)
from tests.support.dagster_metadata import metadata_mapping

EVENTS = 3600
HOURS = 3
AHEAD = timedelta(minutes=80)  # beyond the 5-minute early allowance from anywhere in the hour
BEHIND = timedelta(minutes=150)  # beyond the 60-minute lateness from anywhere in the hour
SLIGHTLY_AHEAD = timedelta(minutes=4)


@dataclass
class Sent:
    """What went to clicks.raw, with the Kafka timestamp each record got."""

    events: list[tuple[dict[str, Any], datetime]]  # distinct valid events and their Kafka timestamp
    early: list[dict[str, Any]]
    old: list[dict[str, Any]]

    @property
    def rejected_ids(self) -> set[str]:
        return {e["event_id"] for e in self.early + self.old}

    def records_per_hour(self) -> Counter[datetime]:
        return Counter(hour_of(stamp) for _, stamp in self.events)

    def rejected_per_hour(self) -> Counter[datetime]:
        return Counter(hour_of(stamp) for e, stamp in self.events if e["event_id"] in self.rejected_ids)

    def loaded(self) -> Expected:
        return Expected.from_events(e for e, _ in self.events if e["event_id"] not in self.rejected_ids)


@dataclass
class Run:
    env: BatchEnv
    instance: dg.DagsterInstance
    sent: Sent
    hours: list[datetime]
    export: dg.ExecuteInProcessResult
    marts: dg.ExecuteInProcessResult


def craft(template: dict[str, Any], event_type: str, event_time: datetime) -> dict[str, Any]:
    """A contract-valid event of the simulated user, session and video, at ``event_time``."""
    event = {k: template[k] for k in ("user_id", "session_id", "video_id")}
    event.update(event_id=str(uuid.uuid4()), event_type=event_type, event_time=event_time.isoformat())
    if event_type == "click":
        event.update(button_id="like", playback_position_s=12.5)
    return event


def stamp_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


@pytest.fixture(scope="module")
def run(
    tmp_path_factory: pytest.TempPathFactory, settings: Settings, kafka_bootstrap: str, redis_url: str
) -> Iterator[Run]:
    assert (settings.allowed_lateness_minutes, settings.allowed_early_minutes) == (60, 5)
    assert settings.export_max_rejected_share == 0.05
    start, end = backfill_window(HOURS, now=datetime.now(UTC) - timedelta(hours=1))
    hours = [start + timedelta(hours=i) for i in range(HOURS)]
    simulator = Simulator(
        SimulationConfig(events=EVENTS, seed=23, start=start, end=end, users=120, videos=30)
    )
    records = list(simulator)
    valid = [r for r in records if r.valid and r.event is not None and not r.is_duplicate]
    events: list[tuple[dict[str, Any], datetime]] = [
        (r.event, datetime.fromtimestamp((r.kafka_timestamp_ms or 0) / 1000, UTC))
        for r in valid
        if r.event is not None
    ]
    templates = [r.event for r in valid[:: len(valid) // 12] if r.event is not None]
    early, old, crafted = [], [], []
    for i in range(6):  # sent in the first hour, stamped 80 minutes ahead: in the second hour
        sent_at = hours[0] + timedelta(minutes=10 + 5 * i)
        event = craft(templates[i], "click" if i % 3 else "impression", sent_at + AHEAD)
        early.append(event)
        crafted.append((event, sent_at))
    for i in range(4):  # sent in the third hour about events of the first
        sent_at = hours[2] + timedelta(minutes=20 + 5 * i)
        event = craft(templates[6 + i], "click", sent_at - BEHIND)
        old.append(event)
        crafted.append((event, sent_at))
    for i in range(2):  # 4 minutes ahead at the end of the first hour: inside the allowance
        sent_at = hours[0] + timedelta(minutes=58, seconds=20 * i)
        crafted.append((craft(templates[10 + i], "click", sent_at + SLIGHTLY_AHEAD), sent_at))
    events += crafted
    root = tmp_path_factory.mktemp("rejected")
    simulator.write_dimensions(root / "dimensions")
    prefix = f"test-rejected-{uuid.uuid4().hex[:8]}"
    with (
        private_topics(kafka_bootstrap, "raw", "enriched", "dlq") as (raw, enriched, dlq),
        pytest.MonkeyPatch.context() as monkeypatch,
        dg.instance_for_test() as instance,
    ):
        env = BatchEnv(settings, root, enriched, prefix)
        monkeypatch.setenv("CLICKPULSE_DUCKDB_PATH", str(env.duckdb_path))
        env.materialize(instance, "video_catalog", "user_profiles")
        wire = [(r.key, r.payload, r.kafka_timestamp_ms or 0) for r in records]
        wire += [(e["user_id"].encode(), orjson.dumps(e), stamp_ms(at)) for e, at in crafted]
        # In timestamp order, as the collector stamps them: an hour's export is an offset range.
        wire.sort(key=lambda record: record[2])
        produce(settings, raw, wire)
        consumer_settings = settings.model_copy(
            update={
                "topic_raw": raw,
                "topic_enriched": enriched,
                "topic_dlq": dlq,
                "redis_prefix": prefix,
                "live_channel_prefix": prefix,
                "consumer_group": f"{prefix}-realtime",
            }
        )
        consumer = RealtimeConsumer(consumer_settings, from_beginning=True)
        try:
            stats = consumer.run(stop_when=lambda s: s.records >= len(wire), idle_timeout_s=60)
        finally:
            consumer.close()
        assert stats.enriched == len(events), "the consumer forwards every contract-valid event once"
        runs = materialize_history(start, end, settings=env.settings, instance=instance)
        assert runs.success
        yield Run(env, instance, Sent(events, early, old), hours, runs.export, runs.marts)


def per_hour(env: BatchEnv, table: str) -> dict[datetime, int]:
    rows = env.query(f"select partition_hour, count(*) from raw.{table} group by 1")
    return {hour.replace(tzinfo=UTC): n for hour, n in rows}


def test_every_exported_record_is_loaded_or_rejected_never_both(run: Run) -> None:
    records, rejected = run.sent.records_per_hour(), run.sent.rejected_per_hour()
    assert rejected == {run.hours[0]: len(run.sent.early), run.hours[2]: len(run.sent.old)}
    assert per_hour(run.env, "rejected_rows") == dict(rejected)
    assert per_hour(run.env, "click_events") == {h: records[h] - rejected[h] for h in run.hours}
    loaded_ids = {eid for (eid,) in run.env.query("select event_id from raw.click_events")}
    rejected_ids = {eid for (eid,) in run.env.query("select event_id from raw.rejected_rows")}
    assert rejected_ids == run.sent.rejected_ids
    assert not loaded_ids & rejected_ids
    assert loaded_ids | rejected_ids == {e["event_id"] for e, _ in run.sent.events}
    # The lake keeps every exported record of the hour, loaded or rejected.
    for hour in run.hours:
        path = run.env.lake_dir / "click_events" / f"partition_hour={hour:%Y-%m-%dT%H}" / "part-0.parquet"
        assert pq.read_metadata(path).num_rows == records[hour]


def test_rejected_rows_say_which_expectation_failed_and_keep_the_record(run: Run) -> None:
    rows = run.env.query(
        "select event_id, event_time, failed_expectations, detail, raw_json from raw.rejected_rows"
    )
    sent = {e["event_id"]: e for e in run.sent.early + run.sent.old}
    for event_id, event_time, failed, detail, raw_json in rows:
        event = sent[event_id]
        moment = datetime.fromisoformat(event["event_time"])
        assert event_time.replace(tzinfo=UTC) == moment
        assert orjson.loads(failed) == [EVENT_TIME_BOUNDS]
        assert detail == f"event_time={moment.isoformat()!r}"
        record = orjson.loads(raw_json)
        assert (record["event_id"], record["user_id"], record["video_id"]) == (
            event_id,
            event["user_id"],
            event["video_id"],
        )
        assert record["is_late"] is (event in run.sent.old)


def test_the_export_and_its_checks_report_the_rejects_as_a_warning(run: Run) -> None:
    records, rejected = run.sent.records_per_hour(), run.sent.rejected_per_hour()
    total, dropped = sum(records.values()), sum(rejected.values())
    metadata = run.export.asset_materializations_for_node("raw_click_events")[0].metadata
    assert (metadata["records"].value, metadata["rows"].value) == (total, total - dropped)
    assert metadata["rejected_rows"].value == dropped
    assert metadata["rejected_by_expectation"].value == {EVENT_TIME_BOUNDS: dropped}
    checks = check_results(run.export)
    suite = checks["raw_click_events:great_expectations_suite"]
    assert not suite.passed
    assert suite.severity == dg.AssetCheckSeverity.WARN  # every hour under the 5% default
    assert suite.metadata["rejected_rows"].value == dropped
    assert suite.metadata["rows_validated"].value == total
    assert suite.metadata["failures_by_expectation"].value == {EVENT_TIME_BOUNDS: dropped}
    assert suite.metadata["hours_over_max_share"].value == []
    # Great Expectations, rerun by the check on the lake, rejects exactly what the export routed
    assert suite.metadata["great_expectations_agrees"].value is True
    per_hour = metadata_mapping(suite.metadata, "per_hour")
    assert {h: m["ge_rejected"] for h, m in per_hour.items()} == {
        f"{h:%Y-%m-%dT%H}": rejected.get(h, 0) for h in run.hours
    }
    first = per_hour[f"{run.hours[0]:%Y-%m-%dT%H}"]
    assert first["rejected_rows"] == len(run.sent.early) and first["records"] == records[run.hours[0]]
    counted = checks["raw_click_events:row_count_matches_kafka"]
    assert counted.passed, counted.metadata
    assert counted.metadata["kafka_records"].value == total
    assert counted.metadata["rejected_rows"].value == dropped


def test_dbt_builds_and_tests_pass_and_marts_hold_only_loaded_events(run: Run) -> None:
    assert run.marts.success
    failed = [
        (name, check.severity)
        for name, check in check_results(run.marts).items()
        if not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    ]
    assert failed == []
    rows = run.env.query(
        "select event_hour, video_id, impressions, clicks, conversions from main.fct_video_engagement_hourly"
    )
    got = {(h.replace(tzinfo=UTC), v): (i, c, n) for h, v, i, c, n in rows}
    expected = {
        key: (row["impressions"], row["clicks"], row["conversions"])
        for key, row in run.sent.loaded().video_hours().items()
    }
    assert got == expected


def test_reconciliation_adds_back_exactly_the_rejects_the_stream_counted(run: Run) -> None:
    check = check_results(run.marts)["fct_video_engagement_hourly:reconciles_with_redis"]
    assert check.passed, check.metadata["mismatch_sample"].value
    assert check.metadata["hours"].value == [f"{run.hours[1]:%Y-%m-%dT%H}"]
    in_hour = [e for e in run.sent.early if hour_of(parse_time(e["event_time"])) == run.hours[1]]
    assert len(in_hour) == len(run.sent.early)  # all in the second hour, the one reconciled
    counted = Counter(METRIC[e["event_type"]] for e in in_hour)
    assert check.metadata["rejected_rows_counted_by_stream"].value == {
        m: counted.get(m, 0) for m in ("impressions", "clicks", "conversions")
    }
    redis, mart = (
        metadata_mapping(check.metadata, "redis_totals"),
        metadata_mapping(check.metadata, "mart_totals"),
    )
    assert {m: redis[m] - mart[m] for m in METRIC.values()} == {m: counted.get(m, 0) for m in METRIC.values()}


def snapshot(env: BatchEnv) -> dict[str, list[tuple[Any, ...]]]:
    return {
        "click_events": env.query("select * exclude (received_at) from raw.click_events order by all"),
        "rejected_rows": env.query("select * exclude (rejected_at) from raw.rejected_rows order by all"),
        "engagement": env.query("select * from main.fct_video_engagement_hourly order by all"),
        "buttons": env.query("select * from main.fct_button_clicks_hourly order by all"),
    }


def test_rerunning_an_hour_with_rejects_changes_nothing(run: Run, tmp_path: Path) -> None:
    before = snapshot(run.env)
    key = partition_key(run.hours[0])
    run.env.run("hourly_export", run.instance, first=key)
    run.env.run("marts", run.instance, first=key)
    assert snapshot(run.env) == before
