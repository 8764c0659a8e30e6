"""``raw_click_events``: the hourly export, thin glue around ``export.export_hour``."""

import logging
import time

import dagster as dg

from assets.kafka_export.export import export_hour, summary_metadata
from assets.partitions import HOURLY_PARTITIONS, hours_in_window
from assets.pools import WAREHOUSE_POOL
from clickpulse.settings import get_settings
from orchestration.lake import LakeResource
from orchestration.resources import KafkaResource
from orchestration.warehouse import Warehouse

logger = logging.getLogger(__name__)

EXPORT_GROUP = "kafka_export"


@dg.asset(
    name="raw_click_events",
    group_name=EXPORT_GROUP,
    partitions_def=HOURLY_PARTITIONS,
    backfill_policy=dg.BackfillPolicy.single_run(),
    pool=WAREHOUSE_POOL,
    kinds={"kafka", "parquet", "sql"},
    description=(
        "clicks.enriched for the hour of Kafka timestamps [h, h+1): the offsets between "
        "offsets_for_times(h) and offsets_for_times(h+1) on every partition, as Parquet in the lake "
        "(click_events/partition_hour=YYYY-MM-DDTHH, every record), validated by the Great Expectations "
        "suite: the records that pass become that hour of raw.click_events, the others that hour of "
        "raw.rejected_rows with the expectations they failed. Reruns and backfills replace the hour."
    ),
)
def raw_click_events(
    context: dg.AssetExecutionContext, kafka: KafkaResource, lake: LakeResource, warehouse: Warehouse
) -> dg.MaterializeResult:
    window = context.partition_time_window
    settings = get_settings()
    started = time.perf_counter()
    exports = []
    with kafka.consumer() as consumer:
        for hour in hours_in_window(window.start, window.end):
            exports.append(
                export_hour(
                    consumer,
                    kafka.enriched_topic,
                    hour,
                    lake,
                    warehouse,
                    batch_size=kafka.batch_size,
                    stall_timeout_s=kafka.stall_timeout_s,
                    log_every=settings.export_log_every,
                    lateness_minutes=settings.allowed_lateness_minutes,
                    early_minutes=settings.allowed_early_minutes,
                    log=context.log.info,
                )
            )
    metadata = summary_metadata(exports, time.perf_counter() - started)
    if len(exports) == 1:
        metadata["dagster/row_count"] = metadata["rows"]
    return dg.MaterializeResult(metadata=metadata)
