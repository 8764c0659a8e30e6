"""The expectation suite evaluated with pyarrow.compute: the export's fast path.

``evaluate_suite`` takes the same ``ExpectationSpec`` list Great Expectations runs (``run_suite``) and
returns the same outcomes, with the semantics of GE's pandas engine: every expectation but not-null
ignores null values (NaN counts as null, as in pandas), ``when_equals`` restricts an expectation to the
rows where that column equals the value, uniqueness fails every copy of a duplicated non-null value.
A regex is a search (``str.contains``) with Python's ``$``, which also matches before a final newline;
RE2 (Arrow's engine) has no such ``$``, so a final ``$`` is rewritten as ``\\n?$`` and a pattern with any
other ``$`` is refused rather than evaluated differently. tests/unit/test_arrow_suite.py compares it
with GE position by position.

An expectation this module cannot evaluate gives an outcome with ``error`` set, as GE does when an
expectation raises, so the hour is not loaded.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, Final

import pyarrow as pa
import pyarrow.compute as pc

from assets.kafka_export.expectations import ExpectationOutcome, ExpectationSpec

logger = logging.getLogger(__name__)

# (column, its non-null mask, the spec's kwargs) -> mask of the non-null values that meet the expectation
Condition = Callable[[pa.ChunkedArray, pa.ChunkedArray, dict[str, Any]], pa.ChunkedArray]


class UnsupportedExpectationError(ValueError):
    """The spec uses something the Arrow evaluator does not implement exactly like GE."""


def _present(column: pa.ChunkedArray) -> pa.ChunkedArray:
    return pc.invert(pc.is_null(column, nan_is_null=True))


def _in_set(column: pa.ChunkedArray, present: pa.ChunkedArray, kwargs: dict[str, Any]) -> pa.ChunkedArray:
    values = kwargs.get("value_set")
    if values is None:  # GE: vacuously true
        return present
    return pc.is_in(column, value_set=pa.array(list(values), column.type))


def re2_pattern(pattern: str) -> str:
    """``pattern`` (Python ``re``, searched) for RE2 with the same matches: a final ``$`` also matches
    before a final newline in Python, only at the very end in RE2."""
    anchors, escaped = [], False
    for position, char in enumerate(pattern):
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "$":
            anchors.append(position)
    if not anchors:
        return pattern
    if anchors != [len(pattern) - 1]:
        raise UnsupportedExpectationError(f"only a final $ is supported in a regex, got {pattern!r}")
    return pattern[:-1] + "\\n?$"


def _match_regex(
    column: pa.ChunkedArray, present: pa.ChunkedArray, kwargs: dict[str, Any]
) -> pa.ChunkedArray:
    return pc.match_substring_regex(column, re2_pattern(str(kwargs["regex"])))


def _bound(value: Any, column: pa.ChunkedArray) -> pa.Scalar:
    return pa.scalar(value).cast(column.type)


def _between(column: pa.ChunkedArray, present: pa.ChunkedArray, kwargs: dict[str, Any]) -> pa.ChunkedArray:
    low, high = kwargs.get("min_value"), kwargs.get("max_value")
    if low is None and high is None:
        raise UnsupportedExpectationError("min_value and max_value cannot both be None")
    if low is not None and high is not None and low > high:
        raise UnsupportedExpectationError("min_value cannot be greater than max_value")
    ok = present
    if low is not None:
        above = pc.greater if kwargs.get("strict_min") else pc.greater_equal
        ok = pc.and_(ok, above(column, _bound(low, column)))
    if high is not None:
        below = pc.less if kwargs.get("strict_max") else pc.less_equal
        ok = pc.and_(ok, below(column, _bound(high, column)))
    return ok


def _unique(column: pa.ChunkedArray, present: pa.ChunkedArray, kwargs: dict[str, Any]) -> pa.ChunkedArray:
    counts = pc.value_counts(column.drop_null())
    repeated = pc.filter(counts.field("values"), pc.greater(counts.field("counts"), 1))
    return pc.invert(pc.is_in(column, value_set=repeated))


def _not_null(column: pa.ChunkedArray, present: pa.ChunkedArray, kwargs: dict[str, Any]) -> pa.ChunkedArray:
    return present


CONDITIONS: Final[dict[str, Condition]] = {
    "expect_column_values_to_not_be_null": _not_null,
    "expect_column_values_to_be_in_set": _in_set,
    "expect_column_values_to_match_regex": _match_regex,
    "expect_column_values_to_be_between": _between,
    "expect_column_values_to_be_unique": _unique,
}
# the only expectation that looks at null values instead of skipping them
_COUNTS_NULLS: Final = "expect_column_values_to_not_be_null"


def failing_mask(rows: pa.Table, spec: ExpectationSpec) -> pa.ChunkedArray:
    """True on the rows that fail ``spec`` (never null)."""
    condition = CONDITIONS.get(spec.kind)
    if condition is None:
        raise UnsupportedExpectationError(f"{spec.kind} is not implemented by the Arrow evaluator")
    column = rows.column(spec.column)
    present = _present(column)
    ok = pc.fill_null(condition(column, present, dict(spec.kwargs)), False)
    failing = pc.invert(ok) if spec.kind == _COUNTS_NULLS else pc.and_(present, pc.invert(ok))
    if spec.when_equals is not None:
        name, value = spec.when_equals
        failing = pc.and_(failing, pc.fill_null(pc.equal(rows.column(name), value), False))
    return failing


def evaluate_suite(rows: pa.Table, specs: Sequence[ExpectationSpec]) -> list[ExpectationOutcome]:
    """One outcome per spec, its failing rows as positions in ``rows``."""
    outcomes = []
    for spec in specs:
        try:
            mask = failing_mask(rows, spec)
        except (UnsupportedExpectationError, KeyError, pa.ArrowException) as error:
            outcomes.append(ExpectationOutcome(spec, False, (), f"{type(error).__name__}: {error}"))
            continue
        positions = tuple(pc.indices_nonzero(mask).to_pylist()) if pc.any(mask).as_py() else ()
        outcomes.append(ExpectationOutcome(spec, not positions, positions))
    return outcomes
