"""Child process of test_export_crash: run the hourly export of one hour and SIGKILL itself at a stage.

``python -m tests.faults.export_crash ROOT TOPIC PREFIX HOUR STAGE`` with CLICKPULSE_DUCKDB_PATH set to
ROOT's DuckDB file. STAGE is where the process dies, by SIGKILL (no cleanup, no exception handlers):

- ``parquet``: the first batch of rows is in the hour's Parquet file (flushed to disk), more are coming;
- ``published``: the Parquet folder of the hour was swapped in, the warehouse was not touched yet;
- ``warehouse``: inside the warehouse's replace transaction, after the hour's old rows were deleted and
  before the new ones were inserted and committed.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any

import dagster as dg

from assets.kafka_export.parquet_io import HourWriter
from clickpulse.settings import get_settings
from orchestration.warehouse import DuckDBWarehouse
from streaming.redis_roles import Role, settings_as
from tests.integration.batch_support import BatchEnv

STAGES = ("parquet", "published", "warehouse")


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def install(stage: str) -> None:
    if stage == "parquet":
        write = HourWriter.write

        def write_then_die(self: HourWriter, batch: Any) -> None:
            write(self, batch)
            self._flush()  # the rows reach the file, as a long hour's first row group would
            die()

        HourWriter.write = write_then_die  # type: ignore[method-assign]
    elif stage == "published":
        DuckDBWarehouse.replace_export_hour = lambda *_args, **_kwargs: die()  # type: ignore[method-assign,assignment,return-value]
    elif stage == "warehouse":
        # The insert's select list is built after the delete ran in the open transaction.
        DuckDBWarehouse._select_list = staticmethod(lambda _table: die())  # type: ignore[assignment,method-assign]
    else:
        raise SystemExit(f"stage must be one of {STAGES}")


def main(root: str, topic: str, prefix: str, hour: str, stage: str) -> None:
    install(stage)
    env = BatchEnv(settings_as(get_settings(), Role.ADMIN), Path(root), topic, prefix)
    with dg.instance_for_test() as instance:
        env.run("hourly_export", instance, first=hour)


if __name__ == "__main__":
    main(*sys.argv[1:6])
    sys.exit(f"the export finished without dying at {sys.argv[5]}")
