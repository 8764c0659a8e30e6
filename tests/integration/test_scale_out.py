"""Scale-out: 3 consumers on 6 partitions over a 3-broker Kafka and a 3-master Redis Cluster give
exactly the state that 1 consumer gives on a single Kafka broker and a single Redis.

The same records (simulator backfill, hand-made late and current events, garbage, re-sent duplicates)
go to a private 6-partition topic on each stack. One consumer process drains the single-node stack
(the shared one, private topics and key prefix); three consumer processes, which the test waits to see
holding two partitions each, drain the cluster stack (private topics with RF 3, private prefix). Then
every key family the consumer writes is read back through the keyspace readers on both sides, at the
same ``now``, and compared value by value; both sides are also checked against the expected state the
test computed from the records it sent.
"""

from __future__ import annotations

import math
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from clickpulse.settings import Settings
from streaming.kafka_io import wait_caught_up
from streaming.keyspace import (
    CTR_DIMENSIONS,
    Keyspace,
    bucket_names,
    read_ctr,
    read_global,
    read_trending,
    read_user_profile,
    read_video_stats,
    read_video_uniques_by_day,
)
from streaming.redis_conn import Family, RedisRouter
from tests.integration.consumer_support import (
    Expected,
    compare,
    consumer_env,
    group_assignment,
    produce,
    start_consumer_process,
    traffic,
    wait_until,
)
from tests.serving_support import Private, cleanup, private_settings

pytestmark = pytest.mark.cluster

EVENTS = 12_000
CLUSTER_CONSUMERS = 3
PARTITIONS = 6


@pytest.fixture
def single(kafka_bootstrap: str, redis_url: str) -> Iterator[Private]:
    made = private_settings(kafka_bootstrap, redis_url, "scale", partitions=PARTITIONS)
    yield made
    cleanup(made)


def read_everything(router: RedisRouter, ks: Keyspace, exp: Expected, now: float) -> dict[str, Any]:
    """Every family the consumer writes, through the readers (key names from the keyspace where no
    reader exists), for the videos, users, minutes, hours and days the records touch. Left out: the
    offset watermarks and the event_id seen-set (bookkeeping whose layout differs by design on a
    Cluster), events/s and lag (wall-clock dependent)."""
    windows = router.client(Family.WINDOWS)
    days = sorted({bucket_names(day * 86_400)[2] for _video, day in exp.days})
    state: dict[str, Any] = {}
    for video in sorted(exp.videos):
        state[f"video {video}"] = read_video_stats(router, video, now, keyspace=ks)
        state[f"video {video} uniques by day"] = read_video_uniques_by_day(router, video, days, keyspace=ks)
    for video, minute in sorted(exp.minutes):
        name = bucket_names(minute * 60)[0]
        state[f"minute {video} {name}"] = windows.hgetall(ks.video_minute(video, name))
    for video, hour in sorted(exp.hours):
        name = bucket_names(hour * 3600)[1]
        state[f"hour {video} {name}"] = windows.hgetall(ks.video_hour(video, name))
        state[f"hour uniques {video} {name}"] = windows.pfcount(ks.video_uniques_hour(video, name))
    for dim in CTR_DIMENSIONS:
        state[f"ctr {dim}"] = read_ctr(router, dim, keyspace=ks)
    for dim, hour in sorted(exp.ctr_hours):
        name = bucket_names(hour * 3600)[1]
        state[f"global hour {name}"] = windows.hgetall(ks.global_hour(name))
        if dim != "all":
            state[f"ctr {dim} {name}"] = read_ctr(router, dim, name, keyspace=ks)
    overview = read_global(router, now, keyspace=ks, trending_limit=len(exp.videos) + 10)
    state["global"] = {k: v for k, v in overview.items() if k not in ("events_per_s", "consumer_lag")}
    state["global"]["trending"] = {row["video_id"]: row["score"] for row in overview["trending"]}
    trending = read_trending(router, len(exp.videos) + 10, now, keyspace=ks)
    state["trending"] = {row["video_id"]: row["score"] for row in trending}
    for user in sorted(exp.users):
        state[f"user {user}"] = read_user_profile(router, user, keyspace=ks)
    return state


def differences(a: Any, b: Any, path: str = "") -> list[str]:
    """Where ``a`` and ``b`` differ; floats (decayed trending scores, summed in another order by
    other consumers) within a relative 1e-9."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = [f"{path}/{k}: only on one side" for k in sorted(set(a) ^ set(b), key=str)]
        for key in sorted(set(a) & set(b), key=str):
            out += differences(a[key], b[key], f"{path}/{key}")
        return out
    if isinstance(a, float) and isinstance(b, float):
        return [] if math.isclose(a, b, rel_tol=1e-9) else [f"{path}: {a} != {b}"]
    return [] if a == b else [f"{path}: {a!r} != {b!r}"]


def records_read(log: Path) -> int:
    """The records a consumer process read, from the stats line it logs when it closes."""
    found = re.findall(r"consumer closed: RunStats\(.*?records=(\d+)", log.read_text(errors="replace"))
    assert found, log.read_text(errors="replace")[-3000:]
    return int(found[-1])


def _stop(procs: list[subprocess.Popen[bytes]], log: Path) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        assert proc.wait(60) == 0, log.read_text(errors="replace")[-3000:]


def test_three_consumers_on_a_cluster_equal_one_consumer_on_a_single_redis(
    single: Private, on_cluster: Settings, tmp_path: Path
) -> None:
    one = single.settings
    three = on_cluster.model_copy(update={"consumer_group": f"{on_cluster.redis_prefix}.realtime"})
    records, _truth = traffic(one, EVENTS, seed=31)
    lateness_s = one.allowed_lateness_minutes * 60

    single_log = tmp_path / "single.log"
    cluster_logs = [tmp_path / f"cluster-{i}.log" for i in range(CLUSTER_CONSUMERS)]
    procs = [start_consumer_process(consumer_env(one, one.redis_prefix), one.consumer_group, 500, single_log)]
    cluster_env = consumer_env(three, three.redis_prefix)
    cluster_procs = [
        start_consumer_process(cluster_env, three.consumer_group, 500, log) for log in cluster_logs
    ]
    try:
        # Produce only once the three share the partitions, so each of them counts a third.
        bootstrap = three.kafka_bootstrap_servers
        even = [PARTITIONS // CLUSTER_CONSUMERS] * CLUSTER_CONSUMERS
        wait_until(
            lambda: list(map(len, group_assignment(bootstrap, three.consumer_group))) == even,
            120,
            "three consumers holding two partitions each",
        )
        began = time.monotonic()
        produce(one.kafka_bootstrap_servers, one.topic_raw, records)
        produce(three.kafka_bootstrap_servers, three.topic_raw, records)
        expected = Expected.of(records, lateness_s, time.time())
        wait_caught_up(one.kafka_bootstrap_servers, one.consumer_group, one.topic_raw, 300)
        wait_caught_up(bootstrap, three.consumer_group, three.topic_raw, 300)
        drained_s = time.monotonic() - began
        assert len(group_assignment(bootstrap, three.consumer_group)) == CLUSTER_CONSUMERS
        assert all(proc.poll() is None for proc in procs + cluster_procs)
    finally:
        _stop(procs, single_log)
        for proc, log in zip(cluster_procs, cluster_logs, strict=True):
            _stop([proc], log)
    # Each of the three did a share of the work (its closing line reports what it read).
    shares = [records_read(log) for log in cluster_logs]
    assert all(share > 0 for share in shares) and sum(shares) >= len(records), shares

    single_router, cluster_router = RedisRouter.from_settings(one), RedisRouter.from_settings(three)
    single_ks, cluster_ks = Keyspace.from_settings(one), Keyspace.from_settings(three)
    try:
        now = time.time()
        on_single = read_everything(single_router, single_ks, expected, now)
        on_cluster_state = read_everything(cluster_router, cluster_ks, expected, now)
        print(
            f"\n{len(records)} records drained in {drained_s:.1f}s; read by the three: {shares}; "
            f"{len(on_single)} values compared"
        )
        assert differences(on_single, on_cluster_state) == []
        # Both equal the state the test computed from the records it sent.
        assert compare(single_router, single_ks, expected) == []
        assert compare(cluster_router, cluster_ks, expected) == []
    finally:
        single_router.close()
        cluster_router.close()
