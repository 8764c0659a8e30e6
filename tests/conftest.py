"""Shared fixtures: the real local stack (started by `make test`) and per-test names that never collide."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest

from clickpulse.settings import Settings, get_settings


@pytest.fixture(scope="session")
def stack_settings() -> Settings:
    """The settings every component reads from the environment (``get_settings()``), unchanged."""
    return get_settings()


@pytest.fixture(scope="session")
def settings(stack_settings: Settings) -> Settings:
    """The stack's settings with ``REDIS_URL`` logged in as the admin user (ACL mode, the default):
    tests work under private key prefixes and channels, which only admin may touch. Components handed
    these settings keep the admin login, since a URL with credentials is used as it is."""
    from streaming.redis_roles import RedisAclError, Role, settings_as

    try:
        return settings_as(stack_settings, Role.ADMIN)
    except RedisAclError as exc:
        pytest.fail(f"{exc} (`make up` starts the stack and writes the secrets file)")


@pytest.fixture(scope="session")
def kafka_bootstrap(settings: Settings) -> str:
    from clickpulse.stack import kafka

    if not kafka.answers(settings.kafka_bootstrap_servers):
        pytest.fail(f"Kafka does not answer at {settings.kafka_bootstrap_servers}: run `make up` first")
    return settings.kafka_bootstrap_servers


@pytest.fixture(scope="session")
def redis_url(settings: Settings) -> str:
    """REDIS_URL with the admin login (see ``settings``)."""
    from clickpulse.stack import redis_server
    from streaming.redis_roles import redact_url

    state, _ = redis_server.probe(settings.redis_url)
    if state is redis_server.Probe.AUTH:
        pytest.fail(
            f"Redis at {redact_url(settings.redis_url)} refuses the admin login: run `make up` (it renders "
            "the ACL users of this checkout's secrets file), or CLICKPULSE_REDIS_ACL=0 for an open Redis"
        )
    if state is redis_server.Probe.DOWN:
        pytest.fail(f"Redis does not answer at {redact_url(settings.redis_url)}: run `make up` first")
    return settings.redis_url


@pytest.fixture(scope="session")
def cluster_redis_url(settings: Settings) -> str:
    """The cluster stack's Redis (``stack up --cluster``) with the admin login, as ``redis_url``."""
    from clickpulse.stack import launcher
    from streaming.redis_roles import Role, role_url

    return role_url(settings, Role.ADMIN, launcher.CLUSTER_REDIS_URL)


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
