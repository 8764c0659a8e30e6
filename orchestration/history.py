"""Materialize a stretch of history in process: dimensions, the hourly exports, then the marts.

``clickpulse demo`` (and anyone without a running ``dagster dev``) calls ``materialize_history`` after
the simulator's backfill; the runs are recorded in the instance of ``DAGSTER_HOME``, so the UI shows
them afterwards.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

import dagster as dg

from assets.partitions import HOUR, partition_key
from clickpulse.settings import Settings
from orchestration.definitions import build_defs
from orchestration.sensors import RANGE_END_TAG, RANGE_START_TAG

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class HistoryRuns:
    dimensions: dg.ExecuteInProcessResult
    export: dg.ExecuteInProcessResult
    marts: dg.ExecuteInProcessResult

    @property
    def success(self) -> bool:
        return self.dimensions.success and self.export.success and self.marts.success


def materialize_history(
    start: datetime,
    end: datetime,
    *,
    settings: Settings | None = None,
    instance: dg.DagsterInstance | None = None,
) -> HistoryRuns:
    """Run refresh_dimensions, then hourly_export and marts over the hours [start, end) as one run each."""
    if end <= start:
        raise ValueError("empty window")
    defs = build_defs(settings)
    tags = {RANGE_START_TAG: partition_key(start), RANGE_END_TAG: partition_key(end - HOUR)}
    owned = instance is None
    instance = instance or dg.DagsterInstance.get()
    try:
        logger.info("materializing dimensions, exports and marts for %s", tags)
        dimensions = defs.resolve_job_def("refresh_dimensions").execute_in_process(instance=instance)
        export = defs.resolve_job_def("hourly_export").execute_in_process(instance=instance, tags=tags)
        marts = defs.resolve_job_def("marts").execute_in_process(instance=instance, tags=tags)
    finally:
        if owned:
            instance.dispose()
    return HistoryRuns(dimensions, export, marts)
