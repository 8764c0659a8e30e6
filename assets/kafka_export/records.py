"""Kafka records of clicks.enriched → Arrow record batches in the raw.click_events contract.

Hot path of the export. The fast path hands a whole batch to Arrow's C++ JSON reader (the records joined
as NDJSON) and decodes only the ``properties`` objects with orjson, since they are kept as JSON text;
timestamps are parsed by one vectorised cast. When Arrow refuses the batch (a record that is not JSON, a
value of the wrong type), the batch takes the tolerant path: one ``orjson.loads`` per record and one
typed column at a time, so a bad record never stops the export. Its row is kept, with nulls where a
value could not be used, so the row count still matches Kafka and the expectation suite rejects it.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json

from assets.warehouse.tables import CLICK_EVENTS, LAKE_TIMESTAMP

logger = logging.getLogger(__name__)

# (value, kafka partition, kafka offset, kafka timestamp in ms): a tuple, built once per record.
KafkaRecord = tuple[bytes | None, int, int, int]

STRING_FIELDS: Final = (
    "event_id",
    "event_type",
    "user_id",
    "session_id",
    "video_id",
    "button_id",
    "surface",
    "model_version",
    "conversion_type",
    "device",
    "app_version",
    "user_country",
    "user_tier",
    "user_language",
)
TIME_FIELDS: Final = ("event_time", "received_at")
_EMPTY: Final[dict[str, Any]] = {}
_SCHEMA: Final = CLICK_EVENTS.arrow_schema


@dataclass(slots=True)
class ConversionStats:
    """What the conversion had to work around, for the asset's metadata."""

    records: int = 0
    unparseable: int = 0
    coerced_values: int = 0
    coerced_by_field: dict[str, int] = field(default_factory=dict)

    def add(self, other: ConversionStats) -> None:
        self.records += other.records
        self.unparseable += other.unparseable
        self.coerced_values += other.coerced_values
        for name, count in other.coerced_by_field.items():
            self.coerced_by_field[name] = self.coerced_by_field.get(name, 0) + count

    def _coerced(self, name: str, count: int) -> None:
        if count:
            self.coerced_values += count
            self.coerced_by_field[name] = self.coerced_by_field.get(name, 0) + count


def _decode(value: bytes | None) -> dict[str, Any] | None:
    if value is None:
        return None
    try:
        doc = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    return doc if isinstance(doc, dict) else None


def _string_array(values: list[Any], name: str, stats: ConversionStats) -> pa.Array:
    try:
        return pa.array(values, type=pa.string())
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        coerced = [v if v is None or isinstance(v, str) else orjson.dumps(v).decode() for v in values]
        stats._coerced(name, sum(1 for v in values if v is not None and not isinstance(v, str)))
        return pa.array(coerced, type=pa.string())


def _number_array(values: list[Any], name: str, arrow_type: pa.DataType, stats: ConversionStats) -> pa.Array:
    integral = pa.types.is_integer(arrow_type)
    try:
        if not any(isinstance(v, bool) or (integral and isinstance(v, float)) for v in values):
            return pa.array(values, type=arrow_type)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        pass
    kept: list[Any] = []
    bad = 0
    for v in values:
        ok = isinstance(v, int | float) and not isinstance(v, bool)
        if ok and integral and (not float(v).is_integer() or not -(2**31) <= v < 2**31):
            ok = False
        if ok:
            kept.append(int(v) if integral else float(v))
        else:
            kept.append(None)
            bad += v is not None
    stats._coerced(name, bad)
    return pa.array(kept, type=arrow_type)


def _bool_array(values: list[Any], name: str, stats: ConversionStats) -> pa.Array:
    try:
        if all(v is None or isinstance(v, bool) for v in values):
            return pa.array(values, type=pa.bool_())
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        pass
    stats._coerced(name, sum(1 for v in values if v is not None and not isinstance(v, bool)))
    return pa.array([v if isinstance(v, bool) else None for v in values], type=pa.bool_())


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _time_array(values: list[Any], name: str, stats: ConversionStats) -> pa.Array:
    """RFC 3339 strings → UTC timestamps; one vectorised cast, per-value only if that fails."""
    try:
        return pa.array(values, type=pa.string()).cast(LAKE_TIMESTAMP)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        parsed = [_parse_time(v) for v in values]
        stats._coerced(
            name, sum(1 for v, p in zip(values, parsed, strict=True) if v is not None and p is None)
        )
        return pa.array(parsed, type=LAKE_TIMESTAMP)


def _properties_array(values: list[Any], stats: ConversionStats) -> pa.Array:
    texts = [
        None
        if v is None
        else v
        if isinstance(v, str)
        else orjson.dumps(v, option=orjson.OPT_SORT_KEYS).decode()
        for v in values
    ]
    return pa.array(texts, type=pa.string())


def hour_micros(hour: datetime) -> int:
    return int(hour.astimezone(UTC).timestamp()) * 1_000_000


_FAST_SCHEMA: Final = pa.schema(
    [pa.field(name, pa.string()) for name in (*STRING_FIELDS, *TIME_FIELDS)]
    + [
        pa.field("playback_position_s", pa.float64()),
        pa.field("rec_slot", pa.int64()),
        pa.field("is_late", pa.bool_()),
    ]
)
_FAST_PARSE: Final = pa_json.ParseOptions(explicit_schema=_FAST_SCHEMA, unexpected_field_behavior="ignore")
_PROPERTIES_MARK: Final = b'"properties"'


def _fast_columns(records: Sequence[KafkaRecord]) -> dict[str, pa.Array] | None:
    """Arrow's JSON reader over the whole batch, or None when any record needs the tolerant path."""
    values = [r[0] for r in records]
    if any(v is None or b"\n" in v or b"\r" in v for v in values):
        return None
    data = b"\n".join(values)  # type: ignore[arg-type]
    options = pa_json.ReadOptions(use_threads=True, block_size=max(1 << 20, 2 * len(data)))
    try:
        table = pa_json.read_json(io.BytesIO(data), read_options=options, parse_options=_FAST_PARSE)
        if table.num_rows != len(values):
            return None
        columns = {name: table.column(name).combine_chunks() for name in _FAST_SCHEMA.names}
        for name in TIME_FIELDS:
            columns[name] = columns[name].cast(LAKE_TIMESTAMP)
        columns["rec_slot"] = columns["rec_slot"].cast(pa.int32())
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return None
    properties: list[str | None] = [None] * len(values)
    for index, value in enumerate(values):
        if _PROPERTIES_MARK in value:  # type: ignore[operator]
            found = orjson.loads(value).get("properties")  # type: ignore[arg-type]
            if found is not None:
                properties[index] = (
                    found
                    if isinstance(found, str)
                    else orjson.dumps(found, option=orjson.OPT_SORT_KEYS).decode()
                )
    columns["properties"] = pa.array(properties, type=pa.string())
    return columns


def _tolerant_columns(records: Sequence[KafkaRecord], stats: ConversionStats) -> dict[str, pa.Array]:
    docs: list[dict[str, Any]] = []
    for value, _, _, _ in records:
        doc = _decode(value)
        if doc is None:
            stats.unparseable += 1
            doc = _EMPTY
        docs.append(doc)
    columns: dict[str, pa.Array] = {}
    for name in STRING_FIELDS:
        columns[name] = _string_array([d.get(name) for d in docs], name, stats)
    for name in TIME_FIELDS:
        columns[name] = _time_array([d.get(name) for d in docs], name, stats)
    columns["playback_position_s"] = _number_array(
        [d.get("playback_position_s") for d in docs], "playback_position_s", pa.float64(), stats
    )
    columns["rec_slot"] = _number_array([d.get("rec_slot") for d in docs], "rec_slot", pa.int32(), stats)
    columns["is_late"] = _bool_array([d.get("is_late") for d in docs], "is_late", stats)
    columns["properties"] = _properties_array([d.get("properties") for d in docs], stats)
    return columns


def records_to_batch(
    records: Sequence[KafkaRecord], partition_hour: datetime
) -> tuple[pa.RecordBatch, ConversionStats]:
    """One Arrow batch in contract column order (timestamps zoned UTC), and what had to be coerced."""
    stats = ConversionStats(records=len(records))
    columns = _fast_columns(records) if records else None
    if columns is None:
        columns = _tolerant_columns(records, stats)
    n = len(records)
    columns["kafka_partition"] = pa.array([r[1] for r in records], type=pa.int32())
    columns["kafka_offset"] = pa.array([r[2] for r in records], type=pa.int64())
    kafka_ms = np.fromiter((r[3] for r in records), dtype=np.int64, count=n)
    columns["kafka_timestamp"] = pa.array(kafka_ms * 1000, type=LAKE_TIMESTAMP)
    hour = np.full(n, hour_micros(partition_hour), dtype=np.int64)
    columns["partition_hour"] = pa.array(hour, type=LAKE_TIMESTAMP)
    batch = pa.RecordBatch.from_arrays([columns[name] for name in _SCHEMA.names], schema=_SCHEMA)
    return batch, stats


def late_events(batch: pa.RecordBatch | pa.Table) -> int:
    """Rows the consumer flagged as arriving later than the allowed lateness."""
    total = pc.sum(batch.column("is_late")).as_py()
    return int(total or 0)
