"""A Kafka + Redis of the fault tests' own: they stop and restart it; the shared stack must never see that."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from clickpulse.settings import Settings
from clickpulse.stack import launcher
from streaming.redis_roles import Role, settings_as


def spare_ports(count: int) -> int:
    """The first of ``count`` consecutive loopback ports nobody listens on (Kafka takes port and port + 1)."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            first = int(probe.getsockname()[1])
        if first + count > 65535:
            continue
        free = True
        for port in range(first, first + count):
            with socket.socket() as probe:
                try:
                    probe.bind(("127.0.0.1", port))
                except OSError:
                    free = False
                    break
        if free:
            return first
    raise RuntimeError(f"no {count} consecutive free loopback ports")


@pytest.fixture(scope="module")
def own_stack(tmp_path_factory: pytest.TempPathFactory, settings: Settings) -> Iterator[Settings]:
    """A single-node Kafka and a Redis (AOF everysec, the stack's config) on spare ports and a data dir of
    their own; the Kafka jars come from the shared cache. Stopped, with their data, afterwards. The
    settings log in as the admin user of that Redis (its secrets file is in the same data dir)."""
    own = Settings(
        KAFKA_BOOTSTRAP_SERVERS=f"127.0.0.1:{spare_ports(2)}",
        REDIS_URL=f"redis://127.0.0.1:{spare_ports(1)}/0",
        CLICKPULSE_DATA_DIR=tmp_path_factory.mktemp("faults-stack"),
        CLICKPULSE_CACHE_DIR=settings.cache_dir,
        CLICKPULSE_TOPIC_PARTITIONS=3,
    )
    try:
        launcher.up(own)
        yield settings_as(own, Role.ADMIN)  # ACL mode, as the stack's default; the test's keys need admin
    finally:
        launcher.down(own)
