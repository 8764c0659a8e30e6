"""``GET /v1/recommendations/{user_id}?k=N``: the precomputed list blended with the user's recent clicks.

The API includes ``router`` with its read-key dependency, like its other routes::

    app.include_router(recommendations.router, dependencies=protected)

The reader is built on first use from the API's state (its ``RedisRouter``, settings and keyspace), so it
shares the process's Redis pools, and runs on the API's asyncio clients on the event loop
(``RecommendationReader.recommend_async``); ``install`` sets one explicitly (tools, other apps), run in
the thread pool on its sync clients. Redis errors propagate to the API's handler (503 with
``Retry-After``).
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, HTTPException, Path, Query, Request, Response, status
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from clickpulse.settings import Settings
from serving.routes import model_response
from serving.user_ids import UserIdMapper
from streaming.recommendations.reader import RecommendationReader
from streaming.redis_conn import Family, RedisRouter

logger = logging.getLogger(__name__)

MAX_K = 100
ASYNC_FAMILIES = frozenset({Family.RECS, Family.PROFILES, Family.LIVE})  # what the reader reads

router = APIRouter(tags=["recommendations"])


class RecommendedItem(BaseModel):
    video_id: str
    score: float = Field(description="Blend score: higher is better; comparable within one response.")
    reason: str = Field(
        description='"because you watched <video_id>", "recommended for you" or "popular now".'
    )


class RecommendationsResponse(BaseModel):
    user_id: str
    model_version: str | None = Field(
        description="The published model version the list comes from (the user's A/B arm); null before the "
        "first publish."
    )
    items: list[RecommendedItem]


def install(app: FastAPI, redis_router: RedisRouter, settings: Settings) -> RecommendationReader:
    """Attach a reader built on ``redis_router`` (the process's pools), and the settings' user id
    mapping (``serving.user_ids``), to ``app.state``; requests run the reader in the thread pool (its sync
    clients)."""
    reader = RecommendationReader.from_settings(redis_router, settings)
    app.state.recommendation_reader = reader
    app.state.recommendation_clients = None
    app.state.user_ids = UserIdMapper.from_settings(settings)
    return reader


def _from_api_state(api: Any) -> RecommendationReader:
    reader = RecommendationReader.from_settings(api.redis(), api.settings)
    if reader.keyspace != api.keyspace:
        reader.keyspace = api.keyspace
    return reader


def _reader(request: Request) -> RecommendationReader:
    """The process's reader: installed, or built once from the API's state (``serving.state.ApiState``),
    in which case the API's asyncio clients serve it too. A plain call, not a FastAPI dependency: the
    route is the API's hottest, and solving a dependency costs more than this look-up."""
    reader: RecommendationReader | None = getattr(request.app.state, "recommendation_reader", None)
    if reader is None:
        api = getattr(request.app.state, "api", None)
        if api is None:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "recommendations are not configured")
        reader = _from_api_state(api)  # holds no connections of its own: a second one would be harmless
        clients = api.async_clients
        request.app.state.recommendation_clients = clients if clients.keys() >= ASYNC_FAMILIES else None
        request.app.state.recommendation_reader = reader
    return reader


def _user_ids(request: Request) -> UserIdMapper:
    """How a caller's id maps to the stored one: set by the API's ``create_app`` or by ``install``."""
    mapper: UserIdMapper | None = getattr(request.app.state, "user_ids", None)
    if mapper is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "recommendations are not configured")
    return mapper


@router.get(
    "/v1/recommendations/{user_id}",
    response_model=RecommendationsResponse,
    summary="Personalised recommendations for one user",
)
async def get_recommendations(
    request: Request,
    user_id: Annotated[str, Path(min_length=1, max_length=256)],
    k: Annotated[int, Query(ge=1, le=MAX_K, description="How many items.")] = 10,
) -> Response:
    """The served model version's precomputed list, blended with neighbours of the user's recent clicks,
    watched videos removed; users without history get what is trending now. Each item has a reason.
    ``user_id`` is the id as in events; with pseudonymisation on, the list is read under its pseudonym and
    the answer shows the id as sent."""
    reader, user_ids = _reader(request), _user_ids(request)
    stored = user_ids.stored(user_id)
    clients = getattr(request.app.state, "recommendation_clients", None)
    if clients is not None:
        result = await reader.recommend_async(stored, k, clients)
    else:
        result = await run_in_threadpool(reader.recommend, stored, k)
    # Validated and serialised once here; FastAPI passes a Response through without re-validating it
    # (``response_model`` above still documents it in the OpenAPI schema).
    body = RecommendationsResponse.model_validate(user_ids.shown(result.as_dict(), user_id))
    return model_response(body)
