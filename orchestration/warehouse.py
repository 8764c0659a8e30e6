"""The warehouse behind one interface: DuckDB locally, BigQuery in production.

Assets only ever ask for four things: replace one hour of a partitioned raw table from Parquet files,
replace a set of hours from Arrow rows, replace a whole (dimension) table, and read rows back (counts per
hour, a model's rows in a time window). Each implementation makes "replace" a single atomic step, so a
rerun or a backfill leaves exactly one copy of every hour: DuckDB deletes and inserts in one
transaction; BigQuery runs a load job with WRITE_TRUNCATE on the partition decorator ``table$YYYYMMDDHH``.
"""

from __future__ import annotations

import io
import logging
import re
import time
from abc import abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import PrivateAttr

from assets.warehouse.tables import RAW_SCHEMA, RawTable, bigquery_columns, conform, duckdb_columns

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


class Warehouse(dg.ConfigurableResource):
    """Where the raw tables live and dbt builds the marts. See DuckDBWarehouse, BigQueryWarehouse."""

    @property
    @abstractmethod
    def kind(self) -> str: ...

    @abstractmethod
    def replace_hour(self, table: RawTable, hour: datetime, files: Sequence[str]) -> int:
        """Make the rows of ``files`` (Parquet) the only rows of ``table`` for ``hour``; returns rows."""

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

    @staticmethod
    def _select_list(table: RawTable) -> str:
        """Zoned timestamps from Arrow/Parquet become naive UTC explicitly, whatever the session zone."""
        stamps = set(table.timestamp_columns)
        return ", ".join(f"timezone('UTC', {c}) as {c}" if c in stamps else c for c in table.columns)

    def replace_hour(self, table: RawTable, hour: datetime, files: Sequence[str]) -> int:
        column = _identifier(table.partition_column or "")
        local = [str(Path(f)) for f in files]
        if any("://" in f for f in files):
            raise ValueError("the DuckDB warehouse loads local Parquet files only")
        target = f"{RAW_SCHEMA}.{_identifier(table.name)}"
        with self.connect() as connection:
            connection.execute("begin transaction")
            try:
                connection.execute(f"delete from {target} where {column} = ?", [_naive_utc(hour)])
                if local:
                    connection.execute(
                        f"insert into {target} ({', '.join(table.columns)}) "
                        f"select {self._select_list(table)} from read_parquet(?, hive_partitioning = false)",
                        [local],
                    )
                (count,) = connection.execute(
                    f"select count(*) from {target} where {column} = ?", [_naive_utc(hour)]
                ).fetchone() or (0,)
                connection.execute("commit")
            except Exception:
                connection.execute("rollback")
                raise
        return int(count)

    def replace_hours(self, table: RawTable, hours: Sequence[datetime], rows: pa.Table) -> int:
        _check_hours(table, hours, rows)
        column = _identifier(table.partition_column or "")
        target = f"{RAW_SCHEMA}.{_identifier(table.name)}"
        incoming = conform(rows, table)
        with self.connect() as connection:
            connection.register("incoming_rows", incoming)
            connection.execute("begin transaction")
            try:
                connection.execute(
                    f"delete from {target} where {column} = any(?)", [[_naive_utc(h) for h in hours]]
                )
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

    def replace_table(self, table: RawTable, rows: pa.Table) -> int:
        target = f"{RAW_SCHEMA}.{_identifier(table.name)}"
        incoming = conform(rows, table)
        with self.connect() as connection:
            connection.register("incoming_rows", incoming)
            connection.execute("begin transaction")
            try:
                connection.execute(f"delete from {target}")
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
        select = ", ".join(_identifier(c) for c in columns)
        column = _identifier(time_column)
        flag = f" and {_identifier(flag_column)}" if flag_column else ""
        with self.connect(read_only=True) as connection:
            relation = connection.sql(
                f"select {select} from main.{_identifier(model)} where {column} >= ? and {column} < ?{flag}",
                params=[_naive_utc(start), _naive_utc(end)],
            )
            return relation.to_arrow_table()


def _duckdb_has_table(connection: duckdb.DuckDBPyConnection, schema: str, name: str) -> bool:
    found = connection.execute(
        "select count(*) from information_schema.tables where table_schema = ? and table_name = ?",
        [schema, name],
    ).fetchone()
    return bool(found and found[0])


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
        """Destination and job config of one hour's load; what ``replace_hour`` submits."""
        return partition_decorator(self.table_id(table), hour), hour_partition_load_config(table)

    def _load_hour_rows(self, table: RawTable, hour: datetime, rows: pa.Table) -> int:
        destination, config = self.hour_load(table, hour)
        job = self.client().load_table_from_file(_parquet_bytes(rows), destination, job_config=config)
        job.result(timeout=self.job_timeout_s)
        return rows.num_rows

    def replace_hour(self, table: RawTable, hour: datetime, files: Sequence[str]) -> int:
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
        select = ", ".join(_identifier(c) for c in columns)
        column = _identifier(time_column)
        flag = f" and {_identifier(flag_column)}" if flag_column else ""
        relation = f"`{self.project}.{self.dataset}.{_identifier(model)}`"
        return self._query(
            f"select {select} from {relation} where {column} >= @start and {column} < @end{flag}",
            self._window(start, end),
        )
