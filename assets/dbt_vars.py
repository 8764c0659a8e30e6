"""The dbt ``--vars`` that scope a run to one Dagster partition window.

The dbt asset stays thin: it calls :func:`dbt_vars_for_window` with the partition's time window and the
lateness setting, and passes :func:`dbt_vars_arg` of the result as ``--vars``. The SQL half of this
contract is ``dbt_project/macros/incremental/incremental_hours_filter.sql``: an incremental run with
these vars rebuilds the event hours ``[floor_hour(window_start - lateness_minutes), window_end)``,
which :func:`rebuilt_hours` computes in Python for logs and asset metadata.

Timestamps go to dbt as ISO 8601 in UTC without an offset (``2024-05-01T10:00:00``); the macros
validate and re-print them, so no text from here reaches SQL verbatim.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

__all__ = [
    "TrendingParams",
    "dbt_vars_arg",
    "dbt_vars_for_window",
    "rebuilt_hours",
    "to_dbt_timestamp",
]


@dataclass(frozen=True)
class TrendingParams:
    """Trending score parameters, shared with the real-time API so both rank videos alike."""

    weight_impression: float = 0.1
    weight_click: float = 1.0
    weight_conversion: float = 5.0
    half_life_hours: float = 6.0

    def __post_init__(self) -> None:
        if self.half_life_hours <= 0:
            raise ValueError(f"half_life_hours must be > 0, got {self.half_life_hours}")
        weights = (self.weight_impression, self.weight_click, self.weight_conversion)
        if min(weights) < 0:
            raise ValueError(f"trending weights must be >= 0, got {weights}")

    def as_vars(self) -> dict[str, float]:
        """The dbt vars of these parameters (names as in ``dbt_project.yml``)."""
        return {
            "trending_weight_impression": float(self.weight_impression),
            "trending_weight_click": float(self.weight_click),
            "trending_weight_conversion": float(self.weight_conversion),
            "trending_half_life_hours": float(self.half_life_hours),
        }


def _utc_naive(value: datetime) -> datetime:
    """UTC wall time without tzinfo, like the warehouse's timestamps; naive input is taken as UTC."""
    if value.tzinfo is None:
        return value
    return value.astimezone(UTC).replace(tzinfo=None)


def to_dbt_timestamp(value: datetime) -> str:
    """ISO 8601 in UTC without an offset, the form the dbt timestamp vars take."""
    return _utc_naive(value).isoformat()


def dbt_vars_for_window(
    start: datetime,
    end: datetime,
    lateness_minutes: int,
    *,
    trending: TrendingParams | None = None,
    as_of: datetime | None = None,
) -> dict[str, Any]:
    """dbt vars for a run over the partition window ``[start, end)`` (Kafka-timestamp hours).

    ``lateness_minutes`` is the allowed lateness (``CLICKPULSE_ALLOWED_LATENESS_MINUTES``), so the run
    also rebuilds the event hours late events of this window can land in. ``trending`` sets the
    trending score parameters, ``as_of`` the trending reference time (default in dbt: the latest
    event_time in the warehouse); both are left to dbt's defaults when None.
    """
    window_start, window_end = _utc_naive(start), _utc_naive(end)
    if window_end <= window_start:
        raise ValueError(f"empty partition window: start {start.isoformat()} >= end {end.isoformat()}")
    if lateness_minutes < 0:
        raise ValueError(f"lateness_minutes must be >= 0, got {lateness_minutes}")
    dbt_vars: dict[str, Any] = {
        "window_start": window_start.isoformat(),
        "window_end": window_end.isoformat(),
        "lateness_minutes": int(lateness_minutes),
    }
    if trending is not None:
        dbt_vars.update(trending.as_vars())
    if as_of is not None:
        dbt_vars["as_of"] = to_dbt_timestamp(as_of)
    return dbt_vars


def rebuilt_hours(start: datetime, end: datetime, lateness_minutes: int) -> tuple[datetime, datetime]:
    """The event hours ``[first, end)`` an incremental run with the window's vars rebuilds (UTC, naive)."""
    first = _utc_naive(start) - timedelta(minutes=lateness_minutes)
    return first.replace(minute=0, second=0, microsecond=0), _utc_naive(end)


def dbt_vars_arg(dbt_vars: Mapping[str, Any]) -> str:
    """The value for ``dbt ... --vars``: JSON (a subset of the YAML dbt parses), keys sorted."""
    return json.dumps(dict(dbt_vars), sort_keys=True)
