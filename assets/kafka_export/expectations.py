"""The Great Expectations suite for one exported hour, and the rejected rows it produces.

Great Expectations takes seconds to import, so nothing here imports it at module level: the check
calls ``run_suite`` and only then is it loaded. ``rejected_rows`` is plain Arrow, so the mapping from
failures to the rejected-rows table is tested without it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

import orjson
import pyarrow as pa

from assets.warehouse.tables import REJECTED_ROWS
from streaming.contract import EVENT_TYPES

if TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger(__name__)

REQUIRED_COLUMNS: Final = ("event_id", "event_type", "event_time", "user_id", "session_id", "video_id")
BUTTON_PATTERN: Final = r"^[a-z0-9_]{1,64}$"
SUITE_NAME: Final = "raw_click_events"


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
        ExpectationSpec("expect_column_values_to_be_unique", "event_id"),
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


def run_suite(frame: pd.DataFrame, specs: Sequence[ExpectationSpec]) -> list[ExpectationOutcome]:
    """Validate ``frame`` (a RangeIndex) with Great Expectations; one outcome per spec."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig
    from great_expectations.expectations.row_conditions import Column

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    source = context.data_sources.add_pandas("clickpulse")
    batch = (
        source.add_dataframe_asset(SUITE_NAME)
        .add_batch_definition_whole_dataframe("hour")
        .get_batch(batch_parameters={"dataframe": frame})
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


def _detail(spec: ExpectationSpec, value: Any) -> str:
    shown = value.isoformat() if hasattr(value, "isoformat") else value
    return f"{spec.column}={shown!r}"


def rejected_rows(rows: pa.Table, outcomes: Sequence[ExpectationOutcome], rejected_at: datetime) -> pa.Table:
    """One rejected row per (row, failed expectation) in the raw.rejected_rows contract."""
    records: dict[str, list[Any]] = {name: [] for name in REJECTED_ROWS.columns}
    cache: dict[int, dict[str, Any]] = {}
    for outcome in outcomes:
        for index in outcome.failing_rows:
            row = cache.get(index)
            if row is None:
                row = cache[index] = rows.slice(index, 1).to_pylist()[0]
            records["partition_hour"].append(row.get("partition_hour"))
            records["event_id"].append(row.get("event_id"))
            records["kafka_partition"].append(row.get("kafka_partition"))
            records["kafka_offset"].append(row.get("kafka_offset"))
            records["failed_expectation"].append(outcome.spec.name)
            records["detail"].append(_detail(outcome.spec, row.get(outcome.spec.column)))
            records["raw_json"].append(
                orjson.dumps(
                    row, option=orjson.OPT_NAIVE_UTC | orjson.OPT_UTC_Z | orjson.OPT_SORT_KEYS
                ).decode()
            )
            records["rejected_at"].append(rejected_at)
    return pa.table(records, schema=REJECTED_ROWS.arrow_schema)


def failing_row_count(outcomes: Sequence[ExpectationOutcome]) -> int:
    """Distinct rows that failed at least one expectation."""
    return len({i for o in outcomes for i in o.failing_rows})
