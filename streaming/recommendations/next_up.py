"""Real-time next-up: after a user's click, refreshed suggestions on ``live:user:<id>``.

``NextUpPublisher`` is a consumer ``UserClickHook``: the realtime consumer calls it once per batch with
the users who clicked (after the batch reached Redis, so the profile already lists the click). It
blends for all of them with the API's code in two read round trips and publishes one message per user
in one pipeline, so a click shows up as new suggestions well within a second (one consumer batch
timeout plus a few milliseconds). The player page subscribes through ``GET /v1/live?user_id=...``.

Message (JSON): ``{"type": "next_up", "user_id", "model_version", "after": <clicked video_id>,
"at": <RFC 3339>, "items": [{"video_id", "score", "reason"}]}``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime

import orjson
import redis

from streaming.consumer.live import BulkPublisher, UserClicks, publishing_client
from streaming.event import utc_text
from streaming.recommendations.reader import RecommendationReader
from streaming.redis_conn import Family

logger = logging.getLogger(__name__)

MESSAGE_TYPE = "next_up"


class NextUpPublisher:
    """A ``UserClickHook``: one ``next_up`` message per clicking user and batch. Never raises."""

    def __init__(self, reader: RecommendationReader, k: int = 10) -> None:
        self.reader = reader
        self.k = k
        self.pub = publishing_client(reader.router.client(Family.LIVE))
        self.publish = BulkPublisher(self.pub)
        self.published = 0

    def __call__(self, batch: Sequence[UserClicks]) -> None:
        clicked: dict[str, list[str]] = {}
        for item in batch:
            videos = [str(c["video_id"]) for c in item.clicks if c.get("video_id")]
            # newest first, each video once
            clicked[item.user_id] = list(dict.fromkeys([*reversed(videos), *clicked.get(item.user_id, [])]))
        if not clicked:
            return
        try:
            results = self.reader.recommend_many(list(clicked), self.k, just_clicked=clicked)
            at = utc_text(datetime.now(UTC))
            messages = []
            for result in results:
                latest = clicked[result.user_id]
                message = {
                    "type": MESSAGE_TYPE,
                    **result.as_dict(),
                    "after": latest[0] if latest else None,
                    "at": at,
                }
                messages.append((self.reader.keyspace.channel_user(result.user_id), orjson.dumps(message)))
            self.publish(messages)
            self.published += len(results)
        except redis.RedisError as exc:  # a push is best effort: counting must go on
            logger.warning("next-up push for %d users failed: %s", len(clicked), exc)
