"""Which Kafka offsets hold an hour: pure planning from ``offsets_for_times`` answers and watermarks.

``offsets_for_times(ts)`` answers, per partition, the first offset whose timestamp is >= ts, or -1 when
no such record exists yet (the hour lies beyond the partition's end). The hour [h, h+1) is then the
offset range [offset(h), offset(h+1)) with -1 read as the high watermark. Consecutive hours share their
boundary offset, so every record belongs to exactly one hour and reruns read the same records.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)

OFFSET_END = -1  # librdkafka's OFFSET_END: what offsets_for_times answers when no record is that new


@dataclass(frozen=True, slots=True)
class OffsetRange:
    """Offsets [start, end) of one Kafka partition; ``end`` is exclusive."""

    partition: int
    start: int
    end: int

    @property
    def count(self) -> int:
        return max(0, self.end - self.start)

    def to_metadata(self) -> dict[str, int]:
        return {"start": self.start, "end": self.end, "records": self.count}


@dataclass(frozen=True, slots=True)
class Watermarks:
    low: int
    high: int


def resolve_offset(answer: int, watermarks: Watermarks) -> int:
    """An offsets_for_times answer as a concrete offset inside [low, high]."""
    if answer < 0:  # OFFSET_END (or any logical offset): nothing at or after the time yet
        return watermarks.high
    return min(max(answer, watermarks.low), watermarks.high)


def plan_ranges(
    start_answers: Mapping[int, int],
    end_answers: Mapping[int, int],
    watermarks: Mapping[int, Watermarks],
) -> list[OffsetRange]:
    """One range per partition, sorted by partition; empty ranges are kept so metadata shows them."""
    ranges = []
    for partition in sorted(watermarks):
        marks = watermarks[partition]
        start = resolve_offset(start_answers.get(partition, OFFSET_END), marks)
        end = resolve_offset(end_answers.get(partition, OFFSET_END), marks)
        ranges.append(OffsetRange(partition=partition, start=start, end=max(start, end)))
    return ranges


def total_records(ranges: Sequence[OffsetRange]) -> int:
    return sum(r.count for r in ranges)


def ranges_metadata(ranges: Sequence[OffsetRange]) -> dict[str, Any]:
    """``{"0": {"start": .., "end": .., "records": ..}, ...}`` for Dagster metadata."""
    return {str(r.partition): r.to_metadata() for r in ranges}
