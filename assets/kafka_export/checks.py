"""Asset checks of raw_click_events: what the expectation suite rejected, and rows == Kafka records.

The export evaluates the suite itself (``assets/kafka_export/arrow_suite.py``) and loads only the records
that pass. ``great_expectations_suite`` reruns the suite with Great Expectations on every checked hour's
exported records (the lake) and fails when GE disagrees with the warehouse's routing
(``suite_audit.py``). These checks read the lake and the warehouse, so run on their own they report
what those hold.
"""

import logging
from collections import Counter

import dagster as dg
import orjson

from assets.checked_hours import checked_hours
from assets.kafka_export.assets import raw_click_events
from assets.kafka_export.expectations import TimeBounds
from assets.kafka_export.offsets import total_records
from assets.kafka_export.reader import lookup_ranges
from assets.kafka_export.suite_audit import audit_hour
from assets.partitions import HOUR
from assets.pools import WAREHOUSE_POOL
from assets.warehouse.tables import CLICK_EVENTS, RECORD_KEY, REJECTED_ROWS
from clickpulse.settings import get_settings
from orchestration.lake import LakeResource
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
        "What the export's expectation suite rejected (ids not null, event_type in the contract's set, "
        "button_id well formed and present on clicks, playback_position_s >= 0, event_time within the "
        "allowed lateness and early allowance of the hour, event_id unique): the rejected records are in "
        "raw.rejected_rows with the expectations they failed, not in raw.click_events. The export "
        "evaluates the suite with pyarrow.compute; this check reruns it with Great Expectations on each "
        "hour's exported records (the lake) and fails with an error when GE disagrees with that routing "
        "(a loaded record GE rejects, a rejected one it passes, other expectations failed). Otherwise it "
        "passes with no rejects; a warning with some; an error when an hour's rejected share exceeds "
        "CLICKPULSE_EXPORT_MAX_REJECTED_SHARE."
    ),
)
def great_expectations_suite(
    context: dg.AssetCheckExecutionContext, lake: LakeResource, warehouse: Warehouse
) -> dg.AssetCheckResult:
    settings = get_settings()
    max_share = settings.export_max_rejected_share
    hours = checked_hours(context, RAW_CLICK_EVENTS)
    by_expectation: Counter[str] = Counter()
    per_hour: dict[str, dict[str, object]] = {}
    over: list[str] = []
    disagreeing: list[str] = []
    total_loaded = total_rejected = 0
    partition_column = CLICK_EVENTS.partition_column or ""
    for hour in hours:
        label = f"{hour:%Y-%m-%dT%H}"
        loaded = warehouse.read_raw(CLICK_EVENTS, list(RECORD_KEY), partition_column, hour, hour + HOUR)
        rejected = warehouse.read_raw(
            REJECTED_ROWS, [*RECORD_KEY, "failed_expectations"], partition_column, hour, hour + HOUR
        )
        for names in rejected.column("failed_expectations").to_pylist():
            by_expectation.update(orjson.loads(names) if names else ["unknown"])
        audit = audit_hour(
            lake.read_hour(CLICK_EVENTS, hour),
            TimeBounds(hour, settings.allowed_lateness_minutes, settings.allowed_early_minutes),
            loaded,
            rejected,
        )
        kept, dropped = loaded.num_rows, rejected.num_rows
        total_loaded, total_rejected = total_loaded + kept, total_rejected + dropped
        share = _share(dropped, kept + dropped)
        per_hour[label] = {
            "records": kept + dropped,
            "rejected_rows": dropped,
            "rejected_share": round(share, 6),
            **audit.to_metadata(),
        }
        if share > max_share:
            over.append(label)
        if audit.disagreements:
            disagreeing.append(label)
            context.log.error(
                f"{label}: Great Expectations disagrees with the export's routing: {audit.to_metadata()}"
            )
    validated = total_rejected + total_loaded
    if total_rejected:
        context.log.warning(
            f"{total_rejected} of {validated} records failed the suite and are in raw.rejected_rows: "
            f"{dict(by_expectation)}" + (f"; over the {max_share:.2%} limit in {over}" if over else "")
        )
    return dg.AssetCheckResult(
        passed=total_rejected == 0 and not disagreeing,
        severity=dg.AssetCheckSeverity.ERROR if over or disagreeing else dg.AssetCheckSeverity.WARN,
        metadata={
            "rows_validated": validated,
            "rejected_rows": total_rejected,
            "rejected_share": round(_share(total_rejected, validated), 6),
            "max_rejected_share": max_share,
            "hours_over_max_share": over,
            "failures_by_expectation": dict(by_expectation),
            "great_expectations_agrees": not disagreeing,
            "hours_ge_disagrees": disagreeing,
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
