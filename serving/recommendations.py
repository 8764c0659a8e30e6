"""``GET /v1/recommendations/{user_id}?k=N``: the precomputed list blended with the user's recent clicks.

The API app includes ``router`` and calls ``install`` once at start-up with its Redis router (one pool
per process). Read keys: ``Authorization: Bearer <key>`` from ``CLICKPULSE_READ_KEYS``; the API may
replace ``require_read_key`` with its own dependency through ``app.dependency_overrides``.
"""

from __future__ import annotations

import hmac
import logging
from typing import Annotated

import redis
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Path, Query, Request, status
from pydantic import BaseModel, Field

from clickpulse.settings import Settings
from streaming.recommendations.reader import RecommendationReader
from streaming.redis_conn import RedisRouter

logger = logging.getLogger(__name__)

MAX_K = 100

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
        description="The published model version the list comes from; null before the first publish."
    )
    items: list[RecommendedItem]


def install(app: FastAPI, redis_router: RedisRouter, settings: Settings) -> RecommendationReader:
    """Attach the reader (built on the app's Redis router) and the read keys to ``app.state``."""
    reader = RecommendationReader.from_settings(redis_router, settings)
    app.state.recommendation_reader = reader
    app.state.recommendation_read_keys = settings.read_key_set
    return reader


def get_reader(request: Request) -> RecommendationReader:
    reader = getattr(request.app.state, "recommendation_reader", None)
    if reader is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "recommendations are not configured")
    return reader


def require_read_key(request: Request) -> None:
    """401 unless the request carries one of the read keys as a bearer token (constant-time compare)."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    keys: frozenset[str] = getattr(request.app.state, "recommendation_read_keys", frozenset())
    presented = token.strip().encode()
    if scheme.lower() == "bearer" and presented:
        matched = False
        for key in keys:
            matched |= hmac.compare_digest(presented, key.encode())
        if matched:
            return
    raise HTTPException(
        status.HTTP_401_UNAUTHORIZED,
        "missing or unknown read key",
        headers={"WWW-Authenticate": "Bearer"},
    )


@router.get(
    "/v1/recommendations/{user_id}",
    response_model=RecommendationsResponse,
    dependencies=[Depends(require_read_key)],
    summary="Personalised recommendations for one user",
)
def get_recommendations(
    user_id: Annotated[str, Path(min_length=1, max_length=256)],
    reader: Annotated[RecommendationReader, Depends(get_reader)],
    k: Annotated[int, Query(ge=1, le=MAX_K, description="How many items.")] = 10,
) -> RecommendationsResponse:
    """The published list of the served model version, blended with neighbours of the user's recent
    clicks, watched videos removed; users without history get what is trending."""
    try:
        result = reader.recommend(user_id, k)
    except redis.RedisError as exc:
        logger.warning("recommendations for %s failed: %s", user_id, exc)
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "recommendation store unavailable") from exc
    return RecommendationsResponse.model_validate(result.as_dict())
