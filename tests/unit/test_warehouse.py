"""The warehouse implementations: DuckDB replaces hours atomically (an exported hour's loaded and rejected
records together); BigQuery's load-job config."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from google.cloud import bigquery

from assets.kafka_export.expectations import ExpectationOutcome, TimeBounds, rejected_rows, suite_specs
from assets.warehouse.tables import CLICK_EVENTS, REJECTED_ROWS, VIDEO_CATALOG, conform, without_records
from orchestration.warehouse import (
    BigQueryWarehouse,
    DuckDBWarehouse,
    HourLoad,
    RawTableMismatchError,
    hour_partition_load_config,
    partition_decorator,
    whole_table_load_config,
)

HOUR = datetime(2026, 11, 26, 3, tzinfo=UTC)


def events(hour: datetime, n: int, first_offset: int = 0) -> pa.Table:
    return conform(
        pa.table(
            {
                "event_id": [f"e{first_offset + i}" for i in range(n)],
                "event_type": ["click"] * n,
                "event_time": [hour + timedelta(minutes=i) for i in range(n)],
                "kafka_partition": [0] * n,
                "kafka_offset": list(range(first_offset, first_offset + n)),
                "partition_hour": [hour] * n,
                "is_late": [False] * n,
            }
        ),
        CLICK_EVENTS,
    )


def parquet(tmp_path: Path, table: pa.Table, name: str) -> str:
    path = tmp_path / f"{name}.parquet"
    pq.write_table(table, path)
    return str(path)


@pytest.fixture
def warehouse(tmp_path: Path) -> DuckDBWarehouse:
    return DuckDBWarehouse(path=str(tmp_path / "w.duckdb"))


NONE_REJECTED = REJECTED_ROWS.arrow_schema.empty_table()


def rejecting(rows: pa.Table, positions: tuple[int, ...]) -> pa.Table:
    """Rejected rows for ``positions`` of ``rows``, as the suite makes them (playback failing)."""
    spec = {s.name: s for s in suite_specs(TimeBounds(HOUR, 60, 5))}[
        "expect_column_values_to_be_between(playback_position_s)"
    ]
    return rejected_rows(rows, [ExpectationOutcome(spec, False, positions)], HOUR + timedelta(hours=3))


def test_replacing_an_hour_twice_keeps_one_copy_and_other_hours(
    warehouse: DuckDBWarehouse, tmp_path: Path
) -> None:
    other = HOUR + timedelta(hours=1)
    assert warehouse.replace_export_hour(
        other, [parquet(tmp_path, events(other, 2, 100), "o")], NONE_REJECTED
    ) == HourLoad(2, 0)
    first = parquet(tmp_path, events(HOUR, 5), "a")
    assert warehouse.replace_export_hour(HOUR, [first], NONE_REJECTED) == HourLoad(5, 0)
    assert warehouse.replace_export_hour(HOUR, [first], NONE_REJECTED) == HourLoad(5, 0)
    assert warehouse.replace_export_hour(
        HOUR, [parquet(tmp_path, events(HOUR, 3), "b")], NONE_REJECTED
    ) == HourLoad(3, 0)
    assert warehouse.count_by_hour(CLICK_EVENTS, HOUR, HOUR + timedelta(hours=2)) == {HOUR: 3, other: 2}
    assert warehouse.replace_export_hour(HOUR, [], NONE_REJECTED) == HourLoad(0, 0)
    assert warehouse.count_by_hour(CLICK_EVENTS, HOUR, HOUR + timedelta(hours=2)) == {other: 2}


def test_an_exported_hour_splits_into_loaded_and_rejected_records_and_reruns_replace_both(
    warehouse: DuckDBWarehouse, tmp_path: Path
) -> None:
    rows = events(HOUR, 6)
    file = parquet(tmp_path, rows, "a")
    other = HOUR + timedelta(hours=1)
    other_rows = events(other, 2, 100)
    warehouse.replace_export_hour(other, [parquet(tmp_path, other_rows, "o")], rejecting(other_rows, (0,)))

    assert warehouse.replace_export_hour(HOUR, [file], rejecting(rows, (1, 4))) == HourLoad(4, 2)
    assert warehouse.replace_export_hour(HOUR, [file], rejecting(rows, (1, 4))) == HourLoad(4, 2)
    hour = HOUR.replace(tzinfo=None)
    with warehouse.connect(read_only=True) as con:
        loaded = con.execute(
            "select kafka_offset from raw.click_events where partition_hour = ? order by 1", [hour]
        ).fetchall()
        rejected = con.execute(
            "select kafka_offset, failed_expectations from raw.rejected_rows where partition_hour = ? "
            "order by 1",
            [hour],
        ).fetchall()
    assert [o for (o,) in loaded] == [0, 2, 3, 5]
    name = '["expect_column_values_to_be_between(playback_position_s)"]'
    assert rejected == [(1, name), (4, name)]

    # A rerun that rejects other records replaces both tables' hour, and leaves the other hour alone.
    assert warehouse.replace_export_hour(HOUR, [file], rejecting(rows, (5,))) == HourLoad(5, 1)
    assert warehouse.count_by_hour(REJECTED_ROWS, HOUR, other + timedelta(hours=1)) == {HOUR: 1, other: 1}
    assert warehouse.count_by_hour(CLICK_EVENTS, HOUR, other + timedelta(hours=1)) == {HOUR: 5, other: 1}
    window = warehouse.read_raw(REJECTED_ROWS, ["kafka_offset"], "partition_hour", HOUR, other)
    assert window.column("kafka_offset").to_pylist() == [5]


def test_rejected_rows_of_another_hour_are_refused(warehouse: DuckDBWarehouse, tmp_path: Path) -> None:
    other = events(HOUR + timedelta(hours=1), 2)
    with pytest.raises(ValueError, match="outside the hours"):
        warehouse.replace_export_hour(HOUR, [parquet(tmp_path, events(HOUR, 2), "a")], rejecting(other, (0,)))


def test_without_records_drops_exactly_the_rejected_partition_and_offset_pairs() -> None:
    rows = conform(
        pa.table({"kafka_partition": [0, 0, 1, 1, 2], "kafka_offset": [7, 8, 7, 8, 7]}), CLICK_EVENTS
    )
    rejected = conform(pa.table({"kafka_partition": [1, 0], "kafka_offset": [7, 8]}), REJECTED_ROWS)
    kept = without_records(rows, rejected).select(["kafka_partition", "kafka_offset"]).to_pylist()
    assert kept == [
        {"kafka_partition": 0, "kafka_offset": 7},
        {"kafka_partition": 1, "kafka_offset": 8},
        {"kafka_partition": 2, "kafka_offset": 7},
    ]
    assert without_records(rows, NONE_REJECTED) is rows


def test_a_raw_table_of_an_older_layout_is_refused_with_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    con.execute("create schema raw")
    con.execute(
        "create table raw.rejected_rows (partition_hour timestamp, event_id varchar, "
        "kafka_partition integer, kafka_offset bigint, failed_expectation varchar, detail varchar, "
        "raw_json varchar, rejected_at timestamp)"
    )
    con.close()
    with (
        pytest.raises(RawTableMismatchError, match=r"raw\.rejected_rows .*drop it and rerun"),
        DuckDBWarehouse(path=str(path)).connect(),
    ):
        pass


def test_timestamps_are_stored_as_naive_utc_whatever_the_session_zone(
    warehouse: DuckDBWarehouse, tmp_path: Path
) -> None:
    warehouse.replace_export_hour(HOUR, [parquet(tmp_path, events(HOUR, 1), "a")], NONE_REJECTED)
    connection = duckdb.connect(warehouse.path)
    connection.execute("set TimeZone = 'America/New_York'")
    types = dict(
        connection.execute(
            "select column_name, data_type from information_schema.columns "
            "where table_schema = 'raw' and table_name = 'click_events'"
        ).fetchall()
    )
    value = connection.execute("select event_time, partition_hour from raw.click_events").fetchone()
    connection.close()
    assert types["event_time"] == "TIMESTAMP" and types["kafka_partition"] == "INTEGER"
    assert value == (datetime(2026, 11, 26, 3, 0), datetime(2026, 11, 26, 3, 0))


def test_replace_hours_refuses_rows_of_other_hours(warehouse: DuckDBWarehouse) -> None:
    rows = conform(
        pa.table({"partition_hour": [HOUR], "event_id": ["x"], "failed_expectation": ["f"]}), REJECTED_ROWS
    )
    assert warehouse.replace_hours(REJECTED_ROWS, [HOUR], rows) == 1
    assert warehouse.replace_hours(REJECTED_ROWS, [HOUR], rows) == 1
    assert warehouse.count_by_hour(REJECTED_ROWS, HOUR, HOUR + timedelta(hours=1)) == {HOUR: 1}
    with pytest.raises(ValueError, match="outside"):
        warehouse.replace_hours(REJECTED_ROWS, [HOUR + timedelta(hours=1)], rows)
    assert warehouse.replace_hours(REJECTED_ROWS, [HOUR], REJECTED_ROWS.arrow_schema.empty_table()) == 0
    assert warehouse.count_by_hour(REJECTED_ROWS, HOUR, HOUR + timedelta(hours=1)) == {}


def test_replace_table_swaps_the_whole_dimension(warehouse: DuckDBWarehouse) -> None:
    warehouse.replace_table(VIDEO_CATALOG, pa.table({"video_id": ["a", "b"], "duration_s": [1, 2]}))
    warehouse.replace_table(VIDEO_CATALOG, pa.table({"video_id": ["c"], "duration_s": [3]}))
    with warehouse.connect(read_only=True) as connection:
        assert connection.execute("select video_id, duration_s from raw.video_catalog").fetchall() == [
            ("c", 3)
        ]


def test_models_are_read_with_parameters_and_identifiers_are_checked(warehouse: DuckDBWarehouse) -> None:
    with warehouse.connect() as connection:
        connection.execute(
            "create table main.m as select timestamp '2026-11-26 03:00' as h, 1 as n, true as f "
            "union all select timestamp '2026-11-26 04:00', 2, false"
        )
    rows = warehouse.read_model("m", ["h", "n"], "h", HOUR, HOUR + timedelta(hours=2), flag_column="f")
    assert rows.column("n").to_pylist() == [1]
    with pytest.raises(ValueError, match="identifier"):
        warehouse.read_model("m; drop table m", ["n"], "h", HOUR, HOUR)


# ---------------------------------------------------------------------------------------------- BigQuery


def test_bigquery_hour_load_overwrites_exactly_one_hourly_partition() -> None:
    warehouse = BigQueryWarehouse(project="proj", dataset="marts", raw_dataset="raw_ds")
    destination, config = warehouse.hour_load(CLICK_EVENTS, datetime(2026, 11, 26, 5, 0, tzinfo=UTC))
    assert destination == "proj.raw_ds.click_events$2026112605"
    assert config.source_format == bigquery.SourceFormat.PARQUET
    assert config.write_disposition == bigquery.WriteDisposition.WRITE_TRUNCATE
    assert config.create_disposition == bigquery.CreateDisposition.CREATE_IF_NEEDED
    assert config.time_partitioning.type_ == bigquery.TimePartitioningType.HOUR
    assert config.time_partitioning.field == "partition_hour"
    schema = {f.name: f.field_type for f in config.schema}
    assert list(schema) == CLICK_EVENTS.columns
    assert schema["event_time"] == "TIMESTAMP" and schema["kafka_offset"] == "INT64"
    assert schema["is_late"] == "BOOL" and schema["playback_position_s"] == "FLOAT64"
    assert warehouse._client is None  # nothing above needed a client, let alone the network


def test_partition_decorator_uses_the_utc_hour() -> None:
    from datetime import timezone

    plus_two = timezone(timedelta(hours=2))
    assert partition_decorator("p.d.t", datetime(2026, 11, 26, 7, tzinfo=plus_two)) == "p.d.t$2026112605"


def test_rejected_rows_are_hour_partitioned_and_dimensions_are_whole_tables() -> None:
    config = hour_partition_load_config(REJECTED_ROWS)
    assert config.time_partitioning.field == "partition_hour"
    whole = whole_table_load_config(VIDEO_CATALOG)
    assert whole.time_partitioning is None
    assert whole.write_disposition == bigquery.WriteDisposition.WRITE_TRUNCATE
    assert {f.name: f.field_type for f in whole.schema}["release_date"] == "DATE"
    with pytest.raises(ValueError):
        hour_partition_load_config(VIDEO_CATALOG)
