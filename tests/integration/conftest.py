"""Fixtures shared by the integration tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from clickpulse.settings import Settings
from streaming.redis_conn import RedisRouter


@pytest.fixture
def private(
    settings: Settings, new_topic: Callable[..., str], unique_name: Callable[[str], str]
) -> Iterator[Settings]:
    """Settings with this test's own topics, Redis key prefix and channel namespace; keys deleted after."""
    prefix = unique_name("t")
    own = settings.model_copy(
        update={
            "topic_raw": new_topic("raw", 3),
            "topic_enriched": new_topic("enriched", 3),
            "topic_dlq": new_topic("dlq", 1),
            "redis_prefix": prefix,
            "live_channel_prefix": prefix,
            "consumer_session_timeout_ms": 6000,
        }
    )
    yield own
    router = RedisRouter.from_settings(own)
    for client in router.clients():
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        for i in range(0, len(keys), 500):
            client.delete(*keys[i : i + 500])
    router.close()
