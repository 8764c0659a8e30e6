"""Erasing one user from the warehouse (DuckDB or BigQuery) and the Parquet lake.

Which tables: every base table with a ``user_id`` column, found in the catalog at run time
(``information_schema``), so a new dbt model keyed by user is covered without a list to maintain: the raw
``click_events`` and ``user_profiles``, and marts such as ``dim_users``, ``fct_user_engagement_daily`` or
``int_user_video_interactions_aggregated``. Views (dbt staging) read those tables and need nothing.
``raw.rejected_rows`` keeps the record that failed an expectation as JSON with no ``user_id`` column: its
rows are matched by the user's event ids and by the ``user_id`` inside the JSON, before the events go.

The user id always travels as a query parameter; identifiers (schemas, tables) come from the catalog or
the settings and are checked and quoted, never pasted from input. Aggregates without a user column
(video engagement, popularity, button usage) keep the user's contribution until they are rebuilt from
the erased raw data (``dbt build --full-refresh``), as they hold no personal data.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

logger = logging.getLogger(__name__)

USER_COLUMN: Final = "user_id"
RAW_SCHEMA: Final = "raw"
EVENTS_TABLE: Final = "click_events"
REJECTED_TABLE: Final = "rejected_rows"
_PLAIN: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_BQ_PROJECT: Final = re.compile(r"^[a-z][a-z0-9.:-]{4,61}[a-z0-9]$")
_BQ_NAME: Final = re.compile(r"^[A-Za-z0-9_]{1,1024}$")


@dataclass(frozen=True, slots=True)
class TableErasure:
    table: str
    rows: int


# DuckDB.
def _duckdb_ident(name: str) -> str:
    """A quoted DuckDB identifier (names come from the catalog, but are quoted all the same)."""
    return '"' + name.replace('"', '""') + '"'


USER_TABLES_DUCKDB: Final = """
select c.table_schema, c.table_name
from information_schema.columns as c
join information_schema.tables as t
  on t.table_catalog = c.table_catalog
  and t.table_schema = c.table_schema
  and t.table_name = c.table_name
where c.column_name = ? and t.table_type = 'BASE TABLE'
order by c.table_schema, c.table_name
"""


def duckdb_user_tables(connection: Any) -> list[tuple[str, str]]:
    rows = connection.execute(USER_TABLES_DUCKDB, [USER_COLUMN]).fetchall()
    return [(str(schema), str(table)) for schema, table in rows]


def _duckdb_has(connection: Any, schema: str, table: str) -> bool:
    found = connection.execute(
        "select count(*) from information_schema.tables where table_schema = ? and table_name = ?",
        [schema, table],
    ).fetchone()
    return bool(found and found[0])


def erase_user_duckdb(connection: Any, user_id: str) -> list[TableErasure]:
    """Delete the user's rows from every DuckDB table with a user_id column, in one transaction."""
    results: list[TableErasure] = []
    connection.execute("begin transaction")
    try:
        if _duckdb_has(connection, RAW_SCHEMA, REJECTED_TABLE) and _duckdb_has(
            connection, RAW_SCHEMA, EVENTS_TABLE
        ):
            rejected = f"{_duckdb_ident(RAW_SCHEMA)}.{_duckdb_ident(REJECTED_TABLE)}"
            events = f"{_duckdb_ident(RAW_SCHEMA)}.{_duckdb_ident(EVENTS_TABLE)}"
            (count,) = connection.execute(
                f"delete from {rejected} where event_id in "
                f"(select event_id from {events} where {USER_COLUMN} = ?) "
                "or (case when json_valid(raw_json) then json_extract_string(raw_json, '$.user_id') end) = ?",
                [user_id, user_id],
            ).fetchone()
            results.append(TableErasure(f"{RAW_SCHEMA}.{REJECTED_TABLE}", int(count)))
        for schema, table in duckdb_user_tables(connection):
            target = f"{_duckdb_ident(schema)}.{_duckdb_ident(table)}"
            (count,) = connection.execute(
                f"delete from {target} where {USER_COLUMN} = ?", [user_id]
            ).fetchone()
            results.append(TableErasure(f"{schema}.{table}", int(count)))
        connection.execute("commit")
    except Exception:
        connection.execute("rollback")
        raise
    return results


# BigQuery: the statements are built here and run with the user id as the ``@user_id`` parameter.
def _bq_project(project: str) -> str:
    if not _BQ_PROJECT.match(project):
        raise ValueError(f"not a BigQuery project id: {project!r}")
    return project


def _bq_name(name: str) -> str:
    if not _BQ_NAME.match(name):
        raise ValueError(f"not a plain BigQuery dataset or table name: {name!r}")
    return name


def _bq_dataset(project: str, dataset: str) -> str:
    return f"{_bq_project(project)}.{_bq_name(dataset)}"


def bq_table(project: str, dataset: str, table: str) -> str:
    """A backquoted ``project.dataset.table`` from checked parts."""
    return f"`{_bq_dataset(project, dataset)}.{_bq_name(table)}`"


def bigquery_user_tables_sql(project: str, dataset: str) -> str:
    """The base tables of ``dataset`` with a user_id column (no parameters: identifiers only)."""
    ref = _bq_dataset(project, dataset)
    return (
        f"select c.table_name from `{ref}.INFORMATION_SCHEMA.COLUMNS` as c "
        f"join `{ref}.INFORMATION_SCHEMA.TABLES` as t on t.table_name = c.table_name "
        f"where c.column_name = '{USER_COLUMN}' and t.table_type = 'BASE TABLE' "
        "order by c.table_name"
    )


def bigquery_delete_sql(project: str, dataset: str, table: str) -> str:
    return f"delete from {bq_table(project, dataset, table)} where {USER_COLUMN} = @user_id"


def bigquery_delete_rejected_sql(project: str, raw_dataset: str) -> str:
    rejected = bq_table(project, raw_dataset, REJECTED_TABLE)
    events = bq_table(project, raw_dataset, EVENTS_TABLE)
    return (
        f"delete from {rejected} where event_id in "
        f"(select event_id from {events} where {USER_COLUMN} = @user_id) "
        "or safe.json_value(raw_json, '$.user_id') = @user_id"
    )


def bigquery_erase_plan(
    project: str, raw_dataset: str, tables_by_dataset: Mapping[str, Sequence[str]]
) -> list[tuple[str, str]]:
    """``(table name, DELETE statement)`` in execution order: rejected rows before the events."""
    plan: list[tuple[str, str]] = []
    raw_tables = set(tables_by_dataset.get(raw_dataset, ()))
    if EVENTS_TABLE in raw_tables:
        plan.append((f"{raw_dataset}.{REJECTED_TABLE}", bigquery_delete_rejected_sql(project, raw_dataset)))
    for dataset, tables in tables_by_dataset.items():
        for table in tables:
            plan.append((f"{dataset}.{table}", bigquery_delete_sql(project, dataset, table)))
    return plan


def erase_user_bigquery(
    client: Any, project: str, raw_dataset: str, datasets: Sequence[str], user_id: str
) -> list[TableErasure]:
    """Run the plan with ``client`` (a ``google.cloud.bigquery.Client``); DML row counts per table."""
    from google.cloud import bigquery

    tables_by_dataset = {
        dataset: [str(row[0]) for row in client.query(bigquery_user_tables_sql(project, dataset)).result()]
        for dataset in dict.fromkeys(datasets)
    }
    config = bigquery.QueryJobConfig(
        query_parameters=[bigquery.ScalarQueryParameter("user_id", "STRING", user_id)]
    )
    results = []
    for table, sql in bigquery_erase_plan(project, raw_dataset, tables_by_dataset):
        job = client.query(sql, job_config=config)
        job.result()
        results.append(TableErasure(table, int(job.num_dml_affected_rows or 0)))
    return results


# The Parquet lake.
def _lake_files(fs: pafs.FileSystem, base: str) -> list[str]:
    selector = pafs.FileSelector(base, recursive=True, allow_not_found=True)
    return sorted(
        info.path
        for info in fs.get_file_info(selector)
        if info.type == pafs.FileType.File
        and info.path.endswith(".parquet")
        and not any(part.startswith(".") for part in info.path[len(base) :].split("/"))
    )


def erase_user_lake(fs: pafs.FileSystem, base: str, user_id: str) -> list[TableErasure]:
    """Rewrite every lake file that holds rows of the user without them; rows removed per table folder.

    A file is replaced as a whole: on a local disk through a temporary sibling and a rename, on an
    object store by uploading the object under its own name (atomic per object).
    """
    removed: dict[str, int] = {}
    for path in _lake_files(fs, base):
        with fs.open_input_file(path) as source:
            parquet = pq.ParquetFile(source)
            if USER_COLUMN not in parquet.schema_arrow.names:
                continue
            rows = parquet.read()
        match = pc.fill_null(pc.equal(rows.column(USER_COLUMN), pa.scalar(user_id)), False)
        count = int(pc.sum(match).as_py() or 0)
        table = path[len(base) :].strip("/").split("/", 1)[0]
        removed.setdefault(table, 0)
        if not count:
            continue
        _rewrite(fs, path, rows.filter(pc.invert(match)))
        removed[table] += count
    return [TableErasure(f"lake/{table}", rows) for table, rows in removed.items()]


def _rewrite(fs: pafs.FileSystem, path: str, rows: pa.Table) -> None:
    target = path
    if fs.type_name == "local":
        parent, name = path.rsplit("/", 1)
        target = f"{parent}/.{name}.erase-{uuid.uuid4().hex[:8]}"
    with fs.open_output_stream(target) as sink:
        pq.write_table(rows, sink, compression="zstd")
    if target != path:
        fs.move(target, path)


def local_lake(root: Path) -> tuple[pafs.FileSystem, str]:
    return pafs.LocalFileSystem(), root.resolve().as_posix()
