"""One Parquet folder per exported hour, replaced as a whole so readers never see a half-written hour.

Layout: ``<lake>/click_events/partition_hour=YYYY-MM-DDTHH/part-0.parquet`` (Hive style, so DuckDB,
BigQuery external tables and Spark read the partition column from the path). The hour is written into
a temporary sibling folder and swapped in with renames on a local disk; on an object store (GCS), where
folders are only prefixes, the single object is uploaded under its final name (atomic per object) and
stale objects of an earlier run are deleted afterwards.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Final, Self

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

logger = logging.getLogger(__name__)

PART_NAME: Final = "part-0.parquet"
ROW_GROUP_ROWS: Final = 256_000


def hour_folder(base: str, table: str, hour: datetime) -> str:
    """``base/table/partition_hour=YYYY-MM-DDTHH`` for an aware or naive-UTC hour."""
    moment = hour.astimezone(UTC) if hour.tzinfo else hour
    return f"{base.rstrip('/')}/{table}/partition_hour={moment:%Y-%m-%dT%H}"


@dataclass(frozen=True, slots=True)
class WrittenHour:
    folder: str
    files: tuple[str, ...]
    rows: int
    bytes: int


class HourWriter:
    """Streams record batches into one Parquet file and publishes the hour's folder on ``commit``.

    Batches are buffered into row groups of ``ROW_GROUP_ROWS``, so memory stays bounded however long
    the hour is. Leaving the ``with`` block without ``commit`` removes the temporary output.
    """

    def __init__(self, filesystem: pafs.FileSystem, folder: str, schema: pa.Schema) -> None:
        self._fs = filesystem
        self._folder = folder
        self._schema = schema
        self._local = filesystem.type_name == "local"
        parent, name = folder.rsplit("/", 1)
        self._staging = f"{parent}/.{name}.tmp-{uuid.uuid4().hex[:12]}" if self._local else folder
        self._path = f"{self._staging}/{PART_NAME}"
        self._pending: list[pa.RecordBatch] = []
        self._pending_rows = 0
        self._rows = 0
        self._writer: pq.ParquetWriter | None = None
        self._committed = False

    def __enter__(self) -> Self:
        self._fs.create_dir(self._staging, recursive=True)
        self._writer = pq.ParquetWriter(
            self._path, self._schema, filesystem=self._fs, compression="zstd", write_statistics=True
        )
        return self

    def write(self, batch: pa.RecordBatch) -> None:
        if batch.num_rows == 0:
            return
        self._pending.append(batch)
        self._pending_rows += batch.num_rows
        if self._pending_rows >= ROW_GROUP_ROWS:
            self._flush()

    def _flush(self) -> None:
        if self._pending and self._writer is not None:
            self._writer.write_table(pa.Table.from_batches(self._pending, schema=self._schema))
            self._rows += self._pending_rows
        self._pending = []
        self._pending_rows = 0

    def commit(self) -> WrittenHour:
        """Close the file and make it the hour's only content."""
        self._flush()
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._local:
            replace_local_folder(self._fs, self._staging, self._folder)
        else:
            remove_other_files(self._fs, self._folder, keep=PART_NAME)
        self._committed = True
        final = f"{self._folder}/{PART_NAME}"
        size = self._fs.get_file_info(final).size or 0
        return WrittenHour(folder=self._folder, files=(final,), rows=self._rows, bytes=size)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if not self._committed and self._local:
            self._fs.delete_dir(self._staging)


def replace_local_folder(fs: pafs.FileSystem, staging: str, folder: str) -> None:
    """Swap ``staging`` in as ``folder``: two renames, the old content removed afterwards."""
    info = fs.get_file_info(folder)
    if info.type == pafs.FileType.NotFound:
        fs.move(staging, folder)
        return
    parent, name = folder.rsplit("/", 1)
    retired = f"{parent}/.{name}.old-{uuid.uuid4().hex[:12]}"
    fs.move(folder, retired)
    fs.move(staging, folder)
    fs.delete_dir(retired)


def remove_other_files(fs: pafs.FileSystem, folder: str, *, keep: str) -> None:
    selector = pafs.FileSelector(folder, allow_not_found=True)
    for info in fs.get_file_info(selector):
        if info.type == pafs.FileType.File and info.base_name != keep:
            fs.delete_file(info.path)


def read_hour(fs: pafs.FileSystem, folder: str, schema: pa.Schema) -> pa.Table:
    """The hour's rows as written (an empty table when the hour was never exported)."""
    selector = pafs.FileSelector(folder, allow_not_found=True)
    files = sorted(i.path for i in fs.get_file_info(selector) if i.path.endswith(".parquet"))
    if not files:
        return schema.empty_table()
    tables = [pq.read_table(path, filesystem=fs, schema=schema) for path in files]
    return pa.concat_tables(tables)
