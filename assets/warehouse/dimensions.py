"""Dimension files → Arrow tables in the raw contract, and Arrow rows → Redis hash fields."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv

from assets.warehouse.tables import RawTable, conform

logger = logging.getLogger(__name__)


def read_dimension_csv(path: str, table: RawTable) -> pa.Table:
    """Read a CSV with a header; contract columns typed, extra columns (e.g. ``episode``) dropped.

    Empty strings stay empty strings for text columns (a film's ``series`` is ""), so the Redis hash
    and the warehouse see the same value.
    """
    types = {f.name: f.type for f in table.schema}
    options = pacsv.ConvertOptions(
        column_types=types,
        include_columns=table.columns,
        include_missing_columns=True,
        strings_can_be_null=False,
    )
    rows = pacsv.read_csv(path, convert_options=options)
    return conform(rows, table)


def hash_fields(rows: pa.Table, key_column: str) -> Iterator[tuple[str, dict[str, str]]]:
    """(entity id, {field: text}) per row; nulls become "" so every field is overwritten on refresh."""
    columns = [c for c in rows.column_names if c != key_column]
    for record in rows.to_pylist():
        key = record[key_column]
        if key is None or key == "":
            continue
        yield str(key), {c: _text(record[c]) for c in columns}


def _text(value: Any) -> str:
    if value is None:
        return ""
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)
