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

import orjson
from fastapi import APIRouter, FastAPI, HTTPException, Request, Response, status
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field, TypeAdapter, ValidationError
from starlette.concurrency import run_in_threadpool

from clickpulse.settings import Settings
from serving.routes import JSON
from serving.user_ids import UserIdMapper
from streaming.contract import MAX_ID_LENGTH
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


# The parameters are checked here rather than declared in the signature: FastAPI's per-parameter
# validation cost this route ~15 us of its ~330 us (README "API throughput and latency work"). The plain
# case is parsed by hand; anything else goes through pydantic with the same constraints, so a 422 carries
# FastAPI's usual ``detail`` (type, loc, msg, input). The OpenAPI schema is built from the same adapters.
DEFAULT_K = 10
_USER_ID: TypeAdapter[str] = TypeAdapter(Annotated[str, Field(min_length=1, max_length=MAX_ID_LENGTH)])
_K: TypeAdapter[int] = TypeAdapter(Annotated[int, Field(ge=1, le=MAX_K)])
PARAMETERS: list[dict[str, Any]] = [
    {
        "name": "user_id",
        "in": "path",
        "required": True,
        "description": "user_id as in events (as sent by the player, also with pseudonymisation on)",
        "schema": {**_USER_ID.json_schema(), "title": "User Id"},
    },
    {
        "name": "k",
        "in": "query",
        "required": False,
        "description": "How many items.",
        "schema": {**_K.json_schema(), "default": DEFAULT_K, "title": "K"},
    },
]

# As FastAPI documents a route whose parameters it validates (the schema is among the API's components:
# other routes declare parameters).
VALIDATION_ERROR: dict[str, Any] = {
    "description": "Validation Error",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/HTTPValidationError"}}},
}


def _checked(adapter: TypeAdapter[Any], value: str, where: str, name: str) -> Any:
    try:
        return adapter.validate_python(value)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**error, "loc": (where, name, *error["loc"])} for error in exc.errors(include_url=False)]
        ) from None


def _params(request: Request) -> tuple[str, int]:
    """(user_id, k) from the path and the query string, or 422."""
    user_id: str = request.path_params["user_id"]
    if len(user_id) > MAX_ID_LENGTH:
        _checked(_USER_ID, user_id, "path", "user_id")
    raw = request.query_params.get("k")
    if raw is None:
        return user_id, DEFAULT_K
    if raw.isascii() and raw.isdigit() and 1 <= (k := int(raw)) <= MAX_K:
        return user_id, k
    return user_id, _checked(_K, raw, "query", "k")


@router.get(
    "/v1/recommendations/{user_id}",
    response_model=RecommendationsResponse,
    summary="Personalised recommendations for one user",
    openapi_extra={"parameters": PARAMETERS},
    responses={422: VALIDATION_ERROR},
)
async def get_recommendations(request: Request) -> Response:
    """The served model version's precomputed list, blended with neighbours of the user's recent clicks,
    watched videos removed; users without history get what is trending now. Each item has a reason.
    ``user_id`` is the id as in events; with pseudonymisation on, the list is read under its pseudonym and
    the answer shows the id as sent."""
    user_id, k = _params(request)
    reader, user_ids = _reader(request), _user_ids(request)
    stored = user_ids.stored(user_id)
    clients = getattr(request.app.state, "recommendation_clients", None)
    if clients is not None:
        result = await reader.recommend_async(stored, k, clients)
    else:
        result = await run_in_threadpool(reader.recommend, stored, k)
    # Serialised straight from the reader's plain values (str, float, None) in the shape of
    # ``RecommendationsResponse`` (the tests validate responses against it; ``response_model`` above
    # documents it in the OpenAPI schema); FastAPI passes a Response through without re-validating it.
    return Response(orjson.dumps(user_ids.shown(result.as_dict(), user_id)), media_type=JSON)
