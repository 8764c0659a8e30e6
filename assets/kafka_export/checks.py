"""Asset checks of raw_click_events: the Great Expectations suite, and rows == Kafka records."""

import logging
from collections import Counter
from datetime import UTC, datetime

import dagster as dg
import pyarrow as pa

from assets.checked_hours import checked_hours
from assets.kafka_export.assets import raw_click_events
from assets.kafka_export.expectations import (
    TimeBounds,
    failing_row_count,
    rejected_rows,
    run_suite,
    suite_specs,
)
from assets.kafka_export.offsets import total_records
from assets.kafka_export.reader import lookup_ranges
from assets.partitions import HOUR
from assets.pools import WAREHOUSE_POOL
from assets.warehouse.tables import CLICK_EVENTS, REJECTED_ROWS
from clickpulse.settings import get_settings
from orchestration.lake import LakeResource
from orchestration.resources import KafkaResource
from orchestration.warehouse import Warehouse

logger = logging.getLogger(__name__)

RAW_CLICK_EVENTS = raw_click_events.key


@dg.asset_check(
    asset=raw_click_events,
    name="great_expectations_suite",
    pool=WAREHOUSE_POOL,
    description=(
        "Great Expectations on the hour's Parquet batch: ids not null, event_type in the contract's set, "
        "button_id well formed and present on clicks, playback_position_s >= 0, event_time within the "
        "allowed lateness (and early allowance) of the hour, event_id unique. Failing rows are written "
        "to raw.rejected_rows with the expectation they failed (replacing that hour's earlier rejects)."
    ),
)
def great_expectations_suite(
    context: dg.AssetCheckExecutionContext, lake: LakeResource, warehouse: Warehouse
) -> dg.AssetCheckResult:
    settings = get_settings()
    hours = checked_hours(context, RAW_CLICK_EVENTS)
    rejected_at = datetime.now(UTC)
    rejected: list[pa.Table] = []
    failed_rows = 0
    validated = 0
    by_expectation: Counter[str] = Counter()
    per_hour: dict[str, dict[str, int]] = {}
    errors: list[str] = []
    for hour in hours:
        rows = lake.read_hour(CLICK_EVENTS, hour)
        validated += rows.num_rows
        label = f"{hour:%Y-%m-%dT%H}"
        if rows.num_rows == 0:
            per_hour[label] = {"rows": 0, "rejected_rows": 0}
            continue
        bounds = TimeBounds(hour, settings.allowed_lateness_minutes, settings.allowed_early_minutes)
        outcomes = run_suite(rows.to_pandas(), suite_specs(bounds))
        hour_failed = failing_row_count(outcomes)
        failed_rows += hour_failed
        per_hour[label] = {"rows": rows.num_rows, "rejected_rows": hour_failed}
        for outcome in outcomes:
            if outcome.failing_rows:
                by_expectation[outcome.spec.name] += len(outcome.failing_rows)
            if outcome.error:
                errors.append(f"{label} {outcome.spec.name}: {outcome.error}")
        rejected.append(rejected_rows(rows, outcomes, rejected_at))
    table = pa.concat_tables(rejected) if rejected else REJECTED_ROWS.arrow_schema.empty_table()
    warehouse.replace_hours(REJECTED_ROWS, hours, table)
    if failed_rows:
        context.log.warning(f"{failed_rows} rows failed the suite: {dict(by_expectation)}")
    return dg.AssetCheckResult(
        passed=failed_rows == 0 and not errors,
        metadata={
            "rows_validated": validated,
            "rejected_rows": failed_rows,
            "failures_by_expectation": dict(by_expectation),
            "per_hour": per_hour,
            "errors": errors,
            "hours": [f"{h:%Y-%m-%dT%H}" for h in hours],
        },
    )


@dg.asset_check(
    asset=raw_click_events,
    name="row_count_matches_kafka",
    pool=WAREHOUSE_POOL,
    description=(
        "For every hour of the run: rows of raw.click_events in that hour == Kafka records between the "
        "offsets offsets_for_times gives for the hour's bounds, looked up again independently of the export."
    ),
)
def row_count_matches_kafka(
    context: dg.AssetCheckExecutionContext, kafka: KafkaResource, warehouse: Warehouse
) -> dg.AssetCheckResult:
    hours = checked_hours(context, RAW_CLICK_EVENTS)
    with kafka.consumer() as consumer:
        expected = {
            hour: total_records(lookup_ranges(consumer, kafka.enriched_topic, hour, hour + HOUR))
            for hour in hours
        }
    actual = warehouse.count_by_hour(CLICK_EVENTS, hours[0], hours[-1] + HOUR)
    per_hour = {
        f"{h:%Y-%m-%dT%H}": {"kafka_records": expected[h], "warehouse_rows": actual.get(h, 0)} for h in hours
    }
    mismatched = {label: counts for label, counts in per_hour.items() if len(set(counts.values())) > 1}
    return dg.AssetCheckResult(
        passed=not mismatched,
        metadata={
            "kafka_records": sum(expected.values()),
            "warehouse_rows": sum(actual.get(h, 0) for h in hours),
            "mismatched_hours": mismatched,
            "per_hour": per_hour,
        },
    )
