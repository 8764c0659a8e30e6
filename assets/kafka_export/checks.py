"""Asset checks of raw_click_events: what the Great Expectations suite rejected, and rows == Kafka records.

The export runs the suite itself (``assets/kafka_export/expectations.py``) and loads only the records
that pass; these checks read the warehouse, so run on their own they report what it holds.
"""

import logging
from collections import Counter

import dagster as dg
import orjson

from assets.checked_hours import checked_hours
from assets.kafka_export.assets import raw_click_events
from assets.kafka_export.offsets import total_records
from assets.kafka_export.reader import lookup_ranges
from assets.partitions import HOUR
from assets.pools import WAREHOUSE_POOL
from assets.warehouse.tables import CLICK_EVENTS, REJECTED_ROWS
from clickpulse.settings import get_settings
from orchestration.resources import KafkaResource
from orchestration.warehouse import Warehouse

logger = logging.getLogger(__name__)

RAW_CLICK_EVENTS = raw_click_events.key


def _share(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


@dg.asset_check(
    asset=raw_click_events,
    name="great_expectations_suite",
    pool=WAREHOUSE_POOL,
    description=(
        "What the export's Great Expectations suite rejected (ids not null, event_type in the contract's "
        "set, button_id well formed and present on clicks, playback_position_s >= 0, event_time within the "
        "allowed lateness and early allowance of the hour, event_id unique): the rejected records are in "
        "raw.rejected_rows with the expectations they failed, not in raw.click_events. Passes with no "
        "rejects; a warning with some; an error when an hour's rejected share exceeds "
        "CLICKPULSE_EXPORT_MAX_REJECTED_SHARE."
    ),
)
def great_expectations_suite(
    context: dg.AssetCheckExecutionContext, warehouse: Warehouse
) -> dg.AssetCheckResult:
    max_share = get_settings().export_max_rejected_share
    hours = checked_hours(context, RAW_CLICK_EVENTS)
    start, end = hours[0], hours[-1] + HOUR
    loaded = warehouse.count_by_hour(CLICK_EVENTS, start, end)
    rejected = warehouse.count_by_hour(REJECTED_ROWS, start, end)
    by_expectation: Counter[str] = Counter()
    failed = warehouse.read_raw(
        REJECTED_ROWS, ["failed_expectations"], REJECTED_ROWS.partition_column or "", start, end
    )
    for names in failed.column("failed_expectations").to_pylist():
        by_expectation.update(orjson.loads(names) if names else ["unknown"])
    per_hour: dict[str, dict[str, float]] = {}
    over: list[str] = []
    for hour in hours:
        label = f"{hour:%Y-%m-%dT%H}"
        kept, dropped = loaded.get(hour, 0), rejected.get(hour, 0)
        share = _share(dropped, kept + dropped)
        per_hour[label] = {
            "records": kept + dropped,
            "rejected_rows": dropped,
            "rejected_share": round(share, 6),
        }
        if share > max_share:
            over.append(label)
    total_rejected = sum(rejected.values())
    validated = total_rejected + sum(loaded.values())
    if total_rejected:
        context.log.warning(
            f"{total_rejected} of {validated} records failed the suite and are in raw.rejected_rows: "
            f"{dict(by_expectation)}" + (f"; over the {max_share:.2%} limit in {over}" if over else "")
        )
    return dg.AssetCheckResult(
        passed=total_rejected == 0,
        severity=dg.AssetCheckSeverity.ERROR if over else dg.AssetCheckSeverity.WARN,
        metadata={
            "rows_validated": validated,
            "rejected_rows": total_rejected,
            "rejected_share": round(_share(total_rejected, validated), 6),
            "max_rejected_share": max_share,
            "hours_over_max_share": over,
            "failures_by_expectation": dict(by_expectation),
            "per_hour": per_hour,
            "hours": [f"{h:%Y-%m-%dT%H}" for h in hours],
        },
    )


@dg.asset_check(
    asset=raw_click_events,
    name="row_count_matches_kafka",
    pool=WAREHOUSE_POOL,
    description=(
        "For every hour of the run: rows of raw.click_events + rows of raw.rejected_rows in that hour == "
        "Kafka records between the offsets offsets_for_times gives for the hour's bounds, looked up again "
        "independently of the export."
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
    loaded = warehouse.count_by_hour(CLICK_EVENTS, hours[0], hours[-1] + HOUR)
    rejected = warehouse.count_by_hour(REJECTED_ROWS, hours[0], hours[-1] + HOUR)
    per_hour = {
        f"{h:%Y-%m-%dT%H}": {
            "kafka_records": expected[h],
            "warehouse_rows": loaded.get(h, 0) + rejected.get(h, 0),
            "loaded_rows": loaded.get(h, 0),
            "rejected_rows": rejected.get(h, 0),
        }
        for h in hours
    }
    mismatched = {
        label: counts
        for label, counts in per_hour.items()
        if counts["kafka_records"] != counts["warehouse_rows"]
    }
    return dg.AssetCheckResult(
        passed=not mismatched,
        metadata={
            "kafka_records": sum(expected.values()),
            "warehouse_rows": sum(c["warehouse_rows"] for c in per_hour.values()),
            "loaded_rows": sum(loaded.get(h, 0) for h in hours),
            "rejected_rows": sum(rejected.get(h, 0) for h in hours),
            "mismatched_hours": mismatched,
            "per_hour": per_hour,
        },
    )
