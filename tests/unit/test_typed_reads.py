"""The typed readers tests rely on: Dagster metadata entries and dead-letter headers."""

from __future__ import annotations

from collections.abc import Callable

import dagster as dg
import pytest

from streaming.dlq import HEADER_ERROR, HEADER_STAGE, dead_letter_headers, read_headers
from tests.support.dagster_metadata import (
    Metadata,
    metadata_float,
    metadata_int,
    metadata_list,
    metadata_mapping,
    metadata_str,
    metadata_table,
)

ROWS: list[dict[str, str | float]] = [{"model": "als", "ndcg": 0.25}, {"model": "popularity", "ndcg": 0.125}]


@pytest.fixture
def metadata() -> Metadata:
    """One entry of each kind, read back from a materialization as the tests read an asset's."""
    entries: dict[str, dg.MetadataValue] = {
        "rows": dg.MetadataValue.int(42),
        "share": dg.MetadataValue.float(0.5),
        "whole": dg.MetadataValue.int(3),
        "agrees": dg.MetadataValue.bool(True),
        "version": dg.MetadataValue.text("m-7"),
        "chart": dg.MetadataValue.md("![chart](x.png)"),
        "path": dg.MetadataValue.path("/tmp/x.png"),
        "per_hour": dg.MetadataValue.json({"2026-01-01T00": {"records": 5}}),
        "hours": dg.MetadataValue.json(["2026-01-01T00", "2026-01-01T01"]),
        "metrics": dg.MetadataValue.table(
            records=[dg.TableRecord(row) for row in ROWS],
            schema=dg.TableSchema(columns=[dg.TableColumn("model", "string"), dg.TableColumn("ndcg")]),
        ),
    }
    return dg.AssetMaterialization("x", metadata=entries).metadata


def test_each_reader_returns_the_entry_it_was_asked_for(metadata: Metadata) -> None:
    assert metadata_int(metadata, "rows") == 42
    assert metadata_float(metadata, "share") == 0.5
    assert metadata_float(metadata, "whole") == 3.0 and isinstance(metadata_float(metadata, "whole"), float)
    assert metadata_str(metadata, "version") == "m-7"
    assert metadata_str(metadata, "chart") == "![chart](x.png)"
    assert metadata_str(metadata, "path") == "/tmp/x.png"
    assert metadata_mapping(metadata, "per_hour") == {"2026-01-01T00": {"records": 5}}
    assert metadata_list(metadata, "hours") == ["2026-01-01T00", "2026-01-01T01"]
    assert [r.data for r in metadata_table(metadata, "metrics")] == ROWS


@pytest.mark.parametrize(
    ("read", "key", "found"),
    [
        (metadata_int, "share", "float"),
        (metadata_int, "agrees", "bool"),  # a bool is an int to Python, never to these tests
        (metadata_float, "agrees", "bool"),
        (metadata_float, "version", "str"),
        (metadata_str, "rows", "int"),
        (metadata_mapping, "hours", "list"),
        (metadata_list, "version", "str"),  # a str is a sequence, not a JSON array
        (metadata_list, "per_hour", "dict"),
        (metadata_table, "hours", "JsonMetadataValue"),
    ],
)
def test_an_entry_of_another_kind_fails_naming_the_key_and_the_kind(
    metadata: Metadata, read: Callable[[Metadata, str], object], key: str, found: str
) -> None:
    with pytest.raises(AssertionError, match=f"metadata '{key}' should be .*, got {found}"):
        read(metadata, key)


def test_a_missing_entry_fails_listing_the_keys(metadata: Metadata) -> None:
    with pytest.raises(AssertionError, match=r"no 'absent' entry .*'rows'"):
        metadata_int(metadata, "absent")


def test_read_headers_decodes_what_message_headers_returns() -> None:
    written = dead_letter_headers("bad JSON", "collector", "clicks.raw", 2, 17)
    decoded = read_headers(list(written))
    assert decoded == {k: v.decode() for k, v in written}
    assert (decoded[HEADER_ERROR], decoded[HEADER_STAGE]) == ("bad JSON", "collector")
    # librdkafka gives a header without a value as None; a dict or str values are accepted as well
    assert read_headers([("a", b"1"), ("empty", None)]) == {"a": "1"}
    assert read_headers({"a": b"1", "b": "2", "empty": None}) == {"a": "1", "b": "2"}
    assert read_headers(None) == {}
    assert read_headers([("bad", b"\xff")]) == {"bad": "\ufffd"}
