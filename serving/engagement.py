"""``GET /v1/engagement``: funnel and ratios over a window, overall, by surface and by button.

The consumer keeps these counters per event_time hour (``Keyspace.global_hour`` and
``Keyspace.ctr_hour``), so windows are made of whole hour buckets, chosen by the keyspace's own
``window_buckets``: ``1h`` = the hour buckets the last 60 minutes overlap (current and previous hour),
``24h`` = the current hour and the 23 before it; ``all`` = the all-time counters.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal

from streaming.keyspace import (
    HOUR_FORMAT,
    METRICS,
    Keyspace,
    read_ctr,
    read_global,
    window_buckets,
)
from streaming.redis_conn import Family, RedisRouter

Window = Literal["1h", "24h", "all"]
WINDOW_BUCKETS: Final[dict[str, str]] = {"1h": "last_hour_uniques", "24h": "last_24h"}


def ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def counts(values: Mapping[str, Any]) -> dict[str, Any]:
    impressions = int(values.get("impressions") or 0)
    clicks = int(values.get("clicks") or 0)
    conversions = int(values.get("conversions") or 0)
    return {
        "impressions": impressions,
        "clicks": clicks,
        "conversions": conversions,
        "ctr": ratio(clicks, impressions),
        "conversion_rate": ratio(conversions, clicks),
    }


def _merge(parts: Iterable[Mapping[str, Mapping[str, Any]]]) -> dict[str, dict[str, int]]:
    total: dict[str, dict[str, int]] = {}
    for part in parts:
        for name, values in part.items():
            into = total.setdefault(name, dict.fromkeys(METRICS, 0))
            for metric in METRICS:
                into[metric] += int(values.get(metric) or 0)
    return total


def _by_button(merged: Mapping[str, Mapping[str, int]], total_clicks: int) -> dict[str, dict[str, Any]]:
    return {
        name: {**counts(values), "click_share": ratio(int(values["clicks"]), total_clicks)}
        for name, values in sorted(merged.items())
    }


def read_engagement(router: RedisRouter, window: Window, now: float, *, keyspace: Keyspace) -> dict[str, Any]:
    """The ``Engagement`` response body for ``window`` as of ``now`` (epoch seconds)."""
    read_at = datetime.fromtimestamp(now, UTC)
    if window == "all":
        snapshot = read_global(router, now, keyspace=keyspace, trending_limit=1)
        overall = counts(snapshot["funnel"])
        buttons = snapshot["ctr"]["button"]
        surfaces = snapshot["ctr"]["surface"]
        return {
            "window": window,
            "window_start": None,
            "window_end": read_at,
            "hours": [],
            "overall": overall,
            "by_surface": {name: counts(v) for name, v in sorted(surfaces.items())},
            "by_button": _by_button(buttons, overall["clicks"]),
        }

    hours = sorted(window_buckets(now)[WINDOW_BUCKETS[window]])
    pipe = router.client(Family.WINDOWS).pipeline(transaction=False)
    for hour in hours:
        pipe.hgetall(keyspace.global_hour(hour))
    funnel = _merge({"all": reply or {}} for reply in pipe.execute())
    overall = counts(funnel.get("all", {}))
    surfaces = _merge(read_ctr(router, "surface", hour, keyspace=keyspace) for hour in hours)
    buttons = _merge(read_ctr(router, "button", hour, keyspace=keyspace) for hour in hours)
    first = datetime.strptime(hours[0], HOUR_FORMAT).replace(tzinfo=UTC)
    last = datetime.strptime(hours[-1], HOUR_FORMAT).replace(tzinfo=UTC)
    return {
        "window": window,
        "window_start": first,
        "window_end": last + timedelta(hours=1),
        "hours": hours,
        "overall": overall,
        "by_surface": {name: counts(v) for name, v in sorted(surfaces.items())},
        "by_button": _by_button(buttons, overall["clicks"]),
    }
