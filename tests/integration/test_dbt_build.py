"""`dbt build` on a hand-built DuckDB warehouse; every mart number is checked against plain Python.

The raw events exercise what the marts must get right: an event_id exported twice (two Kafka
records in two partition hours), a late event, events on both sides of an hour and a day boundary,
conversions, a video with clicks but no impressions, and a catalog video without events. The
expected numbers are computed below from those same events, never copied from a run.

Then, on the same warehouse: an incremental run picks up a late event inside the lookback (and
leaves one outside it alone), a rerun changes nothing, and a Dagster-style partition-window run
(vars from assets.dbt_vars) reaches back to the older hour.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, fields
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
from dbt.cli.main import dbtRunner

from assets.dbt_vars import dbt_vars_arg, dbt_vars_for_window, rebuilt_hours

DBT_PROJECT_DIR = Path(__file__).resolve().parents[2] / "dbt_project"
LATENESS = timedelta(minutes=60)  # dbt_project.yml default of var lateness_minutes
TRENDING_WEIGHTS = {"impression": 0.1, "click": 1.0, "conversion": 5.0}  # dbt_project.yml defaults
TRENDING_HALF_LIFE_HOURS = 6.0
REC_TILE = "rec_tile"

Row = dict[str, Any]
Key = tuple[Any, ...]


@dataclass(frozen=True)
class Record:
    """One Kafka record of clicks.enriched, as the export asset writes it to raw.click_events."""

    event_id: str
    event_type: str
    event_time: datetime
    kafka_timestamp: datetime
    kafka_partition: int
    kafka_offset: int
    user_id: str
    session_id: str
    video_id: str
    button_id: str | None = None
    playback_position_s: float | None = None
    surface: str | None = None
    rec_slot: int | None = None
    model_version: str | None = None
    conversion_type: str | None = None

    @property
    def partition_hour(self) -> datetime:
        return floor_hour(self.kafka_timestamp)

    @property
    def is_late(self) -> bool:
        return self.event_time < self.kafka_timestamp - LATENESS

    @property
    def event_hour(self) -> datetime:
        return floor_hour(self.event_time)


def at(day: int, hour: int, minute: int = 0, second: float = 0) -> datetime:
    """A UTC time on 2024-04-30 (day=30) or 2024-05-01 (day=1)."""
    base = datetime(2024, 4, 30) if day == 30 else datetime(2024, 5, 1)
    return base + timedelta(hours=hour, minutes=minute, seconds=second)


def floor_hour(value: datetime) -> datetime:
    return value.replace(minute=0, second=0, microsecond=0)


CATALOG = [
    ("v1", "Pilot", "Lighthouse", "drama", 3000, date(2024, 1, 5)),
    ("v2", "Finale", "Lighthouse", "drama", 3300, date(2024, 2, 9)),
    ("v3", "Quiet Film", None, "documentary", 5400, date(2023, 11, 1)),  # never watched
]
PROFILES = [
    ("u1", "DE", "premium", date(2023, 1, 2), "de"),
    ("u2", "FR", "free", date(2023, 6, 7), "fr"),
    ("u3", "US", "standard", date(2024, 3, 1), "en"),
]

# Exported by the first runs. Hours 2024-04-30 21:00 and 23:00, 2024-05-01 00:00.
INITIAL_RECORDS = [
    Record("e01", "impression", at(30, 23, 5), at(30, 23, 5, 1), 0, 1, "u1", "s1", "v1",
           surface="home", rec_slot=1, model_version="m1"),
    Record("e02", "impression", at(30, 23, 6), at(30, 23, 6, 1), 1, 1, "u2", "s2", "v1",
           surface="home", rec_slot=2, model_version="m1"),
    Record("e03", "click", at(30, 23, 7), at(30, 23, 7, 1), 0, 2, "u1", "s1", "v1",
           button_id=REC_TILE, surface="home", rec_slot=1, model_version="m1"),
    Record("e04", "click", at(30, 23, 10), at(30, 23, 10, 1), 0, 3, "u1", "s1", "v1",
           button_id="play", playback_position_s=0.0, surface="player"),
    # Just before the hour (and day) boundary; exported twice, the copy in the next partition hour.
    Record("e05", "click", at(30, 23, 59, 59.5), at(30, 23, 59, 59.9), 0, 4, "u1", "s1", "v1",
           button_id="pause", playback_position_s=590.5, surface="player"),
    Record("e05", "click", at(30, 23, 59, 59.5), at(1, 0, 0, 2), 0, 9, "u1", "s1", "v1",
           button_id="pause", playback_position_s=590.5, surface="player"),
    Record("e06", "conversion", at(30, 23, 30), at(30, 23, 30, 1), 1, 2, "u2", "s2", "v1",
           surface="home", rec_slot=2, model_version="m1", conversion_type="subscribe"),
    # Exactly on the boundary: belongs to 2024-05-01 00:00.
    Record("e07", "click", at(1, 0, 0), at(1, 0, 0, 1), 0, 5, "u1", "s1", "v1",
           button_id="seek_forward", playback_position_s=600.0, surface="player"),
    Record("e08", "impression", at(1, 0, 15), at(1, 0, 15, 1), 2, 1, "u3", "s3", "v1",
           playback_position_s=1500.0, surface="end_card", rec_slot=1, model_version="m2"),
    # v2 gets clicks and a conversion but no impression at all.
    Record("e09", "click", at(1, 0, 16), at(1, 0, 16, 1), 2, 2, "u3", "s3", "v2", button_id=REC_TILE,
           playback_position_s=1500.0, surface="end_card", rec_slot=1, model_version="m2"),
    Record("e10", "click", at(1, 0, 20), at(1, 0, 20, 1), 2, 3, "u3", "s3", "v2",
           button_id="play", playback_position_s=30.0, surface="player"),
    Record("e11", "conversion", at(1, 0, 40), at(1, 0, 40, 1), 2, 4, "u3", "s3", "v2",
           surface="player", conversion_type="purchase"),
    # Late: happened 21:50, reached Kafka 00:30 (more than the 60 minutes allowed).
    Record("e12", "click", at(30, 21, 50), at(1, 0, 30), 1, 3, "u2", "s2", "v1",
           button_id="like", playback_position_s=200.0, surface="player"),
]  # fmt: skip

# Exported later, before the incremental run (latest loaded hour then is 2024-05-01 00:00).
LATE_RECORDS = [
    # Late, but its hour (23:00) is inside the lookback floor_hour(00:00 - 60 min).
    Record("e13", "click", at(30, 23, 45), at(1, 0, 55), 2, 5, "u3", "s5", "v1",
           button_id="like", playback_position_s=100.0, surface="player"),
    # Late and older than the lookback: hour 20:00 waits for a run whose window reaches it.
    Record("e14", "impression", at(30, 20, 10), at(1, 0, 58), 2, 6, "u3", "s5", "v2",
           surface="home", rec_slot=3, model_version="m2"),
]  # fmt: skip


# ---------------------------------------------------------------- expected marts, in plain Python


def dedupe(records: Iterable[Record]) -> list[Record]:
    """One record per event_id: the earliest Kafka record (timestamp, partition, offset)."""
    kept: dict[str, Record] = {}
    for record in records:
        current = kept.get(record.event_id)
        order = (record.kafka_timestamp, record.kafka_partition, record.kafka_offset)
        if current is None or order < (
            current.kafka_timestamp,
            current.kafka_partition,
            current.kafka_offset,
        ):
            kept[record.event_id] = record
    return list(kept.values())


def ratio(numerator: int, denominator: int | None) -> float | None:
    return None if not denominator else numerator / denominator


def counts(events: Sequence[Record]) -> tuple[int, int, int]:
    kinds = [e.event_type for e in events]
    return kinds.count("impression"), kinds.count("click"), kinds.count("conversion")


def group(events: Iterable[Record], key: Callable[[Record], Key]) -> dict[Key, list[Record]]:
    groups: dict[Key, list[Record]] = defaultdict(list)
    for event in events:
        groups[key(event)].append(event)
    return groups


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


def expected_video_engagement_hourly(events: list[Record]) -> dict[Key, Row]:
    expected = {}
    for (hour, video), group_events in group(events, lambda e: (e.event_hour, e.video_id)).items():
        impressions, clicks, conversions = counts(group_events)
        expected[(hour, video)] = {
            "impressions": impressions,
            "clicks": clicks,
            "conversions": conversions,
            "ctr": ratio(clicks, impressions),
            "conversion_rate": ratio(conversions, clicks),
            "unique_users": len({e.user_id for e in group_events}),
            "late_events": sum(e.is_late for e in group_events),
        }
    return expected


def expected_button_clicks_hourly(events: list[Record]) -> dict[Key, Row]:
    clicks = [e for e in events if e.event_type == "click"]
    grouped = group(clicks, lambda e: (e.event_hour, e.video_id, e.button_id or "unknown"))
    return {key: {"clicks": len(group_events)} for key, group_events in grouped.items()}


def expected_button_usage(events: list[Record]) -> dict[Key, Row]:
    clicks = [e for e in events if e.event_type == "click"]
    by_bucket = group(clicks, lambda e: (e.button_id or "unknown", position_bucket(e.playback_position_s)))
    button_totals = {
        button: len(g) for (button,), g in group(clicks, lambda e: (e.button_id or "unknown",)).items()
    }
    rec_impressions = {
        bucket: len(g)
        for (bucket,), g in group(
            (e for e in events if e.event_type == "impression" and e.rec_slot is not None),
            lambda e: (position_bucket(e.playback_position_s),),
        ).items()
    }
    keys = set(by_bucket) | {(REC_TILE, bucket) for bucket in rec_impressions}
    expected = {}
    for button, bucket in keys:
        bucket_clicks = by_bucket.get((button, bucket), [])
        impressions = rec_impressions.get(bucket, 0) if button == REC_TILE else None
        expected[(button, bucket)] = {
            "clicks": len(bucket_clicks),
            "unique_users": len({e.user_id for e in bucket_clicks}),
            "click_share": ratio(len(bucket_clicks), button_totals.get(button)),
            "impressions": impressions,
            "ctr": ratio(len(bucket_clicks), impressions),
        }
    return expected


def expected_video_popularity(events: list[Record]) -> dict[Key, Row]:
    as_of = max(e.event_time for e in events)
    catalog = {video_id: (title, genre) for video_id, title, _, genre, _, _ in CATALOG}
    by_video = group(events, lambda e: (e.video_id,))
    rows: dict[Key, Row] = {}
    for video in set(catalog) | {video for (video,) in by_video}:
        video_events = by_video.get((video,), [])
        impressions, clicks, conversions = counts(video_events)
        score = math.fsum(
            TRENDING_WEIGHTS[e.event_type]
            * 0.5 ** ((as_of - e.event_time).total_seconds() / 3600 / TRENDING_HALF_LIFE_HOURS)
            for e in video_events
            if e.event_time <= as_of
        )
        title, genre = catalog.get(video, (None, None))
        rows[(video,)] = {
            "title": title,
            "genre": genre,
            "impressions": impressions,
            "clicks": clicks,
            "conversions": conversions,
            "unique_users": len({e.user_id for e in video_events}),
            "ctr": ratio(clicks, impressions),
            "trending_score": score,
        }
    ranked = sorted(rows, key=lambda key: (-rows[key]["trending_score"], key[0]))
    for rank, key in enumerate(ranked, start=1):
        rows[key]["popularity_rank"] = rank
    return rows


def first_events_of_sessions(events: list[Record]) -> dict[str, Record]:
    sessions = group(events, lambda e: (e.session_id,))
    return {session: min(g, key=lambda e: (e.event_time, e.event_id)) for (session,), g in sessions.items()}


def expected_sessions(events: list[Record]) -> dict[Key, Row]:
    firsts = first_events_of_sessions(events)
    expected = {}
    for (session,), session_events in group(events, lambda e: (e.session_id,)).items():
        impressions, clicks, conversions = counts(session_events)
        start = min(e.event_time for e in session_events)
        end = max(e.event_time for e in session_events)
        expected[(session,)] = {
            "user_id": firsts[session].user_id,
            "session_start": start,
            "session_end": end,
            "session_date": start.date(),
            "session_duration_s": (end - start).total_seconds(),
            "events": len(session_events),
            "impressions": impressions,
            "clicks": clicks,
            "conversions": conversions,
            "videos": len({e.video_id for e in session_events}),
            "first_video_id": firsts[session].video_id,
            "entry_surface": firsts[session].surface,
        }
    return expected


def expected_user_engagement_daily(events: list[Record]) -> dict[Key, Row]:
    started: defaultdict[tuple[date, str], int] = defaultdict(int)
    for first in first_events_of_sessions(events).values():
        started[(first.event_time.date(), first.user_id)] += 1
    expected = {}
    for (day, user), day_events in group(events, lambda e: (e.event_time.date(), e.user_id)).items():
        impressions, clicks, conversions = counts(day_events)
        expected[(day, user)] = {
            "sessions": started[(day, user)],
            "impressions": impressions,
            "clicks": clicks,
            "conversions": conversions,
            "videos_watched": len({e.video_id for e in day_events if e.event_type == "click"}),
            "ctr": ratio(clicks, impressions),
        }
    return expected


def expected_recommendation_ctr(events: list[Record]) -> dict[Key, Row]:
    tiles = [e for e in events if e.rec_slot is not None]
    grouped = group(tiles, lambda e: (e.event_time.date(), e.model_version or "unknown", e.rec_slot))
    expected = {}
    for key, group_events in grouped.items():
        impressions, clicks, conversions = counts(group_events)
        expected[key] = {
            "impressions": impressions,
            "clicks": clicks,
            "conversions": conversions,
            "ctr": ratio(clicks, impressions),
        }
    return expected


def expected_user_video_interactions(events: list[Record]) -> dict[Key, Row]:
    expected = {}
    for key, group_events in group(events, lambda e: (e.user_id, e.video_id)).items():
        impressions, clicks, conversions = counts(group_events)
        expected[key] = {
            "impressions": impressions,
            "clicks": clicks,
            "conversions": conversions,
            "first_event_time": min(e.event_time for e in group_events),
            "last_event_time": max(e.event_time for e in group_events),
            "interaction_strength": math.fsum(TRENDING_WEIGHTS[e.event_type] for e in group_events),
        }
    return expected


# Mart -> (grain columns, expected rows from deduplicated events)
TABLE_MARTS: dict[str, tuple[tuple[str, ...], Callable[[list[Record]], dict[Key, Row]]]] = {
    "fct_button_usage": (("button_id", "position_bucket"), expected_button_usage),
    "fct_video_popularity": (("video_id",), expected_video_popularity),
    "fct_user_engagement_daily": (("event_date", "user_id"), expected_user_engagement_daily),
    "fct_recommendation_ctr": (("event_date", "model_version", "rec_slot"), expected_recommendation_ctr),
    "int_sessions_summarised": (("session_id",), expected_sessions),
    "int_user_video_interactions_aggregated": (("user_id", "video_id"), expected_user_video_interactions),
}
INCREMENTAL_MARTS: dict[str, tuple[tuple[str, ...], Callable[[list[Record]], dict[Key, Row]]]] = {
    "fct_video_engagement_hourly": (("event_hour", "video_id"), expected_video_engagement_hourly),
    "fct_button_clicks_hourly": (("event_hour", "video_id", "button_id"), expected_button_clicks_hourly),
}


# ---------------------------------------------------------------- warehouse and dbt


@dataclass(frozen=True)
class Warehouse:
    path: Path
    work_dir: Path

    def dbt(self, *args: str) -> None:
        """Run dbt in process against this warehouse; fail the test with dbt's errors if it fails."""
        result = dbtRunner().invoke(
            [
                *args,
                "--project-dir", str(DBT_PROJECT_DIR),
                "--profiles-dir", str(DBT_PROJECT_DIR),
                "--target", "duckdb",
                "--target-path", str(self.work_dir / "target"),
                "--log-path", str(self.work_dir / "logs"),
            ]
        )  # fmt: skip
        if not result.success:
            problems = [
                f"{r.node.unique_id}: {r.status}: {r.message}"
                for r in getattr(result.result, "results", [])
                if str(r.status) in {"error", "fail"}
            ]
            pytest.fail(f"dbt {' '.join(args)} failed: {result.exception or ''}\n" + "\n".join(problems))

    def query(self, sql: str) -> list[Row]:
        with duckdb.connect(str(self.path)) as con:
            cursor = con.execute(sql)
            names = [column[0] for column in cursor.description]
            return [dict(zip(names, values, strict=True)) for values in cursor.fetchall()]

    def rows_by_key(self, table: str, key_columns: Sequence[str]) -> dict[Key, Row]:
        rows = self.query(f"select * from main.{table}")  # table names come from this module
        keyed = {tuple(row[c] for c in key_columns): row for row in rows}
        assert len(keyed) == len(rows), f"{table}: duplicate keys"
        return {key: {c: v for c, v in row.items() if c not in key_columns} for key, row in keyed.items()}

    def insert_records(self, records: Sequence[Record]) -> None:
        names = [f.name for f in fields(Record)] + ["partition_hour", "is_late"]
        values = [[getattr(r, name) for name in names] for r in records]
        placeholders = ", ".join("?" for _ in names)
        with duckdb.connect(str(self.path)) as con:
            con.executemany(
                f"insert into raw.click_events ({', '.join(names)}) values ({placeholders})", values
            )


RAW_DDL = """
create schema raw;
create table raw.click_events (
    event_id varchar, event_type varchar, event_time timestamp, received_at timestamp,
    kafka_timestamp timestamp, kafka_partition integer, kafka_offset bigint, partition_hour timestamp,
    user_id varchar, session_id varchar, video_id varchar, button_id varchar, playback_position_s double,
    surface varchar, rec_slot integer, model_version varchar, conversion_type varchar, device varchar,
    app_version varchar, properties varchar, user_country varchar, user_tier varchar,
    user_language varchar, is_late boolean
);
create table raw.video_catalog (
    video_id varchar, title varchar, series varchar, genre varchar, duration_s integer, release_date date
);
create table raw.user_profiles (
    user_id varchar, country varchar, subscription_tier varchar, signup_date date, language varchar
);
"""


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Warehouse]:
    """A fresh warehouse with the initial records, after a full `dbt build`."""
    work_dir = tmp_path_factory.mktemp("dbt_build")
    wh = Warehouse(path=work_dir / "warehouse.duckdb", work_dir=work_dir)
    with duckdb.connect(str(wh.path)) as con:
        con.execute(RAW_DDL)
        con.executemany("insert into raw.video_catalog values (?, ?, ?, ?, ?, ?)", CATALOG)
        con.executemany("insert into raw.user_profiles values (?, ?, ?, ?, ?)", PROFILES)
    wh.insert_records(INITIAL_RECORDS)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CLICKPULSE_DUCKDB_PATH", str(wh.path))
        wh.dbt("build")
        yield wh


def same(actual: Any, expected: Any) -> bool:
    """Equal, with float tolerance (the warehouse sums in another order than Python)."""
    if isinstance(expected, float) and isinstance(actual, float):
        return math.isclose(actual, expected, rel_tol=1e-9, abs_tol=1e-12)
    return type(actual) is type(expected) and actual == expected


def assert_rows(actual: dict[Key, Row], expected: dict[Key, Row], table: str) -> None:
    assert set(actual) == set(expected), f"{table}: grain differs"
    for key, expected_row in expected.items():
        actual_row = {column: actual[key][column] for column in expected_row}
        mismatched = {c for c in expected_row if not same(actual_row[c], expected_row[c])}
        assert not mismatched, f"{table} {key}: {actual_row} != {expected_row}"


def assert_marts(wh: Warehouse, table_events: list[Record], hourly: dict[str, dict[Key, Row]]) -> None:
    for table, (key_columns, expected) in TABLE_MARTS.items():
        assert_rows(wh.rows_by_key(table, key_columns), expected(table_events), table)
    for table, (key_columns, _) in INCREMENTAL_MARTS.items():
        assert_rows(wh.rows_by_key(table, key_columns), hourly[table], table)


def snapshot(wh: Warehouse) -> dict[str, list[Row]]:
    """Every mart's rows; floats to 9 significant digits, since DuckDB sums doubles in parallel and the
    order (so the last bit of e.g. trending_score) can differ between two builds of the same data."""
    marts = {**TABLE_MARTS, **INCREMENTAL_MARTS}
    return {
        table: [
            {c: float(f"{v:.9g}") if isinstance(v, float) else v for c, v in row.items()}
            for row in wh.query(f"select * from main.{table} order by all")
        ]
        for table in marts
    }


# ---------------------------------------------------------------- tests


def test_full_build_matches_python(warehouse: Warehouse) -> None:
    events = dedupe(INITIAL_RECORDS)
    hourly = {table: expected(events) for table, (_, expected) in INCREMENTAL_MARTS.items()}
    assert_marts(warehouse, events, hourly)

    # The scenario covers what it claims to.
    engagement = hourly["fct_video_engagement_hourly"]
    assert engagement[(at(30, 21), "v1")]["late_events"] == 1
    assert engagement[(at(1, 0), "v2")]["ctr"] is None
    assert expected_video_popularity(events)[("v3",)]["popularity_rank"] == 3
    kept = warehouse.query(
        "select kafka_offset, partition_hour from main.stg_kafka__click_events where event_id = 'e05'"
    )
    assert kept == [{"kafka_offset": 4, "partition_hour": at(30, 23)}]
    assert warehouse.query("select count(*) as n from main.dim_videos") == [{"n": len(CATALOG)}]
    assert warehouse.query("select count(*) as n from main.dim_users") == [{"n": len(PROFILES)}]


def test_incremental_runs_pick_up_late_events(warehouse: Warehouse) -> None:
    before = dedupe(INITIAL_RECORDS)
    after = dedupe(INITIAL_RECORDS + LATE_RECORDS)
    warehouse.insert_records(LATE_RECORDS)

    # 1. Plain incremental build: hours from floor_hour(latest loaded hour - lateness) are rebuilt.
    lookback_start = floor_hour(max(e.event_hour for e in before) - LATENESS)
    assert lookback_start == at(30, 23)
    warehouse.dbt("build")
    hourly = {
        table: {k: v for k, v in expected(after).items() if k[0] >= lookback_start}
        | {k: v for k, v in expected(before).items() if k[0] < lookback_start}
        for table, (_, expected) in INCREMENTAL_MARTS.items()
    }
    assert_marts(warehouse, after, hourly)
    updated = hourly["fct_video_engagement_hourly"][(at(30, 23), "v1")]
    assert updated["clicks"] == 4 and updated["late_events"] == 1 and updated["unique_users"] == 3
    assert (at(30, 20), "v2") not in hourly["fct_video_engagement_hourly"]

    # 2. Rerun with nothing new: nothing changes.
    first = snapshot(warehouse)
    warehouse.dbt("run")
    assert snapshot(warehouse) == first

    # 3. A Dagster run over a wider partition window reaches the older late event too.
    window_start, window_end = at(30, 21), at(1, 1)
    assert rebuilt_hours(window_start, window_end, 60) == (at(30, 20), window_end)
    window_vars = dbt_vars_for_window(window_start, window_end, 60)
    warehouse.dbt("run", "--select", "config.materialized:incremental", "--vars", dbt_vars_arg(window_vars))
    full = {table: expected(after) for table, (_, expected) in INCREMENTAL_MARTS.items()}
    assert_marts(warehouse, after, full)
    assert full["fct_video_engagement_hourly"][(at(30, 20), "v2")]["late_events"] == 1
