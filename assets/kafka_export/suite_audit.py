"""Great Expectations' verdict on an exported hour against the export's routing.

The export evaluates the suite with ``arrow_suite.evaluate_suite``; ``audit_hour`` reruns the same
specs with Great Expectations (``run_suite``) on the hour's exported records (the lake's folder) and
compares the result with what the warehouse holds: a loaded record GE rejects, a rejected record GE
passes, or a rejected record GE rejects for other expectations is a disagreement. The
``great_expectations_suite`` asset check fails on any.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import pyarrow as pa

from assets.kafka_export.expectations import SuiteError, TimeBounds, run_suite, validate_hour
from assets.warehouse.tables import RECORD_KEY

logger = logging.getLogger(__name__)

SAMPLE: Final = 10  # records listed per kind of disagreement in the check's metadata

Key = tuple[int, int]  # (kafka_partition, kafka_offset)


def _reasons(rejected: pa.Table) -> dict[Key, str]:
    """failed_expectations (a JSON array) by record."""
    columns = rejected.select([*RECORD_KEY, "failed_expectations"]).to_pydict()
    keys = zip(columns["kafka_partition"], columns["kafka_offset"], strict=True)
    return dict(zip(keys, columns["failed_expectations"], strict=True))


def _label(key: Key) -> str:
    return f"{key[0]}:{key[1]}"


@dataclass(frozen=True, slots=True)
class RoutingAudit:
    """Records (partition:offset) on which GE and the warehouse disagree, for one hour."""

    exported: int
    ge_rejected: int
    loaded_but_ge_rejects: list[str] = field(default_factory=list)
    rejected_but_ge_passes: list[str] = field(default_factory=list)
    other_expectations: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def disagreements(self) -> int:
        found = self.loaded_but_ge_rejects + self.rejected_but_ge_passes + self.other_expectations
        return len(found) + (self.error is not None)

    def to_metadata(self) -> dict[str, Any]:
        return {
            "ge_rejected": self.ge_rejected,
            "ge_disagreements": self.disagreements,
            "loaded_but_ge_rejects": self.loaded_but_ge_rejects[:SAMPLE],
            "rejected_but_ge_passes": self.rejected_but_ge_passes[:SAMPLE],
            "rejected_for_other_expectations": self.other_expectations[:SAMPLE],
            "ge_error": self.error,
        }


def audit_hour(exported: pa.Table, bounds: TimeBounds, loaded: pa.Table, rejected: pa.Table) -> RoutingAudit:
    """``exported``: the hour's records as the lake holds them; ``loaded``: the record keys of the hour in
    raw.click_events; ``rejected``: its raw.rejected_rows (record keys and failed_expectations)."""
    try:
        formal = validate_hour(exported, bounds, datetime.now(UTC), run_suite)
    except SuiteError as error:
        return RoutingAudit(exported.num_rows, 0, error=str(error))
    want, got = _reasons(formal.rejected), _reasons(rejected)
    keys = list(RECORD_KEY)
    both = loaded.select(keys).join(formal.rejected.select(keys), keys=keys, join_type="inner")
    loaded_but_rejected = sorted(zip(*(both.column(k).to_pylist() for k in keys), strict=True))
    return RoutingAudit(
        exported=exported.num_rows,
        ge_rejected=len(want),
        loaded_but_ge_rejects=[_label(k) for k in loaded_but_rejected],
        rejected_but_ge_passes=[_label(k) for k in sorted(got.keys() - want.keys())],
        other_expectations=[_label(k) for k in sorted(got.keys() & want.keys()) if got[k] != want[k]],
    )
