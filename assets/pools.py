"""Concurrency pools. Every op that opens the warehouse runs in ``warehouse``: DuckDB allows one
writing process per file, so orchestration/dagster.yaml limits the pool to one op at a time."""

from __future__ import annotations

from typing import Final

WAREHOUSE_POOL: Final = "warehouse"
