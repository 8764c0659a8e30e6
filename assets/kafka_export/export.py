"""One hour of clicks.enriched → one Parquet folder → one validated warehouse partition.

The steps are the pure pieces of this package wired to the resources: plan the offset range, read it
in batches, convert, stream into the hour's Parquet file, publish the folder (every exported record),
run the expectation suite on it (evaluated with pyarrow.compute; the ``great_expectations_suite`` check
reruns it with Great Expectations), and replace the hour in the warehouse: the records that passed into
raw.click_events, the others into raw.rejected_rows. Every step replaces rather than appends, so
running an hour twice, or hours in any order, leaves the same lake and warehouse.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import Consumer

from assets.kafka_export.arrow_suite import evaluate_suite
from assets.kafka_export.expectations import TimeBounds, validate_hour
from assets.kafka_export.offsets import OffsetRange, ranges_metadata, total_records
from assets.kafka_export.reader import lookup_ranges, read_ranges
from assets.kafka_export.records import ConversionStats, late_events, records_to_batch
from assets.partitions import HOUR
from assets.warehouse.tables import CLICK_EVENTS
from orchestration.lake import LakeResource
from orchestration.warehouse import Warehouse

logger = logging.getLogger(__name__)


class ExportMismatchError(RuntimeError):
    """The warehouse did not end up with the records the lake file holds (loaded + rejected)."""


@dataclass(slots=True)
class HourExport:
    hour: datetime
    ranges: list[OffsetRange]
    records: int = 0
    rows: int = 0  # loaded into raw.click_events
    rejected_rows: int = 0  # in raw.rejected_rows
    rejected_by_expectation: dict[str, int] = field(default_factory=dict)
    late_events: int = 0
    bytes: int = 0
    seconds: float = 0.0
    location: str = ""
    conversion: ConversionStats = field(default_factory=ConversionStats)

    @property
    def expected_records(self) -> int:
        return total_records(self.ranges)

    def to_metadata(self) -> dict[str, Any]:
        return {
            "records": self.records,
            "rows": self.rows,
            "rejected_rows": self.rejected_rows,
            "rejected_by_expectation": dict(self.rejected_by_expectation),
            "late_events": self.late_events,
            "bytes": self.bytes,
            "seconds": round(self.seconds, 3),
            "kafka_offsets": ranges_metadata(self.ranges),
            "unparseable_records": self.conversion.unparseable,
            "coerced_values": self.conversion.coerced_values,
            "location": self.location,
        }


def export_hour(
    consumer: Consumer,
    topic: str,
    hour: datetime,
    lake: LakeResource,
    warehouse: Warehouse,
    *,
    batch_size: int,
    stall_timeout_s: float,
    log_every: int,
    lateness_minutes: int,
    early_minutes: int,
    log: Callable[[str], None] = logger.info,
) -> HourExport:
    started = time.perf_counter()
    ranges = lookup_ranges(consumer, topic, hour, hour + HOUR)
    result = HourExport(hour=hour, ranges=ranges)
    expected = result.expected_records
    log(f"{hour:%Y-%m-%dT%H}: {expected} records in {topic} {ranges_metadata(ranges)}")
    next_log = log_every
    with lake.hour_writer(CLICK_EVENTS, hour) as writer:
        for records in read_ranges(
            consumer, topic, ranges, batch_size=batch_size, stall_timeout_s=stall_timeout_s
        ):
            batch, stats = records_to_batch(records, hour)
            writer.write(batch)
            result.conversion.add(stats)
            result.late_events += late_events(batch)
            result.records += len(records)
            if result.records >= next_log:
                rate = result.records / max(time.perf_counter() - started, 1e-9)
                log(f"{hour:%Y-%m-%dT%H}: {result.records}/{expected} records read ({rate:,.0f}/s)")
                next_log += log_every
        written = writer.commit()
    result.bytes = written.bytes
    result.location = lake.uri(written.folder)
    validation = validate_hour(
        lake.read_hour(CLICK_EVENTS, hour),
        TimeBounds(hour, lateness_minutes, early_minutes),
        datetime.now(UTC),
        evaluate_suite,
    )
    load = warehouse.replace_export_hour(hour, [lake.uri(f) for f in written.files], validation.rejected)
    result.rows, result.rejected_rows = load.loaded, load.rejected
    result.rejected_by_expectation = validation.by_expectation
    if load.loaded + load.rejected != written.rows or load.rejected != validation.rejected_count:
        raise ExportMismatchError(
            f"{hour:%Y-%m-%dT%H}: wrote {written.rows} records to {written.folder} and rejected "
            f"{validation.rejected_count}, but the warehouse holds {load.loaded} rows and {load.rejected} "
            "rejected rows for that hour"
        )
    if load.rejected:
        log(
            f"{hour:%Y-%m-%dT%H}: {load.rejected} of {written.rows} records failed the expectation suite "
            f"and went to rejected_rows: {validation.by_expectation}"
        )
    result.seconds = time.perf_counter() - started
    if result.conversion.unparseable or result.conversion.coerced_values:
        log(
            f"{hour:%Y-%m-%dT%H}: {result.conversion.unparseable} unparseable records and "
            f"{result.conversion.coerced_values} coerced values {result.conversion.coerced_by_field}"
        )
    return result


def summary_metadata(exports: Sequence[HourExport], seconds: float) -> dict[str, Any]:
    """Totals of a run (one hour, or a range in a single-run backfill) and the numbers per hour."""
    records = sum(e.records for e in exports)
    per_hour = {f"{e.hour:%Y-%m-%dT%H}": e.to_metadata() for e in exports}
    by_expectation: dict[str, int] = {}
    for e in exports:
        for name, count in e.rejected_by_expectation.items():
            by_expectation[name] = by_expectation.get(name, 0) + count
    return {
        "records": records,
        "rows": sum(e.rows for e in exports),
        "rejected_rows": sum(e.rejected_rows for e in exports),
        "rejected_by_expectation": by_expectation,
        "late_events": sum(e.late_events for e in exports),
        "bytes": sum(e.bytes for e in exports),
        "duration_s": round(seconds, 3),
        "events_per_s": round(records / seconds, 1) if seconds > 0 else 0.0,
        "hours": len(exports),
        "kafka_offsets": {hour: meta["kafka_offsets"] for hour, meta in per_hour.items()},
        "per_hour": per_hour,
    }
