"""The warehouse behind one interface: DuckDB locally, BigQuery in production.

Assets only ever ask for a few things: replace one exported hour (the validated rows of the hour's
Parquet files into ``click_events``, the rejected ones into ``rejected_rows``), replace a set of hours
from Arrow rows, replace a whole (dimension) table, and read rows back (counts per hour, a raw table's
or a model's rows in a time window). Each "replace" deletes then writes, so a rerun or a backfill leaves
exactly one copy of every hour: DuckDB deletes and inserts in one transaction (both tables of an
exported hour in the same one); BigQuery runs load jobs with WRITE_TRUNCATE on the partition decorator
``table$YYYYMMDDHH``, one per table.
"""

from __future__ import annotations

import io
import logging
import re
import time
from abc import abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import PrivateAttr

from assets.warehouse.tables import (
    CLICK_EVENTS,
    RAW_SCHEMA,
    RECORD_KEY,
    REJECTED_ROWS,
    RawTable,
    bigquery_columns,
    conform,
    duckdb_columns,
    without_records,
)

if TYPE_CHECKING:
    import duckdb
    from google.cloud import bigquery

logger = logging.getLogger(__name__)

_IDENTIFIER: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _identifier(name: str) -> str:
    """Only plain identifiers reach SQL text; values always travel as parameters."""
    if not _IDENTIFIER.match(name):
        raise ValueError(f"not a plain SQL identifier: {name!r}")
    return name


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def _naive_utc(moment: datetime) -> datetime:
    return _utc(moment).replace(tzinfo=None)


class RawTableMismatchError(RuntimeError):
    """A raw table in the warehouse does not have the contract's columns (created by an older version)."""


@dataclass(frozen=True, slots=True)
class HourLoad:
    """What one exported hour left in the warehouse: rows of click_events and of rejected_rows."""

    loaded: int
    rejected: int


class Warehouse(dg.ConfigurableResource):
    """Where the raw tables live and dbt builds the marts. See DuckDBWarehouse, BigQueryWarehouse."""

    @property
    @abstractmethod
    def kind(self) -> str: ...

    @abstractmethod
    def replace_export_hour(self, hour: datetime, files: Sequence[str], rejected: pa.Table) -> HourLoad:
        """One exported hour: the records of ``files`` (Parquet, every exported record) that are not in
        ``rejected`` (matched on Kafka partition and offset) become the hour's only rows of click_events,
        and ``rejected`` (raw.rejected_rows contract) the hour's only rows of rejected_rows."""

    @abstractmethod
    def replace_hours(self, table: RawTable, hours: Sequence[datetime], rows: pa.Table) -> int:
        """Make ``rows`` the only rows of ``table`` for ``hours`` (rows outside them are refused)."""

    @abstractmethod
    def replace_table(self, table: RawTable, rows: pa.Table) -> int:
        """Replace the whole table (dimensions)."""

    @abstractmethod
    def count_by_hour(self, table: RawTable, start: datetime, end: datetime) -> dict[datetime, int]:
        """Rows per ``partition_column`` hour in [start, end), keys aware UTC; absent hours have no key."""

    @abstractmethod
    def read_raw(
        self, table: RawTable, columns: Sequence[str], time_column: str, start: datetime, end: datetime
    ) -> pa.Table:
        """Rows of a raw table with ``start <= time_column < end`` (empty when the table does not exist)."""

    @abstractmethod
    def read_model(
        self,
        model: str,
        columns: Sequence[str],
        time_column: str,
        start: datetime,
        end: datetime,
        *,
        flag_column: str | None = None,
    ) -> pa.Table:
        """Rows of a dbt model with ``start <= time_column < end`` (and ``flag_column`` true if given)."""


def _window_sql(columns: Sequence[str], time_column: str, flag_column: str | None) -> tuple[str, str]:
    """Select list and a ``{start} <= time < {end}`` condition (placeholders filled per dialect)."""
    select = ", ".join(_identifier(c) for c in columns)
    column = _identifier(time_column)
    flag = f" and {_identifier(flag_column)}" if flag_column else ""
    return select, f"{column} >= {{start}} and {column} < {{end}}{flag}"


def _check_hours(table: RawTable, hours: Sequence[datetime], rows: pa.Table) -> None:
    if table.partition_column is None:
        raise ValueError(f"{table.name} is not partitioned by hour")
    if rows.num_rows == 0:
        return
    allowed = {_utc(h) for h in hours}
    found = {_utc(v) for v in rows.column(table.partition_column).to_pylist() if v is not None}
    if not found <= allowed or None in rows.column(table.partition_column).to_pylist():
        raise ValueError(f"rows for {table.name} fall outside the hours being replaced")


class DuckDBWarehouse(Warehouse):
    """The embedded warehouse: one DuckDB file, shared with dbt-duckdb (same CLICKPULSE_DUCKDB_PATH).

    DuckDB allows one writing process per file, so connections are short-lived and opening one waits
    (up to ``lock_timeout_s``) while another process, such as a dbt run, holds the file.
    """

    path: str
    lock_timeout_s: float = 120.0

    @property
    def kind(self) -> str:
        return "duckdb"

    @contextmanager
    def connect(self, *, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        import duckdb

        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + self.lock_timeout_s
        delay = 0.05
        while True:
            try:
                connection = duckdb.connect(self.path, read_only=read_only and Path(self.path).exists())
                break
            except duckdb.IOException as exc:
                if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                    raise
                logger.info("waiting for the DuckDB file lock on %s", self.path)
                time.sleep(delay)
                delay = min(delay * 2, 2.0)
        try:
            connection.execute("set TimeZone = 'UTC'")
            if not read_only:
                self._ensure_tables(connection)
            yield connection
        finally:
            connection.close()

    @staticmethod
    def _ensure_tables(connection: duckdb.DuckDBPyConnection) -> None:
        from assets.warehouse.tables import RAW_TABLES

        connection.execute(f"create schema if not exists {RAW_SCHEMA}")
        for table in RAW_TABLES:
            columns = ", ".join(f"{name} {kind}" for name, kind in duckdb_columns(table))
            connection.execute(f"create table if not exists {RAW_SCHEMA}.{table.name} ({columns})")
            found = [
                str(name)
                for (name,) in connection.execute(
                    "select column_name from information_schema.columns "
                    "where table_schema = ? and table_name = ? order by ordinal_position",
                    [RAW_SCHEMA, table.name],
                ).fetchall()
            ]
            if found != table.columns:
                raise RawTableMismatchError(
                    f"{RAW_SCHEMA}.{table.name} has the columns {found}, the contract "
                    f"(assets/warehouse/tables.py) {table.columns}: the table was created by an older "
                    "version; drop it and rerun the hours (or the dimension assets) that fill it"
                )

    @staticmethod
    def _select_list(table: RawTable) -> str:
        """Zoned timestamps from Arrow/Parquet become naive UTC explicitly, whatever the session zone."""
        stamps = set(table.timestamp_columns)
        return ", ".join(f"timezone('UTC', {c}) as {c}" if c in stamps else c for c in table.columns)

    def replace_export_hour(self, hour: datetime, files: Sequence[str], rejected: pa.Table) -> HourLoad:
        _check_hours(REJECTED_ROWS, [hour], rejected)
        if any("://" in f for f in files):
            raise ValueError("the DuckDB warehouse loads local Parquet files only")
        local = [str(Path(f)) for f in files]
        events = f"{RAW_SCHEMA}.{_identifier(CLICK_EVENTS.name)}"
        rejects = f"{RAW_SCHEMA}.{_identifier(REJECTED_ROWS.name)}"
        column = _identifier(CLICK_EVENTS.partition_column or "")
        moment = _naive_utc(hour)
        incoming = conform(rejected, REJECTED_ROWS)
        same_record = " and ".join(f"r.{c} = exported.{c}" for c in RECORD_KEY)
        with self.connect() as connection:
            connection.register("incoming_rejected", incoming)
            connection.execute("begin transaction")
            try:
                connection.execute(f"delete from {events} where {column} = ?", [moment])
                connection.execute(f"delete from {rejects} where {column} = ?", [moment])
                if local:
                    connection.execute(
                        f"insert into {events} ({', '.join(CLICK_EVENTS.columns)}) "
                        f"select {self._select_list(CLICK_EVENTS)} "
                        "from read_parquet(?, hive_partitioning = false) as exported "
                        f"where not exists (select 1 from incoming_rejected as r where {same_record})",
                        [local],
                    )
                connection.execute(
                    f"insert into {rejects} ({', '.join(REJECTED_ROWS.columns)}) "
                    f"select {self._select_list(REJECTED_ROWS)} from incoming_rejected"
                )
                counts = [
                    connection.execute(
                        f"select count(*) from {target} where {column} = ?", [moment]
                    ).fetchall()
                    for target in (events, rejects)
                ]
                connection.execute("commit")
            except Exception:
                connection.execute("rollback")
                raise
            finally:
                connection.unregister("incoming_rejected")
        loaded, rejected_count = (int(found[0][0]) for found in counts)
        return HourLoad(loaded=loaded, rejected=rejected_count)

    def replace_hours(self, table: RawTable, hours: Sequence[datetime], rows: pa.Table) -> int:
        _check_hours(table, hours, rows)
        column = _identifier(table.partition_column or "")
        return self._replace(table, rows, f"where {column} = any(?)", [[_naive_utc(h) for h in hours]])

    def replace_table(self, table: RawTable, rows: pa.Table) -> int:
        return self._replace(table, rows, "", [])

    def _replace(self, table: RawTable, rows: pa.Table, where: str, params: list[Any]) -> int:
        """Delete the rows ``where`` selects and insert ``rows``, in one transaction."""
        target = f"{RAW_SCHEMA}.{_identifier(table.name)}"
        incoming = conform(rows, table)
        with self.connect() as connection:
            connection.register("incoming_rows", incoming)
            connection.execute("begin transaction")
            try:
                connection.execute(f"delete from {target} {where}", params)
                connection.execute(
                    f"insert into {target} ({', '.join(table.columns)}) "
                    f"select {self._select_list(table)} from incoming_rows"
                )
                connection.execute("commit")
            except Exception:
                connection.execute("rollback")
                raise
            finally:
                connection.unregister("incoming_rows")
        return incoming.num_rows

    def count_by_hour(self, table: RawTable, start: datetime, end: datetime) -> dict[datetime, int]:
        column = _identifier(table.partition_column or "")
        with self.connect(read_only=True) as connection:
            if not _duckdb_has_table(connection, RAW_SCHEMA, table.name):
                return {}
            found = connection.execute(
                f"select {column}, count(*) from {RAW_SCHEMA}.{_identifier(table.name)} "
                f"where {column} >= ? and {column} < ? group by 1",
                [_naive_utc(start), _naive_utc(end)],
            ).fetchall()
        return {_utc(hour): int(count) for hour, count in found}

    def read_raw(
        self, table: RawTable, columns: Sequence[str], time_column: str, start: datetime, end: datetime
    ) -> pa.Table:
        with self.connect(read_only=True) as connection:
            if not _duckdb_has_table(connection, RAW_SCHEMA, table.name):
                return pa.table({c: pa.array([], table.arrow_schema.field(c).type) for c in columns})
            return self._read_window(
                connection, f"{RAW_SCHEMA}.{_identifier(table.name)}", columns, time_column, start, end
            )

    def read_model(
        self,
        model: str,
        columns: Sequence[str],
        time_column: str,
        start: datetime,
        end: datetime,
        *,
        flag_column: str | None = None,
    ) -> pa.Table:
        with self.connect(read_only=True) as connection:
            return self._read_window(
                connection, f"main.{_identifier(model)}", columns, time_column, start, end, flag_column
            )

    @staticmethod
    def _read_window(
        connection: duckdb.DuckDBPyConnection,
        relation: str,
        columns: Sequence[str],
        time_column: str,
        start: datetime,
        end: datetime,
        flag_column: str | None = None,
    ) -> pa.Table:
        select, where = _window_sql(columns, time_column, flag_column)
        return connection.sql(
            f"select {select} from {relation} where {where.format(start='?', end='?')}",
            params=[_naive_utc(start), _naive_utc(end)],
        ).to_arrow_table()


def _duckdb_has_table(connection: duckdb.DuckDBPyConnection, schema: str, name: str) -> bool:
    found = connection.execute(
        "select count(*) from information_schema.tables where table_schema = ? and table_name = ?",
        [schema, name],
    ).fetchall()
    return bool(found[0][0])


# ---------------------------------------------------------------------------------------------- BigQuery


def bigquery_schema(table: RawTable) -> list[bigquery.SchemaField]:
    from google.cloud import bigquery

    return [bigquery.SchemaField(name, kind, mode="NULLABLE") for name, kind in bigquery_columns(table)]


def partition_decorator(table_id: str, hour: datetime) -> str:
    """``project.dataset.table$YYYYMMDDHH``: a load job aimed at exactly one hourly partition."""
    return f"{table_id}${_utc(hour):%Y%m%d%H}"


def hour_partition_load_config(table: RawTable) -> bigquery.LoadJobConfig:
    """Load Parquet into one hourly partition, replacing it (WRITE_TRUNCATE applies to the decorator's
    partition only), creating the hour-partitioned table on first use."""
    from google.cloud import bigquery

    if table.partition_column is None:
        raise ValueError(f"{table.name} is not partitioned by hour")
    return bigquery.LoadJobConfig(
        source_format=bigquery.SourceFormat.PARQUET,
        write_disposition=bigquery.WriteDisposition.WRITE_TRUNCATE,
        create_disposition=bigquery.CreateDisposition.CREATE_IF_NEEDED,
        time_partitioning=bigquery.TimePartitioning(
            type_=bigquery.TimePartitioningType.HOUR, field=table.partition_column
        ),
        schema=bigquery_schema(table),
    )


def whole_table_load_config(table: RawTable) -> bigquery.LoadJobConfig:
    from google.cloud import bigquery

    return bigquery.LoadJobConfig(
        source_format=bigquery.SourceFormat.PARQUET,
        write_disposition=bigquery.WriteDisposition.WRITE_TRUNCATE,
        create_disposition=bigquery.CreateDisposition.CREATE_IF_NEEDED,
        schema=bigquery_schema(table),
    )


def _parquet_bytes(rows: pa.Table) -> io.BytesIO:
    buffer = io.BytesIO()
    pq.write_table(rows, buffer, compression="zstd")
    buffer.seek(0)
    return buffer


class BigQueryWarehouse(Warehouse):
    """Production: raw tables in ``raw_dataset``, dbt models in ``dataset``, loads through load jobs.

    Credentials come from Application Default Credentials (GOOGLE_APPLICATION_CREDENTIALS or the
    workload identity), never from this config.
    """

    project: str
    dataset: str
    raw_dataset: str
    location: str = "US"
    job_timeout_s: float = 900.0
    _client: Any = PrivateAttr(default=None)

    @property
    def kind(self) -> str:
        return "bigquery"

    def client(self) -> bigquery.Client:
        if self._client is None:
            from google.cloud import bigquery

            self._client = bigquery.Client(project=self.project, location=self.location)
        return self._client

    def table_id(self, table: RawTable) -> str:
        return f"{self.project}.{self.raw_dataset}.{_identifier(table.name)}"

    def hour_load(self, table: RawTable, hour: datetime) -> tuple[str, bigquery.LoadJobConfig]:
        """Destination and job config of one hour's load; what ``replace_export_hour`` submits."""
        return partition_decorator(self.table_id(table), hour), hour_partition_load_config(table)

    def _load_hour_rows(self, table: RawTable, hour: datetime, rows: pa.Table) -> int:
        destination, config = self.hour_load(table, hour)
        job = self.client().load_table_from_file(_parquet_bytes(rows), destination, job_config=config)
        job.result(timeout=self.job_timeout_s)
        return rows.num_rows

    def replace_export_hour(self, hour: datetime, files: Sequence[str], rejected: pa.Table) -> HourLoad:
        """Two load jobs, click_events then rejected_rows, each replacing the hour's partition (a crash
        between them is repaired by rerunning the hour). Without rejects the lake files load as they are;
        otherwise the kept records are read from them and loaded from memory."""
        _check_hours(REJECTED_ROWS, [hour], rejected)
        if rejected.num_rows == 0:
            loaded = self._load_hour_files(CLICK_EVENTS, hour, files)
        else:
            exported = [pq.read_table(f, schema=CLICK_EVENTS.arrow_schema) for f in files]
            kept = without_records(pa.concat_tables(exported), rejected)
            loaded = self._load_hour_rows(CLICK_EVENTS, hour, kept)
        written = self._load_hour_rows(REJECTED_ROWS, hour, conform(rejected, REJECTED_ROWS))
        return HourLoad(loaded=loaded, rejected=written)

    def _load_hour_files(self, table: RawTable, hour: datetime, files: Sequence[str]) -> int:
        destination, config = self.hour_load(table, hour)
        client = self.client()
        if not files:
            return self._load_hour_rows(table, hour, table.arrow_schema.empty_table())
        if all(f.startswith("gs://") for f in files):
            job = client.load_table_from_uri(list(files), destination, job_config=config)
            job.result(timeout=self.job_timeout_s)
        else:
            if len(files) != 1:
                raise ValueError("local Parquet loads take one file per hour")
            with open(files[0], "rb") as handle:
                job = client.load_table_from_file(handle, destination, job_config=config)
                job.result(timeout=self.job_timeout_s)
        return int(job.output_rows or 0)

    def replace_hours(self, table: RawTable, hours: Sequence[datetime], rows: pa.Table) -> int:
        _check_hours(table, hours, rows)
        import pyarrow.compute as pc

        incoming = conform(rows, table)
        column = incoming.column(table.partition_column or "")
        written = 0
        for hour in hours:
            mask = pc.equal(column, pa.scalar(_utc(hour), type=column.type))
            written += self._load_hour_rows(table, hour, incoming.filter(mask))
        return written

    def replace_table(self, table: RawTable, rows: pa.Table) -> int:
        incoming = conform(rows, table)
        job = self.client().load_table_from_file(
            _parquet_bytes(incoming), self.table_id(table), job_config=whole_table_load_config(table)
        )
        job.result(timeout=self.job_timeout_s)
        return incoming.num_rows

    def _query(self, sql: str, params: Sequence[bigquery.ScalarQueryParameter]) -> pa.Table:
        from google.cloud import bigquery

        config = bigquery.QueryJobConfig(query_parameters=list(params))
        return self.client().query(sql, job_config=config).result(timeout=self.job_timeout_s).to_arrow()

    @staticmethod
    def _window(start: datetime, end: datetime) -> list[bigquery.ScalarQueryParameter]:
        from google.cloud import bigquery

        return [
            bigquery.ScalarQueryParameter("start", "TIMESTAMP", _utc(start)),
            bigquery.ScalarQueryParameter("end", "TIMESTAMP", _utc(end)),
        ]

    def count_by_hour(self, table: RawTable, start: datetime, end: datetime) -> dict[datetime, int]:
        column = _identifier(table.partition_column or "")
        found = self._query(
            f"select {column} as hour, count(*) as n from `{self.table_id(table)}` "
            f"where {column} >= @start and {column} < @end group by 1",
            self._window(start, end),
        )
        return {
            _utc(h): int(n) for h, n in zip(found["hour"].to_pylist(), found["n"].to_pylist(), strict=True)
        }

    def read_raw(
        self, table: RawTable, columns: Sequence[str], time_column: str, start: datetime, end: datetime
    ) -> pa.Table:
        return self._read_window(f"`{self.table_id(table)}`", columns, time_column, start, end)

    def read_model(
        self,
        model: str,
        columns: Sequence[str],
        time_column: str,
        start: datetime,
        end: datetime,
        *,
        flag_column: str | None = None,
    ) -> pa.Table:
        relation = f"`{self.project}.{self.dataset}.{_identifier(model)}`"
        return self._read_window(relation, columns, time_column, start, end, flag_column)

    def _read_window(
        self,
        relation: str,
        columns: Sequence[str],
        time_column: str,
        start: datetime,
        end: datetime,
        flag_column: str | None = None,
    ) -> pa.Table:
        select, where = _window_sql(columns, time_column, flag_column)
        return self._query(
            f"select {select} from {relation} where {where.format(start='@start', end='@end')}",
            self._window(start, end),
        )
