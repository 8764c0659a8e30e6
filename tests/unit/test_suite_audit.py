"""GE audits the export routing: silent on the Arrow evaluator's routing, loud on a wrong one."""

from __future__ import annotations

from datetime import timedelta

import pyarrow as pa
import pyarrow.compute as pc

from assets.kafka_export.arrow_suite import evaluate_suite
from assets.kafka_export.expectations import (
    UNIQUE_EVENT_ID,
    ExpectationOutcome,
    rejected_rows,
    validate_hour,
)
from assets.kafka_export.suite_audit import audit_hour
from assets.warehouse.tables import RECORD_KEY, without_records
from tests.unit.test_arrow_suite import BOUNDS, CRAFTED, HOUR, crafted_rows

KEYS = list(RECORD_KEY)


def label(row: dict[str, int]) -> str:
    return f"{row['kafka_partition']}:{row['kafka_offset']}"


def test_ge_agrees_with_the_export_routing_and_flags_each_kind_of_wrong_routing() -> None:
    exported = crafted_rows()
    routed = validate_hour(exported, BOUNDS, HOUR + timedelta(hours=2), evaluate_suite).rejected
    loaded = without_records(exported, routed).select(KEYS)
    assert loaded.num_rows + routed.num_rows == exported.num_rows
    assert routed.num_rows == sum(1 for _, names in CRAFTED if names)

    # A wrong routing: the first rejected record loaded instead, a valid record rejected, and the second
    # rejected record blamed on another expectation.
    wrongly_loaded, blamed = routed.slice(0, 1), routed.slice(1, 1)
    valid = loaded.slice(0, 1)
    passing = exported.filter(
        pc.and_(
            pc.equal(exported.column("kafka_partition"), valid.column("kafka_partition")[0]),
            pc.equal(exported.column("kafka_offset"), valid.column("kafka_offset")[0]),
        )
    )
    wrong_rejected = pa.concat_tables(
        [
            routed.slice(2),
            blamed.set_column(
                blamed.schema.get_field_index("failed_expectations"),
                "failed_expectations",
                pa.array(['["expect_column_values_to_be_unique(event_id)"]']),
            ),
            rejected_rows(passing, [ExpectationOutcome(UNIQUE_EVENT_ID, False, (0,))], HOUR),
        ]
    )
    assert wrong_rejected.num_rows == routed.num_rows
    wrong_loaded = pa.concat_tables([without_records(loaded, valid), wrongly_loaded.select(KEYS)])

    right = audit_hour(exported, BOUNDS, loaded, routed)
    wrong = audit_hour(exported, BOUNDS, wrong_loaded, wrong_rejected)

    assert right.disagreements == 0 and right.error is None
    assert right.ge_rejected == routed.num_rows and right.exported == exported.num_rows
    assert wrong.loaded_but_ge_rejects == [label(wrongly_loaded.to_pylist()[0])]
    assert wrong.rejected_but_ge_passes == [label(valid.to_pylist()[0])]
    assert wrong.other_expectations == [label(blamed.to_pylist()[0])]
    assert wrong.disagreements == 3
    assert wrong.to_metadata()["ge_disagreements"] == 3
