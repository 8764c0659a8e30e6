"""The raw warehouse contract: tables the Dagster assets write and dbt's sources read.

One definition in Arrow types; the DuckDB DDL and the BigQuery schema are derived from it, so the lake's
Parquet files, the local warehouse and the production warehouse cannot drift apart. In the warehouse,
timestamps are UTC without a zone (DuckDB ``TIMESTAMP``, BigQuery ``TIMESTAMP``). In Arrow and in the
lake's Parquet they carry the UTC zone (``isAdjustedToUTC``), so every reader (BigQuery loads, DuckDB,
pandas) takes them as instants rather than as local wall-clock times.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Final

import pyarrow as pa
import pyarrow.compute as pc

logger = logging.getLogger(__name__)

RAW_SCHEMA: Final = "raw"
TIMESTAMP: Final = pa.timestamp("us")
LAKE_TIMESTAMP: Final = pa.timestamp("us", tz="UTC")


@dataclass(frozen=True, slots=True)
class RawTable:
    """A table in the raw schema; ``partition_column`` is set for hour-partitioned tables."""

    name: str
    schema: pa.Schema
    partition_column: str | None = None
    description: str = ""

    @property
    def columns(self) -> list[str]:
        return list(self.schema.names)

    @property
    def timestamp_columns(self) -> list[str]:
        return [f.name for f in self.schema if f.type == TIMESTAMP]

    @property
    def arrow_schema(self) -> pa.Schema:
        """The schema of Arrow data and Parquet files: timestamps zoned UTC."""
        return pa.schema(
            [pa.field(f.name, LAKE_TIMESTAMP if f.type == TIMESTAMP else f.type) for f in self.schema]
        )


CLICK_EVENTS: Final = RawTable(
    name="click_events",
    partition_column="partition_hour",
    description="One row per Kafka record of clicks.enriched, in the hour of its Kafka timestamp.",
    schema=pa.schema(
        [
            pa.field("event_id", pa.string()),
            pa.field("event_type", pa.string()),
            pa.field("event_time", TIMESTAMP),
            pa.field("received_at", TIMESTAMP),
            pa.field("kafka_timestamp", TIMESTAMP),
            pa.field("kafka_partition", pa.int32()),
            pa.field("kafka_offset", pa.int64()),
            pa.field("partition_hour", TIMESTAMP),
            pa.field("user_id", pa.string()),
            pa.field("session_id", pa.string()),
            pa.field("video_id", pa.string()),
            pa.field("button_id", pa.string()),
            pa.field("playback_position_s", pa.float64()),
            pa.field("surface", pa.string()),
            pa.field("rec_slot", pa.int32()),
            pa.field("model_version", pa.string()),
            pa.field("conversion_type", pa.string()),
            pa.field("device", pa.string()),
            pa.field("app_version", pa.string()),
            pa.field("properties", pa.string()),
            pa.field("user_country", pa.string()),
            pa.field("user_tier", pa.string()),
            pa.field("user_language", pa.string()),
            pa.field("is_late", pa.bool_()),
        ]
    ),
)

REJECTED_ROWS: Final = RawTable(
    name="rejected_rows",
    partition_column="partition_hour",
    description=(
        "One row per record of clicks.enriched that failed at least one expectation, in the hour of its "
        "Kafka timestamp; such a record is not in click_events (exported records = click_events rows + "
        "rejected_rows rows, per hour)."
    ),
    schema=pa.schema(
        [
            pa.field("partition_hour", TIMESTAMP),
            pa.field("event_id", pa.string()),
            pa.field("event_time", TIMESTAMP),
            pa.field("kafka_partition", pa.int32()),
            pa.field("kafka_offset", pa.int64()),
            pa.field("failed_expectations", pa.string()),  # JSON array of expectation names
            pa.field("detail", pa.string()),
            pa.field("raw_json", pa.string()),
            pa.field("rejected_at", TIMESTAMP),
        ]
    ),
)

# What identifies one exported record in click_events and rejected_rows.
RECORD_KEY: Final = ("kafka_partition", "kafka_offset")

VIDEO_CATALOG: Final = RawTable(
    name="video_catalog",
    description="One row per video of the catalog.",
    schema=pa.schema(
        [
            pa.field("video_id", pa.string()),
            pa.field("title", pa.string()),
            pa.field("series", pa.string()),
            pa.field("genre", pa.string()),
            pa.field("duration_s", pa.int32()),
            pa.field("release_date", pa.date32()),
        ]
    ),
)

USER_PROFILES: Final = RawTable(
    name="user_profiles",
    description="One row per known user.",
    schema=pa.schema(
        [
            pa.field("user_id", pa.string()),
            pa.field("country", pa.string()),
            pa.field("subscription_tier", pa.string()),
            pa.field("signup_date", pa.date32()),
            pa.field("language", pa.string()),
        ]
    ),
)

RAW_TABLES: Final = (CLICK_EVENTS, REJECTED_ROWS, VIDEO_CATALOG, USER_PROFILES)

_DUCKDB_TYPES: Final = {
    pa.string(): "VARCHAR",
    TIMESTAMP: "TIMESTAMP",
    pa.int32(): "INTEGER",
    pa.int64(): "BIGINT",
    pa.float64(): "DOUBLE",
    pa.bool_(): "BOOLEAN",
    pa.date32(): "DATE",
}
_BIGQUERY_TYPES: Final = {
    pa.string(): "STRING",
    TIMESTAMP: "TIMESTAMP",
    pa.int32(): "INT64",
    pa.int64(): "INT64",
    pa.float64(): "FLOAT64",
    pa.bool_(): "BOOL",
    pa.date32(): "DATE",
}


def duckdb_columns(table: RawTable) -> list[tuple[str, str]]:
    """(name, DuckDB type) pairs in contract order."""
    return [(f.name, _DUCKDB_TYPES[f.type]) for f in table.schema]


def bigquery_columns(table: RawTable) -> list[tuple[str, str]]:
    """(name, BigQuery standard SQL type) pairs in contract order."""
    return [(f.name, _BIGQUERY_TYPES[f.type]) for f in table.schema]


def conform(table: pa.Table, raw_table: RawTable) -> pa.Table:
    """Columns in contract order with Arrow types (zoned timestamps); missing columns become nulls and
    extra ones are dropped. Naive timestamps are taken as UTC."""
    schema = raw_table.arrow_schema
    arrays = []
    for f in schema:
        if f.name not in table.column_names:
            arrays.append(pa.nulls(table.num_rows, f.type))
            continue
        column = table.column(f.name)
        if pa.types.is_timestamp(column.type) and column.type.tz is None and f.type == LAKE_TIMESTAMP:
            column = pc.assume_timezone(column.cast(TIMESTAMP), "UTC")
        arrays.append(column.cast(f.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def without_records(rows: pa.Table, records: pa.Table) -> pa.Table:
    """``rows`` minus those whose ``RECORD_KEY`` (Kafka partition, offset) appears in ``records``."""
    if records.num_rows == 0:
        return rows
    partition, offset = (rows.column(name) for name in RECORD_KEY)
    dropped = pa.array([False] * rows.num_rows)
    keys = records.select(list(RECORD_KEY)).to_pylist()
    by_partition: dict[int, list[int]] = {}
    for key in keys:
        by_partition.setdefault(key["kafka_partition"], []).append(key["kafka_offset"])
    for number, offsets in by_partition.items():
        here = pc.and_(
            pc.equal(partition, pa.scalar(number, partition.type)),
            pc.is_in(offset, value_set=pa.array(offsets, offset.type)),
        )
        dropped = pc.or_(dropped, pc.fill_null(here, False))
    return rows.filter(pc.invert(dropped))
