"""The Parquet lake: a local folder, or a GCS bucket in production, addressed through pyarrow.fs."""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.fs as pafs

from assets.kafka_export.parquet_io import HourWriter, hour_folder, read_hour
from assets.warehouse.tables import RawTable

logger = logging.getLogger(__name__)


class LakeResource(dg.ConfigurableResource):
    """``root`` is an absolute local path or a ``gs://bucket/prefix`` URI."""

    root: str

    def filesystem(self) -> tuple[pafs.FileSystem, str]:
        if "://" in self.root:
            return pafs.FileSystem.from_uri(self.root)
        path = Path(self.root).resolve()
        path.mkdir(parents=True, exist_ok=True)
        return pafs.LocalFileSystem(), path.as_posix()

    def uri(self, path: str) -> str:
        """A path from ``filesystem()`` as warehouses take it: local path or gs:// URI."""
        if self.root.startswith("gs://"):
            return f"gs://{path}"
        return path

    def hour_writer(self, table: RawTable, hour: datetime) -> HourWriter:
        fs, base = self.filesystem()
        return HourWriter(fs, hour_folder(base, table.name, hour), table.arrow_schema)

    def read_hour(self, table: RawTable, hour: datetime) -> pa.Table:
        fs, base = self.filesystem()
        return read_hour(fs, hour_folder(base, table.name, hour), table.arrow_schema)

    def hour_location(self, table: RawTable, hour: datetime) -> str:
        _, base = self.filesystem()
        return self.uri(hour_folder(base, table.name, hour))
