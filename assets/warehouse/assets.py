"""``video_catalog`` and ``user_profiles``: dimension data into the warehouse and into Redis.

The Redis hashes (``streaming.keyspace``: video metadata, user attributes) are overwritten field by
field with HSET in pipelines, TTL set in the same pipeline, so a reader never sees a key disappear or
half-written while a refresh runs. Rows go in chunks so a million users never sit in one pipeline.
"""

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import dagster as dg
import pyarrow as pa

from assets.pools import WAREHOUSE_POOL
from assets.warehouse.tables import USER_PROFILES, VIDEO_CATALOG, RawTable
from orchestration.resources import DimensionSource, RedisResource
from orchestration.warehouse import Warehouse
from streaming.keyspace import write_user_attributes, write_video_metadata

logger = logging.getLogger(__name__)

DIMENSIONS_GROUP = "warehouse"
REDIS_CHUNK_ROWS = 10_000

Writer = Callable[..., int]


def _write_chunks(rows: pa.Table, write: Writer, redis: RedisResource) -> int:
    written = 0
    keyspace = redis.keyspace()
    for batch in rows.to_batches(max_chunksize=REDIS_CHUNK_ROWS):
        records: Iterable[Mapping[str, Any]] = batch.to_pylist()
        written += write(redis.router(), records, keyspace=keyspace)
    return written


def load_dimension(
    table: RawTable, write: Writer, dimensions: DimensionSource, warehouse: Warehouse, redis: RedisResource
) -> dg.MaterializeResult:
    rows = dimensions.read(table)
    loaded = warehouse.replace_table(table, rows)
    hashes = _write_chunks(rows, write, redis)
    return dg.MaterializeResult(
        metadata={
            "rows": loaded,
            "dagster/row_count": loaded,
            "redis_hashes": hashes,
            "source": dimensions.describe(table),
            "warehouse_table": f"raw.{table.name}",
        }
    )


@dg.asset(
    name="video_catalog",
    group_name=DIMENSIONS_GROUP,
    pool=WAREHOUSE_POOL,
    kinds={"sql", "redis"},
    description=(
        "The video catalog: raw.video_catalog in the warehouse and the video metadata hashes in Redis "
        "(titles for the API and the dashboard)."
    ),
)
def video_catalog(
    dimensions: DimensionSource, warehouse: Warehouse, redis: RedisResource
) -> dg.MaterializeResult:
    return load_dimension(VIDEO_CATALOG, write_video_metadata, dimensions, warehouse, redis)


@dg.asset(
    name="user_profiles",
    group_name=DIMENSIONS_GROUP,
    pool=WAREHOUSE_POOL,
    kinds={"sql", "redis"},
    description=(
        "User profiles: raw.user_profiles in the warehouse and the user attribute hashes in Redis, "
        "which the stream consumer uses to enrich events (country, tier, language)."
    ),
)
def user_profiles(
    dimensions: DimensionSource, warehouse: Warehouse, redis: RedisResource
) -> dg.MaterializeResult:
    return load_dimension(USER_PROFILES, write_user_attributes, dimensions, warehouse, redis)
