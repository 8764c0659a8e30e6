"""The batch path end to end on the real stack: simulator → Kafka → consumer → export → dbt → marts.

Three hours of simulated history go through the real realtime consumer (private topics and Redis
prefix), the hours are exported as one single-run backfill into a private DuckDB file and lake, dbt
builds every model, and each mart is compared with numbers recounted from the events sent. Reruns,
out-of-order exports, the checks (row count, Great Expectations, reconciliation with Redis) and bad
rows are covered on the same data.
"""

from __future__ import annotations

import itertools
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

from assets.kafka_export.expectations import EVENT_TIME_BOUNDS as EVENT_TIME
from assets.kafka_export.expectations import REQUIRED_COLUMNS
from assets.partitions import partition_key
from clickpulse.settings import Settings
from orchestration.history import materialize_history
from streaming.consumer.app import RealtimeConsumer
from streaming.simulator import SimulatedRecord, SimulationConfig, Simulator, Truth, backfill_window
from tests.integration.batch_support import (
    METRIC,
    BatchEnv,
    Expected,
    check_results,
    private_topics,
    produce,
)
from tests.support.dagster_metadata import metadata_float, metadata_int, metadata_list, metadata_mapping

EVENTS = 12_000
HOURS = 3
LATENESS_MINUTES = 60
EARLY_MINUTES = 5


@dataclass
class Pipeline:
    env: BatchEnv
    instance: dg.DagsterInstance
    records: list[SimulatedRecord]
    truth: Truth
    expected: Expected
    hours: list[datetime]
    export: dg.ExecuteInProcessResult
    marts: dg.ExecuteInProcessResult
    enriched: int

    @property
    def first(self) -> str:
        return partition_key(self.hours[0])

    @property
    def last(self) -> str:
        return partition_key(self.hours[-1])


def snapshot_raw(env: BatchEnv) -> list[tuple[Any, ...]]:
    return env.query(
        "select * exclude (received_at) from raw.click_events order by kafka_partition, kafka_offset"
    )


def lake_rows(path: Path) -> list[dict[str, Any]]:
    table = pq.read_table(path).drop_columns(["received_at"])
    return table.sort_by([("kafka_partition", "ascending"), ("kafka_offset", "ascending")]).to_pylist()


def snapshot_marts(env: BatchEnv) -> dict[str, list[tuple[Any, ...]]]:
    tables = [
        "fct_video_engagement_hourly",
        "fct_button_clicks_hourly",
        "fct_button_usage",
        "fct_video_popularity",
        "fct_recommendation_ctr",
        "fct_user_engagement_daily",
        "int_user_video_interactions_aggregated",
        "dim_videos",
        "dim_users",
    ]
    return {t: [_rounded(row) for row in env.query(f"select * from main.{t} order by all")] for t in tables}


def _rounded(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """Float sums depend on DuckDB's parallel aggregation order in the last bits; compare 12 digits."""
    return tuple(float(f"{v:.12g}") if isinstance(v, float) else v for v in row)


@pytest.fixture(scope="module")
def pipeline(
    tmp_path_factory: pytest.TempPathFactory, settings: Settings, kafka_bootstrap: str, redis_url: str
) -> Iterator[Pipeline]:
    assert settings.allowed_lateness_minutes == LATENESS_MINUTES
    # three closed hours ending an hour ago: all of them are partitions already (end offset -1)
    start, end = backfill_window(HOURS, now=datetime.now(UTC) - timedelta(hours=1))
    simulator = Simulator(
        SimulationConfig(events=EVENTS, seed=11, start=start, end=end, users=300, videos=60)
    )
    records = list(simulator)
    root = tmp_path_factory.mktemp("batch")
    simulator.write_dimensions(root / "dimensions")
    prefix = f"test-batch-{uuid.uuid4().hex[:8]}"
    with (
        private_topics(kafka_bootstrap, "raw", "enriched", "dlq") as (raw, enriched, dlq),
        pytest.MonkeyPatch.context() as monkeypatch,
        dg.instance_for_test() as instance,
    ):
        env = BatchEnv(settings, root, enriched, prefix)
        monkeypatch.setenv("CLICKPULSE_DUCKDB_PATH", str(env.duckdb_path))  # what dbt opens
        env.materialize(instance, "video_catalog", "user_profiles")  # the consumer enriches from them
        # In Kafka timestamp order, as the collector stamps records: an hour's export is the offset range
        # between offsets_for_times(h) and offsets_for_times(h + 1), so a record stamped hours earlier than
        # its neighbours would be exported (and rejected as too old) with the hour it was sent in.
        wire = sorted(((r.key, r.payload, r.kafka_timestamp_ms or 0) for r in records), key=lambda w: w[2])
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
            stats = consumer.run(stop_when=lambda s: s.records >= len(records), idle_timeout_s=60)
        finally:
            consumer.close()
        hours = [start + timedelta(hours=i) for i in range(HOURS)]
        runs = materialize_history(start, end, settings=env.settings, instance=instance)
        valid = (r.event for r in records if r.valid and r.event is not None)
        yield Pipeline(
            env,
            instance,
            records,
            simulator.truth,
            Expected.from_events(valid),
            hours,
            runs.export,
            runs.marts,
            stats.enriched,
        )


def test_export_writes_every_enriched_record_once(pipeline: Pipeline) -> None:
    env = pipeline.env
    (rows, distinct) = env.query("select count(*), count(distinct event_id) from raw.click_events")[0]
    assert rows == pipeline.enriched == len(pipeline.expected.events) == pipeline.truth.valid
    assert distinct == rows
    per_hour = dict(env.query("select partition_hour, count(*) from raw.click_events group by 1"))
    assert set(per_hour) <= {h.replace(tzinfo=None) for h in pipeline.hours}
    metadata = pipeline.export.asset_materializations_for_node("raw_click_events")[0].metadata
    assert metadata["rows"].value == rows
    assert metadata["hours"].value == HOURS
    assert metadata_float(metadata, "events_per_s") > 0
    offsets = metadata_mapping(metadata, "kafka_offsets")
    assert sum(p["records"] for hour in offsets.values() for p in hour.values()) == rows
    lake = sorted(p.name for p in (env.lake_dir / "click_events").iterdir())
    assert lake == [f"partition_hour={h:%Y-%m-%dT%H}" for h in pipeline.hours]
    assert len(pipeline.export.asset_materializations_for_node("raw_click_events")) == HOURS


def test_row_count_check_matches_kafka(pipeline: Pipeline) -> None:
    check = check_results(pipeline.export)["raw_click_events:row_count_matches_kafka"]
    assert check.passed, check.metadata
    assert (
        check.metadata["kafka_records"].value == check.metadata["warehouse_rows"].value == pipeline.enriched
    )


def test_great_expectations_rejects_exactly_the_events_outside_the_hour_bounds(pipeline: Pipeline) -> None:
    env = pipeline.env
    # The simulator's backfill stamps each record with its event_time: every one is inside its hour.
    outside = 0
    for record in pipeline.records:
        if record.valid and record.event is not None and not record.is_duplicate:
            stamp = datetime.fromtimestamp((record.kafka_timestamp_ms or 0) / 1000, UTC)
            hour = stamp.replace(minute=0, second=0, microsecond=0)
            moment = datetime.fromisoformat(str(record.event["event_time"]).replace("Z", "+00:00"))
            earliest = hour - timedelta(minutes=LATENESS_MINUTES)
            latest = hour + timedelta(minutes=60 + EARLY_MINUTES)
            outside += not earliest <= moment < latest
    check = check_results(pipeline.export)["raw_click_events:great_expectations_suite"]
    assert check.metadata["rows_validated"].value == pipeline.enriched
    assert check.metadata["rejected_rows"].value == outside
    assert check.passed == (outside == 0)
    assert env.query("select count(*) from raw.rejected_rows")[0][0] == outside


def test_engagement_mart_matches_the_events_and_the_simulator_truth(pipeline: Pipeline) -> None:
    rows = pipeline.env.query(
        "select event_hour, video_id, impressions, clicks, conversions, ctr, conversion_rate, unique_users, "
        "late_events from main.fct_video_engagement_hourly"
    )
    expected = pipeline.expected.video_hours()
    got = {(h.replace(tzinfo=UTC), v): rest for h, v, *rest in rows}
    assert set(got) == set(expected)
    truth_hours = pipeline.truth.to_dict()["video_hours"]
    for (hour, video_id), (imp, clicks, conv, ctr, conv_rate, users, late) in got.items():
        want = expected[(hour, video_id)]
        assert (imp, clicks, conv, users, late) == (
            want["impressions"],
            want["clicks"],
            want["conversions"],
            len(want["users"]),
            0,
        )
        assert ctr == (pytest.approx(clicks / imp) if imp else None)
        assert conv_rate == (pytest.approx(conv / clicks) if clicks else None)
        truth = truth_hours[video_id][f"{hour:%Y-%m-%dT%H}:00:00Z"]
        assert (imp, clicks, conv, users) == (
            truth["impressions"],
            truth["clicks"],
            truth["conversions"],
            truth["unique_users"],
        )


def test_button_marts_match(pipeline: Pipeline) -> None:
    env = pipeline.env
    hourly = env.query("select event_hour, video_id, button_id, clicks from main.fct_button_clicks_hourly")
    assert {(h.replace(tzinfo=UTC), v, b): n for h, v, b, n in hourly} == dict(
        pipeline.expected.button_clicks_hourly()
    )
    truth_buttons = pipeline.truth.to_dict()["buttons"]
    by_button: dict[str, int] = {}
    for _, _, button, n in hourly:
        by_button[button] = by_button.get(button, 0) + n
    assert by_button == truth_buttons
    usage = env.query(
        "select button_id, position_bucket, clicks, unique_users, click_share, impressions, ctr "
        "from main.fct_button_usage"
    )
    expected = pipeline.expected.button_usage()
    rec_impressions = pipeline.expected.rec_tile_impressions()
    totals: dict[str, int] = {}
    for (button, _), row in expected.items():
        totals[button] = totals.get(button, 0) + row["clicks"]
    for button, bucket, clicks, users, share, impressions, ctr in usage:
        want = expected.get((button, bucket), {"clicks": 0, "users": set()})
        assert (clicks, users) == (want["clicks"], len(want["users"]))
        if totals.get(button):
            assert share == pytest.approx(clicks / totals[button])
        if button == "rec_tile":
            assert impressions == rec_impressions.get(bucket, 0)
            assert ctr == (pytest.approx(clicks / impressions) if impressions else None)
        else:
            assert impressions is None
    assert {(b, p) for b, p, *_ in usage if _[0]} == set(expected)


def test_popularity_mart_matches_counts_and_trending_scores(pipeline: Pipeline) -> None:
    rows = pipeline.env.query(
        "select video_id, impressions, clicks, conversions, unique_users, ctr, trending_score, "
        "popularity_rank from main.fct_video_popularity"
    )
    expected = pipeline.expected.videos()
    truth_videos = pipeline.truth.to_dict()["videos"]
    catalog = {r[0] for r in pipeline.env.query("select video_id from raw.video_catalog")}
    assert {r[0] for r in rows} == catalog | set(expected)
    for video_id, imp, clicks, conv, users, ctr, score, _ in rows:
        want = expected.get(video_id)
        if want is None:
            assert (imp, clicks, conv, users, score) == (0, 0, 0, 0, 0)
            continue
        assert (imp, clicks, conv, users) == (
            want["impressions"],
            want["clicks"],
            want["conversions"],
            len(want["users"]),
        )
        truth = truth_videos[video_id]
        assert (imp, clicks, conv, users) == (
            truth["impressions"],
            truth["clicks"],
            truth["conversions"],
            truth["unique_users"],
        )
        assert ctr == (pytest.approx(clicks / imp) if imp else None)
        assert score == pytest.approx(want["trending"], rel=1e-9)
    ranked = sorted(rows, key=lambda r: r[7])
    assert [r[7] for r in ranked] == list(range(1, len(rows) + 1))
    assert all((a[6], b[0]) >= (b[6], a[0]) for a, b in itertools.pairwise(ranked))


def test_recommendation_ctr_mart_matches(pipeline: Pipeline) -> None:
    rows = pipeline.env.query(
        "select event_date, model_version, rec_slot, impressions, clicks, conversions, ctr "
        "from main.fct_recommendation_ctr"
    )
    expected = pipeline.expected.rec_ctr()
    for day, model, slot, imp, clicks, conv, ctr in rows:
        assert (imp, clicks, conv) == (
            expected[(day, model, slot, "impressions")],
            expected[(day, model, slot, "clicks")],
            expected[(day, model, slot, "conversions")],
        )
        assert ctr == (pytest.approx(clicks / imp) if imp else None)
    assert {(d, m, s) for d, m, s, *_ in rows} == {(d, m, s) for d, m, s, _ in expected}
    truth = {(r["rec_slot"], r["model_version"]): r for r in pipeline.truth.to_dict()["rec_slots"]}
    for (slot, model), counts in truth.items():
        assert sum(r[3] for r in rows if (r[2], r[1]) == (slot, model)) == counts["impressions"]
        assert sum(r[4] for r in rows if (r[2], r[1]) == (slot, model)) == counts["clicks"]


def test_user_marts_match(pipeline: Pipeline) -> None:
    env = pipeline.env
    daily = env.query(
        "select event_date, user_id, sessions, impressions, clicks, conversions, videos_watched, ctr "
        "from main.fct_user_engagement_daily"
    )
    expected = pipeline.expected.user_days()
    sessions = pipeline.expected.sessions_per_user_day()
    assert {(d, u) for d, u, *_ in daily} == set(expected)
    for day, user, n_sessions, imp, clicks, conv, videos, ctr in daily:
        want = expected[(day, user)]
        assert (imp, clicks, conv, videos) == (
            want["impressions"],
            want["clicks"],
            want["conversions"],
            len(want["videos"]),
        )
        assert n_sessions == sessions.get((day, user), 0)
        assert ctr == (pytest.approx(clicks / imp) if imp else None)
    truth_users = pipeline.truth.to_dict()["users"]
    per_user: dict[str, int] = {}
    for _, user, _, imp, clicks, conv, _, _ in daily:
        per_user[user] = per_user.get(user, 0) + imp + clicks + conv
    assert per_user == truth_users
    pairs = env.query(
        "select user_id, video_id, impressions, clicks, conversions "
        "from main.int_user_video_interactions_aggregated"
    )
    assert {(u, v): {"impressions": i, "clicks": c, "conversions": n} for u, v, i, c, n in pairs} == (
        pipeline.expected.user_videos()
    )


def test_dimension_assets_fill_the_warehouse_and_redis(pipeline: Pipeline) -> None:
    from streaming.keyspace import Keyspace, read_video_metadata
    from streaming.redis_conn import connect

    env = pipeline.env
    catalog = (env.dimensions_dir / "video_catalog.csv").read_text().splitlines()
    users = (env.dimensions_dir / "user_profiles.csv").read_text().splitlines()
    assert env.query("select count(*) from main.dim_videos")[0][0] == len(catalog) - 1
    assert env.query("select count(*) from main.dim_users")[0][0] == len(users) - 1
    video_id, title = env.query("select video_id, title from raw.video_catalog order by video_id limit 1")[0]
    client = connect(env.settings.redis_url)
    try:
        assert (
            read_video_metadata(client, video_id, keyspace=Keyspace(prefix=env.redis_prefix))["title"]
            == title
        )
    finally:
        client.close()
    enriched = env.query("select count(*) from raw.click_events where user_country is null")[0][0]
    assert enriched == 0  # the consumer found every user's attributes where user_profiles put them


def test_reconciliation_with_redis_passes_for_the_closed_hours(pipeline: Pipeline) -> None:
    check = check_results(pipeline.marts)["fct_video_engagement_hourly:reconciles_with_redis"]
    assert check.passed, check.metadata["mismatch_sample"].value
    compared = metadata_list(check.metadata, "hours")
    assert compared[-1] == f"{pipeline.hours[-1] - timedelta(hours=1):%Y-%m-%dT%H}"
    assert metadata_int(check.metadata, "video_hours_compared") > 0
    redis, mart = (
        metadata_mapping(check.metadata, "redis_totals"),
        metadata_mapping(check.metadata, "mart_totals"),
    )
    assert {m: redis[m] for m in METRIC.values()} == {m: mart[m] for m in METRIC.values()}
    assert redis["unique_users"] == pytest.approx(mart["unique_users"], rel=0.02)


def test_rerunning_a_partition_changes_nothing(pipeline: Pipeline) -> None:
    env = pipeline.env
    raw_before, marts_before = snapshot_raw(env), snapshot_marts(env)
    lake_file = (
        env.lake_dir / "click_events" / f"partition_hour={pipeline.hours[1]:%Y-%m-%dT%H}" / "part-0.parquet"
    )
    lake_before = lake_rows(lake_file)
    key = partition_key(pipeline.hours[1])
    env.run("hourly_export", pipeline.instance, first=key)
    env.run("marts", pipeline.instance, first=key)
    assert snapshot_raw(env) == raw_before
    assert snapshot_marts(env) == marts_before
    # Same rows in the hour's one file; the row order inside it follows how partitions were interleaved.
    assert lake_rows(lake_file) == lake_before
    assert [p.name for p in lake_file.parent.iterdir()] == [lake_file.name]
    assert sorted(p.name for p in lake_file.parent.parent.iterdir()) == [
        f"partition_hour={h:%Y-%m-%dT%H}" for h in pipeline.hours
    ]


def test_out_of_order_exports_give_the_same_warehouse(pipeline: Pipeline, tmp_path: Path) -> None:
    other = BatchEnv(pipeline.env.base, tmp_path, pipeline.env.enriched_topic, pipeline.env.redis_prefix)
    with pytest.MonkeyPatch.context() as monkeypatch, dg.instance_for_test() as instance:
        monkeypatch.setenv("CLICKPULSE_DUCKDB_PATH", str(other.duckdb_path))
        for hour in (pipeline.hours[2], pipeline.hours[0], pipeline.hours[1]):
            other.run("hourly_export", instance, first=partition_key(hour), raise_on_error=True)
        assert snapshot_raw(other) == snapshot_raw(pipeline.env)


def test_bad_rows_are_rejected_with_their_expectation(
    tmp_path: Path, settings: Settings, kafka_bootstrap: str, redis_url: str
) -> None:
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)
    base = {
        "event_type": "click",
        "user_id": "u1",
        "session_id": "s1",
        "video_id": "v1",
        "button_id": "play",
        "playback_position_s": 1.0,
        "is_late": False,
    }

    def event(minute: int, **changes: Any) -> dict[str, Any]:
        moment = hour + timedelta(minutes=minute)
        return {**base, "event_id": str(uuid.uuid4()), "event_time": moment.isoformat(), **changes}

    good = [event(m) for m in range(10)]
    duplicate = event(20)
    bad = {
        "event_type": event(11, event_type="purchase"),
        "playback": event(12, playback_position_s=-3.5),
        "null_id": event(13, event_id=None),
        "too_old": event(14, event_time=(hour - timedelta(minutes=LATENESS_MINUTES + 1)).isoformat()),
        "too_new": event(15, event_time=(hour + timedelta(minutes=60 + EARLY_MINUTES + 1)).isoformat()),
    }
    payloads = [orjson.dumps(e) for e in [*good, *bad.values(), duplicate, duplicate]] + [b"{not json"]
    stamp = int((hour + timedelta(minutes=30)).timestamp() * 1000)
    with (
        private_topics(kafka_bootstrap, "enriched-bad") as (topic,),
        dg.instance_for_test() as instance,
        pytest.MonkeyPatch.context() as monkeypatch,
    ):
        produce(settings, topic, ((b"u1", p, stamp) for p in payloads))
        env = BatchEnv(settings, tmp_path, topic, f"test-bad-{uuid.uuid4().hex[:8]}")
        monkeypatch.setenv("CLICKPULSE_DUCKDB_PATH", str(env.duckdb_path))
        result = env.run("hourly_export", instance, first=partition_key(hour))
        checks = check_results(result)
        rejected = env.query(
            "select failed_expectations, event_id, kafka_offset from raw.rejected_rows order by kafka_offset"
        )
        loaded = env.query("select event_id from raw.click_events")
        marts = env.run("marts", instance, first=partition_key(hour))
        snapshot = [
            env.query("select * exclude (received_at) from raw.click_events order by all"),
            env.query("select * exclude (rejected_at) from raw.rejected_rows order by all"),
            env.query("select * from main.fct_video_engagement_hourly order by all"),
        ]
        env.run("hourly_export", instance, first=partition_key(hour))
        env.run("marts", instance, first=partition_key(hour))
        assert snapshot == [
            env.query("select * exclude (received_at) from raw.click_events order by all"),
            env.query("select * exclude (rejected_at) from raw.rejected_rows order by all"),
            env.query("select * from main.fct_video_engagement_hourly order by all"),
        ]
    suite = checks["raw_click_events:great_expectations_suite"]
    assert not suite.passed
    # 7 of 18 records rejected: over the 5% default, so an error rather than a warning
    assert suite.severity == dg.AssetCheckSeverity.ERROR
    assert suite.metadata["hours_over_max_share"].value == [f"{hour:%Y-%m-%dT%H}"]
    assert suite.metadata["great_expectations_agrees"].value is True  # the error is the share, not GE
    # 5 bad rows, the later copy of the duplicate, and the record that is not JSON (null ids)
    assert suite.metadata["rejected_rows"].value == len(rejected) == len(bad) + 1 + 1
    assert suite.metadata["rows_validated"].value == len(payloads)
    counted = checks["raw_click_events:row_count_matches_kafka"]
    assert counted.passed
    loaded_rows = metadata_int(counted.metadata, "loaded_rows")
    assert loaded_rows + metadata_int(counted.metadata, "rejected_rows") == len(payloads)
    # raw.click_events holds the good events and the earliest copy of the duplicate, nothing else
    assert sorted(eid for (eid,) in loaded) == sorted([e["event_id"] for e in good] + [duplicate["event_id"]])
    by_record = {offset: (orjson.loads(names), eid) for names, eid, offset in rejected}
    assert len(by_record) == len(rejected)  # one row per rejected record
    failed = {name for names, _ in by_record.values() for name in names}
    assert "expect_column_values_to_be_in_set(event_type)" in failed
    assert "expect_column_values_to_be_between(playback_position_s)" in failed
    assert "expect_column_values_to_not_be_null(event_id)" in failed
    assert "expect_column_values_to_be_between(event_time)" in failed
    assert "expect_column_values_to_be_unique(event_id)" in failed
    assert sum(1 for names, _ in by_record.values() if names == [EVENT_TIME]) == 2
    assert [names for names, eid in by_record.values() if eid == duplicate["event_id"]] == [
        ["expect_column_values_to_be_unique(event_id)"]
    ]
    assert by_record[max(by_record)][0] == [  # the record that is not JSON fails every id check
        f"expect_column_values_to_not_be_null({column})" for column in REQUIRED_COLUMNS
    ]
    failures = metadata_mapping(suite.metadata, "failures_by_expectation")
    assert failures["expect_column_values_to_be_unique(event_id)"] == 1
    # dbt builds the hour and its tests pass: no bad row reached staging
    assert marts.success
    assert not [
        name
        for name, check in check_results(marts).items()
        if not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    ]
