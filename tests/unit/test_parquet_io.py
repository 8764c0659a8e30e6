"""The lake: one folder per hour, replaced whole, never half-written."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs
import pytest

from assets.kafka_export import parquet_io
from assets.kafka_export.parquet_io import HourWriter, hour_folder, read_hour

HOUR = datetime(2026, 11, 26, 3, tzinfo=UTC)
SCHEMA = pa.schema([("n", pa.int64()), ("s", pa.string())])


def batch(values: range) -> pa.RecordBatch:
    return pa.RecordBatch.from_pydict({"n": list(values), "s": [str(v) for v in values]}, schema=SCHEMA)


def test_folder_names_are_hive_style_hours() -> None:
    assert hour_folder("/lake/", "click_events", HOUR) == "/lake/click_events/partition_hour=2026-11-26T03"


def test_write_commit_and_read_back(tmp_path: Path) -> None:
    fs = pafs.LocalFileSystem()
    folder = hour_folder(tmp_path.as_posix(), "t", HOUR)
    with HourWriter(fs, folder, SCHEMA) as writer:
        writer.write(batch(range(3)))
        writer.write(batch(range(3, 5)))
        written = writer.commit()
    assert written.rows == 5 and written.bytes > 0
    assert written.files == (f"{folder}/part-0.parquet",)
    assert read_hour(fs, folder, SCHEMA).column("n").to_pylist() == [0, 1, 2, 3, 4]
    assert [p.name for p in Path(folder).parent.iterdir()] == ["partition_hour=2026-11-26T03"]


def test_rewriting_an_hour_replaces_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parquet_io, "ROW_GROUP_ROWS", 2)  # several row groups in one file
    fs = pafs.LocalFileSystem()
    folder = hour_folder(tmp_path.as_posix(), "t", HOUR)
    for values in (range(10), range(100, 103)):
        with HourWriter(fs, folder, SCHEMA) as writer:
            writer.write(batch(values))
            writer.commit()
    assert read_hour(fs, folder, SCHEMA).column("n").to_pylist() == [100, 101, 102]
    assert sorted(p.name for p in Path(folder).parent.iterdir()) == ["partition_hour=2026-11-26T03"]


def test_a_failed_write_leaves_the_previous_hour_untouched(tmp_path: Path) -> None:
    fs = pafs.LocalFileSystem()
    folder = hour_folder(tmp_path.as_posix(), "t", HOUR)
    with HourWriter(fs, folder, SCHEMA) as writer:
        writer.write(batch(range(2)))
        writer.commit()
    with pytest.raises(RuntimeError), HourWriter(fs, folder, SCHEMA) as writer:
        writer.write(batch(range(50, 60)))
        raise RuntimeError("broker went away")
    assert read_hour(fs, folder, SCHEMA).column("n").to_pylist() == [0, 1]
    assert sorted(p.name for p in Path(folder).parent.iterdir()) == ["partition_hour=2026-11-26T03"]


def test_an_empty_hour_is_an_empty_file_and_a_missing_hour_reads_empty(tmp_path: Path) -> None:
    fs = pafs.LocalFileSystem()
    folder = hour_folder(tmp_path.as_posix(), "t", HOUR)
    with HourWriter(fs, folder, SCHEMA) as writer:
        assert writer.commit().rows == 0
    assert read_hour(fs, folder, SCHEMA).num_rows == 0
    assert (
        read_hour(
            fs, hour_folder(tmp_path.as_posix(), "t", datetime(2020, 1, 1, tzinfo=UTC)), SCHEMA
        ).num_rows
        == 0
    )
