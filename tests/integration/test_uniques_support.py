"""The HyperLogLog check the counter tests rely on, against the real Redis: it accepts exactly what an
HLL of the true users reports, and flags a counter that missed a user."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import pytest

from clickpulse.settings import Settings
from clickpulse.stack import launcher
from streaming.redis_conn import connect
from tests.support.uniques import close_enough, reference_estimate, uniques_problem

KEY = "test:uniques-support:counter"


@pytest.fixture(params=["single", pytest.param("cluster", marks=pytest.mark.cluster)])
def client(request: pytest.FixtureRequest, settings: Settings, redis_url: str) -> Iterator[Any]:
    """The shared Redis, and the cluster stack's (a cluster client refuses some pipelined commands)."""
    if request.param == "cluster":
        launcher.up(settings, cluster=True)
        url = request.getfixturevalue("cluster_redis_url")
    else:
        url = redis_url
    client = connect(url)
    yield client
    client.delete(KEY)
    client.close()


def counted(client: Any, users: list[str]) -> int:
    client.delete(KEY)
    client.pfadd(KEY, *users)
    return int(client.pfcount(KEY))


def colliding_set(client: Any) -> list[str]:
    """A set of 74 users whose HLL count misses the 2% bound (about 1 set in 100 does)."""
    rng = random.Random(7)
    for _ in range(5000):
        users = sorted({f"user-{rng.randrange(10**9)}" for _ in range(74)})
        if not close_enough(counted(client, users), len(users)):
            return users
    raise AssertionError("no colliding set in 5000 tries")


def test_a_count_within_two_percent_passes_and_one_far_off_does_not(client: Any) -> None:
    users = [f"u{i}" for i in range(500)]
    assert uniques_problem(client, "v", 495, users) is None  # 1 % off
    problem = uniques_problem(client, "v", 480, users)  # 4 % off, and not what the HLL of the set says
    assert problem is not None and "480 vs truth 500" in problem


def test_an_hll_collision_passes_and_a_missed_user_does_not(client: Any) -> None:
    users = colliding_set(client)
    estimate = counted(client, users)
    assert not close_enough(estimate, len(users))
    assert reference_estimate(client, users) == estimate
    assert uniques_problem(client, "v", estimate, users) is None
    # a counter that lost one user: some user's absence changes the registers, and that is caught
    for missing in users:
        short = counted(client, [u for u in users if u != missing])
        if short != estimate:
            assert uniques_problem(client, "v", short, users) is not None
            break
    else:
        raise AssertionError("no single user changes the count")
