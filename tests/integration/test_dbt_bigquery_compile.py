"""Every model compiles for BigQuery offline, and sqlglot reads the result as BigQuery SQL.

No Google project, credentials or network: the test makes a throwaway service-account key (an RSA key
nobody knows, so Google would refuse it) and runs

    dbt compile --target bigquery --no-introspect --no-populate-cache

`--no-populate-cache` skips listing the datasets; `--no-introspect` makes the project's
is_incremental() answer from var('compile_incremental_branch') instead of asking BigQuery whether
the table exists (macros/incremental/is_incremental.sql). Sockets are blocked while dbt runs, so
nothing can reach Google; a change that makes compiling need the network fails here (Google's
client retries for minutes, hence this module's timeout) instead of passing on a networked laptop.
"""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlglot
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from dbt.cli.main import dbtRunner
from dbt.contracts.results import RunExecutionResult

from assets.dbt_vars import dbt_vars_arg, dbt_vars_for_window

pytestmark = pytest.mark.timeout(180)

DBT_PROJECT_DIR = Path(__file__).resolve().parents[2] / "dbt_project"
MODEL_NAMES = sorted(p.stem for p in (DBT_PROJECT_DIR / "models").rglob("*.sql"))
INCREMENTAL_MODELS = ["fct_button_clicks_hourly", "fct_video_engagement_hourly"]
PROJECT = "clickpulse-offline"
# DuckDB spellings that must not survive into BigQuery SQL.
DUCKDB_ONLY = re.compile(r"\bdate_trunc\(|\bdate_diff\(|\bdouble\b|\binterval '|\bpower\(", re.IGNORECASE)


@pytest.fixture(scope="module")
def bigquery_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Environment of the bigquery target with a freshly generated (useless) service-account key."""
    work_dir = tmp_path_factory.mktemp("dbt_bigquery")
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    key_file = work_dir / "service-account.json"
    key_file.write_text(
        json.dumps(
            {
                "type": "service_account",
                "project_id": PROJECT,
                "private_key_id": "0" * 40,
                "private_key": pem,
                "client_email": f"dbt-compile@{PROJECT}.iam.gserviceaccount.com",
                "client_id": "1",
                "token_uri": "https://oauth2.googleapis.com/token",
            }
        )
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key_file))
        patch.setenv("CLICKPULSE_BQ_PROJECT", PROJECT)
        patch.setenv("CLICKPULSE_BQ_DATASET", "clickpulse")
        patch.setenv("CLICKPULSE_BQ_RAW_DATASET", "clickpulse_raw")
        yield work_dir


def _no_network(*args: Any, **kwargs: Any) -> Any:
    raise OSError("network access while compiling for BigQuery")


def compile_bigquery(work_dir: Path, *args: str) -> dict[str, str]:
    """Compiled SQL of the selected models (and their data tests) by node name, with sockets blocked."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket, "getaddrinfo", _no_network)
        patch.setattr(socket, "create_connection", _no_network)
        result = dbtRunner().invoke(
            [
                "compile",
                "--target", "bigquery",
                "--no-introspect",
                "--no-populate-cache",
                "--project-dir", str(DBT_PROJECT_DIR),
                "--profiles-dir", str(DBT_PROJECT_DIR),
                "--target-path", str(work_dir / "target"),
                "--log-path", str(work_dir / "logs"),
                *args,
            ]
        )  # fmt: skip
    assert result.success, f"dbt compile failed: {result.exception}"
    assert isinstance(result.result, RunExecutionResult)
    compiled = {r.node.name: getattr(r.node, "compiled_code", None) for r in result.result.results}
    return {name: sql for name, sql in compiled.items() if isinstance(sql, str)}


def assert_bigquery_sql(name: str, sql: str) -> None:
    sqlglot.parse_one(sql, read="bigquery")  # raises ParseError with the position on failure
    leftover = DUCKDB_ONLY.search(sql)
    assert leftover is None, f"{name}: DuckDB SQL {leftover.group(0)!r} in BigQuery output"


def test_every_model_and_data_test_compiles_to_bigquery_sql(bigquery_env: Path) -> None:
    compiled = compile_bigquery(bigquery_env, "--select", "resource_type:model", "resource_type:test")
    assert sorted(name for name in compiled if name in MODEL_NAMES) == MODEL_NAMES
    assert len(compiled) > len(MODEL_NAMES)  # the data tests came along
    for name, sql in compiled.items():
        assert_bigquery_sql(name, sql)

    staging = compiled["stg_kafka__click_events"]
    assert f"`{PROJECT}`.`clickpulse_raw`.`click_events`" in staging
    assert "timestamp_trunc(" in staging
    assert "safe_divide(clicks, impressions)" in compiled["fct_video_engagement_hourly"]
    assert "where event_hour >=" not in compiled["fct_video_engagement_hourly"]  # full build branch
    popularity = compiled["fct_video_popularity"]
    assert "timestamp_diff(" in popularity
    assert "pow(0.5" in popularity
    assert "float64" in popularity
    assert f"`{PROJECT}`.`clickpulse`.`dim_videos`" in popularity


def test_incremental_lookback_branch_compiles_to_bigquery_sql(bigquery_env: Path) -> None:
    compiled = compile_bigquery(
        bigquery_env,
        "--select", *INCREMENTAL_MODELS,
        "--vars", dbt_vars_arg({"compile_incremental_branch": True, "lateness_minutes": 90}),
    )  # fmt: skip
    assert sorted(name for name in compiled if name in MODEL_NAMES) == INCREMENTAL_MODELS
    for name, sql in compiled.items():
        assert_bigquery_sql(name, sql)
    for name in INCREMENTAL_MODELS:
        assert (
            "where event_hour >= coalesce((select timestamp_trunc(timestamp_add(max(event_hour), "
            f"interval -90 minute), hour) from `{PROJECT}`.`clickpulse`.`{name}`)"
        ) in compiled[name]


def test_incremental_window_branch_compiles_to_bigquery_sql(bigquery_env: Path) -> None:
    window = dbt_vars_for_window(
        datetime(2024, 5, 1, 10, tzinfo=UTC), datetime(2024, 5, 1, 11, tzinfo=UTC), 60
    )
    compiled = compile_bigquery(
        bigquery_env,
        "--select", *INCREMENTAL_MODELS,
        "--vars", dbt_vars_arg({**window, "compile_incremental_branch": True}),
    )  # fmt: skip
    assert sorted(name for name in compiled if name in MODEL_NAMES) == INCREMENTAL_MODELS
    for name, sql in compiled.items():
        assert_bigquery_sql(name, sql)
    window_start = "cast('2024-05-01 10:00:00.000000' as timestamp)"
    window_end = "cast('2024-05-01 11:00:00.000000' as timestamp)"
    for name in INCREMENTAL_MODELS:
        assert (
            f"where event_hour >= timestamp_trunc(timestamp_add({window_start}, interval -60 minute), hour)"
            f" and event_hour < {window_end}"
        ) in compiled[name]
