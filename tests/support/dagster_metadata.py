"""Typed reads of Dagster metadata entries for the tests.

Dagster types a metadata entry's ``.value`` as the union of every metadata kind (int, float, str, JSON,
table, ...). These helpers read one entry as the kind the asset wrote, fail with a message naming the key
and the kind found when it is something else, and hand the test a precisely typed value.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import dagster as dg

Metadata = Mapping[str, dg.MetadataValue]


def _entry(metadata: Metadata, key: str) -> object:
    assert key in metadata, f"metadata has no {key!r} entry (keys: {sorted(metadata)})"
    value: object = metadata[key].value
    return value


def _kind_error(key: str, wanted: str, value: object) -> str:
    return f"metadata {key!r} should be {wanted}, got {type(value).__name__}: {value!r}"


def metadata_int(metadata: Metadata, key: str) -> int:
    value = _entry(metadata, key)
    assert isinstance(value, int) and not isinstance(value, bool), _kind_error(key, "an int", value)
    return value


def metadata_float(metadata: Metadata, key: str) -> float:
    """A numeric entry as a float (an int entry is accepted: it is a whole number of the same measure)."""
    value = _entry(metadata, key)
    assert isinstance(value, int | float) and not isinstance(value, bool), _kind_error(key, "a number", value)
    return float(value)


def metadata_str(metadata: Metadata, key: str) -> str:
    """A text, markdown or path entry."""
    value = _entry(metadata, key)
    assert isinstance(value, str), _kind_error(key, "a str", value)
    return value


def metadata_mapping(metadata: Metadata, key: str) -> Mapping[str, Any]:
    """A JSON object entry (its members are whatever JSON holds)."""
    value = _entry(metadata, key)
    assert isinstance(value, Mapping), _kind_error(key, "a JSON object", value)
    return value


def metadata_list(metadata: Metadata, key: str) -> list[Any]:
    """A JSON array entry."""
    value = _entry(metadata, key)
    assert isinstance(value, Sequence) and not isinstance(value, str | bytes), _kind_error(
        key, "a JSON array", value
    )
    return list(value)


def metadata_table(metadata: Metadata, key: str) -> list[dg.TableRecord]:
    """The records of a table entry."""
    entry = metadata.get(key)
    assert isinstance(entry, dg.TableMetadataValue), _kind_error(key, "a table", entry)
    return list(entry.records)
