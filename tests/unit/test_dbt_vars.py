"""The dbt vars Dagster passes for a partition window."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml

from assets.dbt_vars import (
    TrendingParams,
    dbt_vars_arg,
    dbt_vars_for_window,
    rebuilt_hours,
    to_dbt_timestamp,
)

DBT_PROJECT_FILE = Path(__file__).resolve().parents[2] / "dbt_project" / "dbt_project.yml"


def test_window_vars_are_naive_utc_iso_strings() -> None:
    start = datetime(2024, 5, 1, 10, tzinfo=UTC)
    dbt_vars = dbt_vars_for_window(start, start + timedelta(hours=1), 60)
    assert dbt_vars == {
        "window_start": "2024-05-01T10:00:00",
        "window_end": "2024-05-01T11:00:00",
        "lateness_minutes": 60,
    }


def test_offsets_are_converted_to_utc_and_naive_input_is_taken_as_utc() -> None:
    cest = timezone(timedelta(hours=2))
    dbt_vars = dbt_vars_for_window(datetime(2024, 5, 1, 12, tzinfo=cest), datetime(2024, 5, 1, 11), 0)
    assert dbt_vars["window_start"] == "2024-05-01T10:00:00"
    assert dbt_vars["window_end"] == "2024-05-01T11:00:00"
    assert to_dbt_timestamp(datetime(2024, 5, 1, 10, 0, 0, 250_000)) == "2024-05-01T10:00:00.250000"


@pytest.mark.parametrize(
    ("start", "end", "lateness"),
    [
        (datetime(2024, 5, 1, 11), datetime(2024, 5, 1, 11), 60),
        (datetime(2024, 5, 1, 12), datetime(2024, 5, 1, 11), 60),
        (datetime(2024, 5, 1, 10), datetime(2024, 5, 1, 11), -1),
    ],
)
def test_rejects_empty_windows_and_negative_lateness(start: datetime, end: datetime, lateness: int) -> None:
    with pytest.raises(ValueError):
        dbt_vars_for_window(start, end, lateness)


def test_trending_and_as_of_are_added_only_when_given() -> None:
    start, end = datetime(2024, 5, 1, 10), datetime(2024, 5, 1, 11)
    assert "as_of" not in dbt_vars_for_window(start, end, 60)
    dbt_vars = dbt_vars_for_window(
        start,
        end,
        60,
        trending=TrendingParams(weight_impression=0.2, half_life_hours=3),
        as_of=datetime(2024, 5, 1, 11, 30, tzinfo=UTC),
    )
    assert dbt_vars["as_of"] == "2024-05-01T11:30:00"
    assert dbt_vars["trending_weight_impression"] == 0.2
    assert dbt_vars["trending_weight_click"] == 1.0
    assert dbt_vars["trending_weight_conversion"] == 5.0
    assert dbt_vars["trending_half_life_hours"] == 3.0


def test_trending_params_default_to_the_shared_definition_and_validate() -> None:
    assert TrendingParams().as_vars() == {
        "trending_weight_impression": 0.1,
        "trending_weight_click": 1.0,
        "trending_weight_conversion": 5.0,
        "trending_half_life_hours": 6.0,
    }
    with pytest.raises(ValueError):
        TrendingParams(half_life_hours=0)
    with pytest.raises(ValueError):
        TrendingParams(weight_click=-1)


def test_every_var_we_send_is_declared_in_dbt_project_with_the_same_defaults() -> None:
    declared = yaml.safe_load(DBT_PROJECT_FILE.read_text())["vars"]
    start, end = datetime(2024, 5, 1, 10), datetime(2024, 5, 1, 11)
    dbt_vars = dbt_vars_for_window(start, end, 60, trending=TrendingParams(), as_of=end)
    assert set(dbt_vars) <= set(declared)
    for name, value in TrendingParams().as_vars().items():
        assert float(declared[name]) == value


@pytest.mark.parametrize(
    ("lateness", "first_hour"),
    [
        (0, datetime(2024, 5, 1, 10)),
        (30, datetime(2024, 5, 1, 9)),
        (60, datetime(2024, 5, 1, 9)),
        (90, datetime(2024, 5, 1, 8)),
    ],
)
def test_rebuilt_hours_reach_back_by_lateness_to_whole_hours(lateness: int, first_hour: datetime) -> None:
    start = datetime(2024, 5, 1, 10, tzinfo=UTC)
    end = start + timedelta(hours=1)
    assert rebuilt_hours(start, end, lateness) == (first_hour, datetime(2024, 5, 1, 11))


def test_vars_arg_is_json_dbt_can_read() -> None:
    dbt_vars = dbt_vars_for_window(datetime(2024, 5, 1, 10), datetime(2024, 5, 1, 11), 45)
    arg = dbt_vars_arg(dbt_vars)
    assert json.loads(arg) == dbt_vars
    assert yaml.safe_load(arg) == dbt_vars
