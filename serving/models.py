"""Response models of the read API: the field names here are the stable, documented contract.

The handlers build these from the keyspace readers' dictionaries, so ``/docs`` (OpenAPI) describes
exactly what goes on the wire. Ratios follow the marts: ``ctr = clicks / impressions`` and
``conversion_rate = conversions / clicks``, ``null`` when the denominator is 0.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

CTR_DOC = "clicks / impressions; null when there were no impressions"
CONVERSION_DOC = "conversions / clicks; null when there were no clicks"
UNIQUES_DOC = "distinct users with any event on the video (HyperLogLog estimate, ~0.81% standard error)"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Counts(_Model):
    """Impressions, clicks, conversions and the two ratios for one group of events."""

    impressions: int = Field(ge=0)
    clicks: int = Field(ge=0)
    conversions: int = Field(ge=0)
    ctr: float | None = Field(description=CTR_DOC)
    conversion_rate: float | None = Field(description=CONVERSION_DOC)


class StatsWindow(_Model):
    """One video's numbers over one window (event_time, UTC)."""

    clicks: int = Field(ge=0)
    clicks_by_button: dict[str, int] = Field(description="button_id -> clicks")
    impressions: int = Field(ge=0)
    conversions: int = Field(ge=0)
    ctr: float | None = Field(description=CTR_DOC)
    conversion_rate: float | None = Field(description=CONVERSION_DOC)
    unique_users: int = Field(ge=0, description=UNIQUES_DOC)
    unique_users_approximate: Literal[True] = Field(
        True, description="always true: unique_users is an estimate, not an exact count"
    )
    window_start: datetime | None = Field(
        description="first event_time counted (inclusive); null for all time"
    )
    window_end: datetime = Field(description="end of the window (exclusive): the time of the read")


class VideoStats(StatsWindow):
    """``GET /v1/videos/{video_id}/stats``: all time at the top level, windows under last_hour/last_24h."""

    video_id: str
    late_events: int = Field(
        ge=0, description="events counted all time that arrived after the allowed lateness"
    )
    last_hour: StatsWindow = Field(
        description=(
            "the 60 minute buckets ending with the current minute; unique_users covers the hour "
            "buckets those minutes overlap (current and previous hour)"
        )
    )
    last_24h: StatsWindow = Field(description="the current hour bucket and the 23 before it")


class TrendingItem(_Model):
    video_id: str
    score: float = Field(
        description="exponentially decayed engagement (impression 0.1, click 1, conversion 5 by default) "
        "as of the response's as_of"
    )
    title: str | None = Field(None, description="catalog title, null when the catalog has none")


class Trending(_Model):
    """``GET /v1/trending``: videos by decayed score, highest first."""

    as_of: datetime
    half_life_s: float = Field(description="the score halves every half_life_s seconds without events")
    items: list[TrendingItem]


class ButtonEngagement(Counts):
    click_share: float | None = Field(
        description="this button's share of all clicks in the window; null when there were none"
    )


class Engagement(_Model):
    """``GET /v1/engagement``: CTR and conversion rate overall, by surface and by button."""

    window: Literal["1h", "24h", "all"]
    window_start: datetime | None = Field(description="start of the first hour bucket; null for all")
    window_end: datetime = Field(description="end of the last hour bucket (or the time of the read)")
    hours: list[str] = Field(description="event_time hour buckets (YYYYMMDDHH, UTC) summed; empty for all")
    overall: Counts
    by_surface: dict[str, Counts] = Field(description="surface -> counts (events that carry a surface)")
    by_button: dict[str, ButtonEngagement] = Field(
        description="button_id -> counts; impressions and conversions carry no button_id, so their "
        "ctr is null unless the sender set button_id on impressions"
    )


class VideoMetadata(_Model):
    """``GET /v1/videos/{video_id}``: catalog metadata (written to Redis by the video_catalog asset)."""

    video_id: str
    title: str | None = None
    series: str | None = None
    genre: str | None = None
    duration_s: int | None = Field(None, ge=0)
    release_date: str | None = Field(None, description="ISO date as the catalog has it")


class UserAttributes(_Model):
    country: str | None = None
    subscription_tier: str | None = None
    language: str | None = None


class UserProfile(_Model):
    """``GET /v1/users/{user_id}/profile``: the real-time profile kept by the consumer."""

    user_id: str
    events: int = Field(ge=0)
    clicks: int = Field(ge=0)
    impressions: int = Field(ge=0)
    conversions: int = Field(ge=0)
    last_seen: datetime | None = Field(description="time of the user's latest event, UTC")
    last_video: str | None
    button_affinities: dict[str, int] = Field(description="button_id -> clicks, most used first")
    recent_videos: list[str] = Field(description="distinct videos clicked or converted, newest first")
    attributes: UserAttributes


class Health(_Model):
    status: Literal["ok", "unavailable"]
    redis: Literal["up", "down"]
    error: str | None = None


class PageConfig(_Model):
    """``GET /v1/pages/config``: what the dashboard and the demo player need to run."""

    api_base: str = Field(description="base URL of this API as the browser reached it ('' = same origin)")
    collector_url: str = Field(description="collector base URL the player's JS SDK posts to")
    write_key: str = Field(description="write key for the player (write keys are public in browsers)")
    live_path: str = "/v1/live"
    sdk_path: str = "/sdk/clickpulse.js"


class ErrorDetail(_Model):
    detail: str
