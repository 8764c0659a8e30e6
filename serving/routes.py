"""The ``/v1`` read endpoints. Every one needs a read key (see ``serving.auth``).

Handlers call the keyspace readers (``streaming.keyspace``), which are synchronous, in the thread pool,
then validate the result into the response model and serialise it once with pydantic-core.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Final

import orjson
from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response, status
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from serving import models
from serving.engagement import Window, read_engagement
from serving.live import sse_event, sse_frame
from serving.state import ApiState, blocking, get_state
from serving.user_ids import UserIdMapper
from streaming.contract import EVENT_TYPES, MAX_ID_LENGTH
from streaming.keyspace import (
    read_global,
    read_trending,
    read_user_profile,
    read_video_metadata,
)

JSON: Final = "application/json"
NOT_FOUND: Final[dict[int | str, dict[str, Any]]] = {404: {"model": models.ErrorDetail}}
VideoId = Annotated[str, Path(min_length=1, max_length=MAX_ID_LENGTH, description="video_id as in events")]
UserId = Annotated[
    str,
    Path(
        min_length=1,
        max_length=MAX_ID_LENGTH,
        description="user_id as in events (as sent by the player, also with pseudonymisation on)",
    ),
]


def model_response(model: BaseModel) -> Response:
    return Response(model.__pydantic_serializer__.to_json(model), media_type=JSON)


def _int(value: str | None) -> int | None:
    if not value:
        return None
    try:
        return int(float(value))
    except ValueError:
        return None


def _stats_body(read_at_s: float, data: dict[str, Any]) -> bytes:
    """The serialised ``VideoStats`` of one read: depends only on the read time and the numbers."""
    read_at = ApiState.as_datetime(read_at_s)
    minute = read_at.replace(second=0, microsecond=0)
    hour = minute.replace(minute=0)
    body = {
        **data,
        "window_start": None,
        "window_end": read_at,
        "last_hour": {
            **data["last_hour"],
            "window_start": minute - timedelta(minutes=59),
            "window_end": read_at,
        },
        "last_24h": {**data["last_24h"], "window_start": hour - timedelta(hours=23), "window_end": read_at},
    }
    model = models.VideoStats.model_validate(body)
    return model.__pydantic_serializer__.to_json(model)


def build_router() -> APIRouter:
    router = APIRouter(prefix="/v1")

    @router.get(
        "/videos/{video_id}/stats",
        response_model=models.VideoStats,
        responses=NOT_FOUND,
        summary="Clicks, impressions, conversions, CTR, conversion rate, unique users of a video",
    )
    async def video_stats(video_id: VideoId, state: ApiState = Depends(get_state)) -> Response:
        """All time at the top level, plus ``last_hour`` and ``last_24h`` by event_time.

        404 when the video has no counters and no catalog entry. A process may reuse an answer for
        ``CLICKPULSE_API_STATS_CACHE_MS`` (1 s); ``window_end`` is the time the numbers were read.
        """
        entry = await state.stats().read(video_id, state.now())
        if entry.body is None:
            data = entry.data
            if data["clicks"] == 0 and data["impressions"] == 0 and data["conversions"] == 0:
                metadata = await blocking(
                    read_video_metadata, state.redis(), video_id, keyspace=state.keyspace
                )
                if not metadata:
                    raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown video {video_id!r}")
            entry.body = _stats_body(entry.read_at, data)
        return Response(entry.body, media_type=JSON)

    @router.get("/trending", response_model=models.Trending, summary="Videos by decayed engagement score")
    async def trending(
        limit: Annotated[int, Query(ge=1, le=100, description="how many videos (1..100)")] = 10,
        state: ApiState = Depends(get_state),
    ) -> Response:
        now = state.now()
        items = await blocking(read_trending, state.redis(), limit, now, keyspace=state.keyspace)
        titles = await state.titles_for([item["video_id"] for item in items])
        body = {
            "as_of": state.as_datetime(now),
            "half_life_s": state.settings.trending_half_life_hours * 3600,
            "items": [{**item, "title": titles.get(item["video_id"])} for item in items],
        }
        return model_response(models.Trending.model_validate(body))

    @router.get(
        "/engagement",
        response_model=models.Engagement,
        summary="CTR and conversion rate by surface and button",
    )
    async def engagement(
        window: Annotated[
            Window,
            Query(description="1h: current and previous hour buckets; 24h: the last 24; all: all time"),
        ] = "24h",
        state: ApiState = Depends(get_state),
    ) -> Response:
        body = await blocking(read_engagement, state.redis(), window, state.now(), keyspace=state.keyspace)
        return model_response(models.Engagement.model_validate(body))

    @router.get(
        "/videos/{video_id}",
        response_model=models.VideoMetadata,
        responses=NOT_FOUND,
        summary="Catalog metadata of a video",
    )
    async def video_metadata(video_id: VideoId, state: ApiState = Depends(get_state)) -> Response:
        data = await blocking(read_video_metadata, state.redis(), video_id, keyspace=state.keyspace)
        if not data:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no catalog entry for video {video_id!r}")
        body = {
            "video_id": video_id,
            "title": data.get("title"),
            "series": data.get("series"),
            "genre": data.get("genre"),
            "duration_s": _int(data.get("duration_s")),
            "release_date": data.get("release_date"),
        }
        return model_response(models.VideoMetadata.model_validate(body))

    @router.get(
        "/users/{user_id}/profile",
        response_model=models.UserProfile,
        responses=NOT_FOUND,
        summary="Real-time profile of a user",
    )
    async def user_profile(user_id: UserId, state: ApiState = Depends(get_state)) -> Response:
        """Looked up by the stored id (the pseudonym of ``user_id`` when the API has the key); the answer
        shows ``user_id`` as sent."""
        stored = state.user_ids.stored(user_id)
        found = await blocking(read_user_profile, state.redis(), stored, keyspace=state.keyspace)
        data = state.user_ids.shown(found, user_id)
        known = (
            data["events"]
            or data["recent_videos"]
            or data["last_seen"]
            or any(v is not None for v in data["attributes"].values())
        )
        if not known:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown user {user_id!r}")
        return model_response(models.UserProfile.model_validate(data))

    @router.get(
        "/live",
        response_class=StreamingResponse,
        summary="Server-Sent Events: global snapshots, or one user's channel with ?user_id=",
        responses={
            200: {
                "content": {"text/event-stream": {"schema": {"type": "string"}}},
                "description": (
                    "Unnamed SSE events whose JSON `type` says what they are. Without user_id: "
                    "`snapshot` (live:global; the first one is read at once) and `events` tickers "
                    "(live:events:*). With user_id: `hello`, then every message of live:user:{id} as "
                    "published (`clicks` from the consumer, next-up suggestions from the recommendations "
                    "service). Comment lines every 15 s keep the stream open."
                ),
            }
        },
    )
    async def live(
        request: Request,
        user_id: Annotated[
            str | None,
            Query(min_length=1, max_length=MAX_ID_LENGTH, description="one user's channel (id as in events)"),
        ] = None,
        state: ApiState = Depends(get_state),
    ) -> StreamingResponse:
        ks = state.keyspace
        if user_id is not None:
            channels = [ks.channel_user(state.user_ids.stored(user_id))]
        else:
            channels = [ks.channel_global(), *(ks.channel_events(kind) for kind in EVENT_TYPES)]
        return StreamingResponse(
            _live_stream(state, channels, user_id),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    return router


async def current_snapshot(state: ApiState) -> dict[str, Any]:
    """What a ``live:global`` snapshot carries, read now (the first event of a global stream)."""
    now = state.now()
    snapshot = await blocking(read_global, state.redis(), now, keyspace=state.keyspace)
    at = datetime.fromtimestamp(now, UTC).isoformat().replace("+00:00", "Z")
    return await enrich_snapshot(state, {"type": "snapshot", "at": at, **snapshot})


async def enrich_snapshot(state: ApiState, payload: dict[str, Any]) -> dict[str, Any]:
    """Add catalog titles to a snapshot's trending list (the dashboard's top videos)."""
    items = payload.get("trending")
    if isinstance(items, list) and items:
        ids = [str(item.get("video_id")) for item in items if isinstance(item, dict)]
        titles = await state.titles_for(ids)
        payload["trending"] = [
            {**item, "title": titles.get(str(item.get("video_id")))} if isinstance(item, dict) else item
            for item in items
        ]
    return payload


async def _live_stream(state: ApiState, channels: list[str], user_id: str | None) -> AsyncIterator[bytes]:
    heartbeat = state.settings.api_sse_heartbeat_s
    async with state.live().subscribe(channels) as queue:
        yield b"retry: 3000\n\n"
        if user_id is None:
            yield sse_event(await current_snapshot(state))
        else:
            yield sse_event({"type": "hello", "user_id": user_id})
        while True:
            try:
                message = await asyncio.wait_for(queue.get(), heartbeat)
            except TimeoutError:
                yield b": ping\n\n"
                continue
            if user_id is None or not state.user_ids.hides:
                yield message.encode()
            else:
                yield _as_sent(message.data, user_id)


def _as_sent(data: bytes, user_id: str) -> bytes:
    """A user channel's message with the caller's id in place of the stored one (``serving.user_ids``)."""
    try:
        payload = orjson.loads(data)
    except orjson.JSONDecodeError:
        return sse_frame(data)
    return sse_event(UserIdMapper.shown(payload, user_id) if isinstance(payload, dict) else payload)
