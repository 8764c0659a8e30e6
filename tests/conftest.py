"""Shared fixtures: the real local stack (started by `make test`) and per-test names that never collide."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest

from clickpulse.settings import Settings, get_settings


@pytest.fixture(scope="session")
def settings() -> Settings:
    return get_settings()


@pytest.fixture(scope="session")
def kafka_bootstrap(settings: Settings) -> str:
    from clickpulse.stack import kafka

    if not kafka.answers(settings.kafka_bootstrap_servers):
        pytest.fail(f"Kafka does not answer at {settings.kafka_bootstrap_servers}: run `make up` first")
    return settings.kafka_bootstrap_servers


@pytest.fixture(scope="session")
def redis_url(settings: Settings) -> str:
    from clickpulse.stack import redis_server

    if redis_server.answers(settings.redis_url) is None:
        pytest.fail(f"Redis does not answer at {settings.redis_url}: run `make up` first")
    return settings.redis_url


@pytest.fixture
def unique_name() -> Callable[[str], str]:
    """A name no other test uses: topics, consumer groups, Redis key prefixes."""

    def make(prefix: str) -> str:
        return f"{prefix}.{uuid.uuid4().hex[:10]}"

    return make


@pytest.fixture
def new_topic(kafka_bootstrap: str, unique_name: Callable[[str], str]) -> Iterator[Callable[..., str]]:
    """Create topics private to one test; deleted afterwards."""
    from confluent_kafka.admin import AdminClient

    from clickpulse.stack.topics import ensure_topics

    created: list[str] = []

    def make(prefix: str = "test", partitions: int = 3) -> str:
        name = unique_name(prefix)
        ensure_topics(kafka_bootstrap, {name: partitions})
        created.append(name)
        return name

    yield make
    if created:
        # keep the client until the futures resolve: a dropped AdminClient cancels the deletion (_DESTROY)
        admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
        for future in admin.delete_topics(created, operation_timeout=10).values():
            future.result(timeout=30)
