"""The expectation suite for one exported hour (one definition), and the rejected rows it produces.

``suite_specs`` declares the suite as ``ExpectationSpec``s. Two evaluators run it with the same
semantics: ``arrow_suite.evaluate_suite`` (pyarrow.compute, the export's hot path) and ``run_suite``
(Great Expectations on a pandas frame: the formal suite, run by the ``great_expectations_suite`` asset
check on every exported hour to confirm the export's routing). ``validate_hour`` runs either on the
hour's rows (as the export wrote them to the lake) and returns one rejected row per record that failed
at least one expectation, with every expectation it failed. The export loads the other records into
raw.click_events and these into raw.rejected_rows.

A duplicated event_id fails the uniqueness expectation on every copy; the earliest copy (by Kafka
timestamp, partition, offset: the record dbt staging keeps) is not rejected for it, only the later
copies are, so an event delivered twice is loaded once rather than not at all.

Great Expectations takes seconds to import, so nothing here imports it at module level: ``run_suite``
loads it when first called, and the export never calls it. ``rejected_rows`` and
``keep_earliest_copies`` are plain Arrow, so the mapping from failures to the rejected-rows table is
tested without it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import orjson
import pyarrow as pa

from assets.warehouse.tables import RECORD_KEY, REJECTED_ROWS
from streaming.contract import EVENT_TYPES

logger = logging.getLogger(__name__)

REQUIRED_COLUMNS: Final = ("event_id", "event_type", "event_time", "user_id", "session_id", "video_id")
BUTTON_PATTERN: Final = r"^[a-z0-9_]{1,64}$"
SUITE_NAME: Final = "raw_click_events"
_JSON_OPTIONS: Final = orjson.OPT_NAIVE_UTC | orjson.OPT_UTC_Z | orjson.OPT_SORT_KEYS


@dataclass(frozen=True, slots=True)
class TimeBounds:
    """Accepted event_time for the hour [hour, hour+1): ``allowed_lateness`` before it (late events)
    to ``allowed_early`` after it (client clocks running ahead of the server)."""

    hour: datetime
    lateness_minutes: int
    early_minutes: int

    @property
    def earliest(self) -> datetime:
        return self.hour.astimezone(UTC) - timedelta(minutes=self.lateness_minutes)

    @property
    def latest(self) -> datetime:
        return self.hour.astimezone(UTC) + timedelta(hours=1, minutes=self.early_minutes)


@dataclass(frozen=True, slots=True)
class ExpectationSpec:
    """One expectation, named the way rejected rows and check metadata name it."""

    kind: str
    column: str
    kwargs: tuple[tuple[str, Any], ...] = ()
    when_equals: tuple[str, str] | None = None  # only rows where this column has this value

    @property
    def name(self) -> str:
        suffix = f' where {self.when_equals[0]}=="{self.when_equals[1]}"' if self.when_equals else ""
        return f"{self.kind}({self.column}){suffix}"


UNIQUE_EVENT_ID: Final = ExpectationSpec("expect_column_values_to_be_unique", "event_id")
EVENT_TIME_BOUNDS: Final = "expect_column_values_to_be_between(event_time)"


def suite_specs(bounds: TimeBounds) -> list[ExpectationSpec]:
    """What a valid hour of raw.click_events looks like."""
    specs = [ExpectationSpec("expect_column_values_to_not_be_null", c) for c in REQUIRED_COLUMNS]
    specs += [
        ExpectationSpec(
            "expect_column_values_to_be_in_set", "event_type", (("value_set", list(EVENT_TYPES)),)
        ),
        ExpectationSpec("expect_column_values_to_match_regex", "button_id", (("regex", BUTTON_PATTERN),)),
        ExpectationSpec(
            "expect_column_values_to_not_be_null", "button_id", when_equals=("event_type", "click")
        ),
        ExpectationSpec(
            "expect_column_values_to_not_be_null", "playback_position_s", when_equals=("event_type", "click")
        ),
        ExpectationSpec("expect_column_values_to_be_between", "playback_position_s", (("min_value", 0),)),
        ExpectationSpec(
            "expect_column_values_to_be_between",
            "event_time",
            (("min_value", bounds.earliest), ("max_value", bounds.latest), ("strict_max", True)),
        ),
        UNIQUE_EVENT_ID,
    ]
    return specs


@dataclass(frozen=True, slots=True)
class ExpectationOutcome:
    spec: ExpectationSpec
    success: bool
    failing_rows: tuple[int, ...]  # positions in the validated frame
    error: str | None = None


def _class_name(kind: str) -> str:
    return "".join(part.capitalize() for part in kind.split("_"))


# rows and the specs -> one outcome per spec, failing rows as positions in rows
Evaluator = Callable[[pa.Table, Sequence[ExpectationSpec]], list[ExpectationOutcome]]


def run_suite(rows: pa.Table, specs: Sequence[ExpectationSpec]) -> list[ExpectationOutcome]:
    """Validate ``rows`` with Great Expectations (pandas engine); one outcome per spec."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig
    from great_expectations.expectations.row_conditions import Column

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    source = context.data_sources.add_pandas("clickpulse")
    batch = (
        source.add_dataframe_asset(SUITE_NAME)
        .add_batch_definition_whole_dataframe("hour")
        .get_batch(batch_parameters={"dataframe": rows.to_pandas()})  # a RangeIndex: positions
    )
    suite = gx.ExpectationSuite(name=SUITE_NAME)
    for position, spec in enumerate(specs):
        expectation_class = getattr(gx.expectations, _class_name(spec.kind))
        kwargs: dict[str, Any] = dict(spec.kwargs)
        if spec.when_equals is not None:
            kwargs["row_condition"] = Column(name=spec.when_equals[0]) == spec.when_equals[1]
        meta = {"clickpulse_spec": position}  # GE groups results by column; this maps them back
        suite.add_expectation(expectation_class(column=spec.column, meta=meta, **kwargs))
    result = batch.validate(suite, result_format={"result_format": "COMPLETE"})
    by_position: dict[int, ExpectationOutcome] = {}
    for item in result.results:
        config = item.expectation_config
        position = int(((config.meta if config is not None else None) or {})["clickpulse_spec"])
        exception = item.exception_info or {}
        raised = bool(exception.get("raised_exception")) if isinstance(exception, dict) else False
        error = str(exception.get("exception_message")) if raised else None
        indexes = tuple(int(i) for i in (item.result or {}).get("unexpected_index_list") or ())
        by_position[position] = ExpectationOutcome(
            specs[position], bool(item.success) and not raised, indexes, error
        )
    missing = [specs[i].name for i in range(len(specs)) if i not in by_position]
    if missing:
        raise RuntimeError(f"Great Expectations returned no result for {missing}")
    return [by_position[i] for i in range(len(specs))]


def keep_earliest_copies(rows: pa.Table, outcome: ExpectationOutcome) -> ExpectationOutcome:
    """The uniqueness outcome without the earliest copy of each duplicated event_id (by Kafka timestamp,
    partition, offset: the record dbt staging keeps), so only the later copies fail it."""
    if not outcome.failing_rows:
        return outcome
    positions = list(outcome.failing_rows)
    picked = (
        rows.take(pa.array(positions, pa.int64()))
        .select(["event_id", "kafka_timestamp", *RECORD_KEY])
        .to_pylist()
    )
    earliest: dict[Any, tuple[float, int, int, int]] = {}
    for position, row in zip(positions, picked, strict=True):
        stamp = row["kafka_timestamp"]
        order = (
            stamp.timestamp() if stamp is not None else float("inf"),
            row["kafka_partition"] if row["kafka_partition"] is not None else 2**31,
            row["kafka_offset"] if row["kafka_offset"] is not None else 2**63,
            position,
        )
        current = earliest.get(row["event_id"])
        if current is None or order < current:
            earliest[row["event_id"]] = order
    kept = {order[-1] for order in earliest.values()}
    failing = tuple(p for p in positions if p not in kept)
    return replace(outcome, failing_rows=failing, success=not failing and outcome.error is None)


def _detail(spec: ExpectationSpec, value: Any) -> str:
    shown = value.isoformat() if hasattr(value, "isoformat") else value
    return f"{spec.column}={shown!r}"


def rejected_rows(rows: pa.Table, outcomes: Sequence[ExpectationOutcome], rejected_at: datetime) -> pa.Table:
    """One rejected row per record that failed an expectation, in the raw.rejected_rows contract:
    ``failed_expectations`` lists every expectation it failed (suite order), ``detail`` the values."""
    failed: dict[int, list[ExpectationSpec]] = {}
    for outcome in outcomes:
        for position in outcome.failing_rows:
            failed.setdefault(position, []).append(outcome.spec)
    positions = sorted(failed)
    records: dict[str, list[Any]] = {name: [] for name in REJECTED_ROWS.columns}
    for position, row in zip(positions, rows.take(pa.array(positions, pa.int64())).to_pylist(), strict=True):
        specs = failed[position]
        for name in ("partition_hour", "event_id", "event_time", *RECORD_KEY):
            records[name].append(row.get(name))
        records["failed_expectations"].append(orjson.dumps([spec.name for spec in specs]).decode())
        records["detail"].append("; ".join(_detail(spec, row.get(spec.column)) for spec in specs))
        records["raw_json"].append(orjson.dumps(row, option=_JSON_OPTIONS).decode())
        records["rejected_at"].append(rejected_at)
    return pa.table(records, schema=REJECTED_ROWS.arrow_schema)


def failing_row_count(outcomes: Sequence[ExpectationOutcome]) -> int:
    """Distinct rows that failed at least one expectation."""
    return len({i for o in outcomes for i in o.failing_rows})


class SuiteError(RuntimeError):
    """The evaluator could not evaluate an expectation: the hour is not loaded."""


@dataclass(frozen=True, slots=True)
class HourValidation:
    """The suite's verdict on one hour: its rejected rows and how many records failed each expectation."""

    rejected: pa.Table
    by_expectation: dict[str, int]

    @property
    def rejected_count(self) -> int:
        return self.rejected.num_rows


def validate_hour(
    rows: pa.Table, bounds: TimeBounds, rejected_at: datetime, evaluate: Evaluator
) -> HourValidation:
    """Run the suite on the hour's rows with ``evaluate``: ``arrow_suite.evaluate_suite`` or ``run_suite``."""
    if rows.num_rows == 0:
        return HourValidation(REJECTED_ROWS.arrow_schema.empty_table(), {})
    outcomes = evaluate(rows, suite_specs(bounds))
    errors = [f"{o.spec.name}: {o.error}" for o in outcomes if o.error]
    if errors:
        raise SuiteError(f"{bounds.hour:%Y-%m-%dT%H}: the suite could not run {errors}")
    outcomes = [keep_earliest_copies(rows, o) if o.spec == UNIQUE_EVENT_ID else o for o in outcomes]
    by_expectation = {o.spec.name: len(o.failing_rows) for o in outcomes if o.failing_rows}
    return HourValidation(rejected_rows(rows, outcomes, rejected_at), by_expectation)
