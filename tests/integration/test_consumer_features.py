"""Routing families to separate Redis databases, trending renormalisation, live Pub/Sub, /metrics."""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from typing import Any

import orjson
import pytest
import redis
from prometheus_client import REGISTRY

from clickpulse.settings import Settings
from streaming.consumer import RealtimeConsumer
from streaming.consumer.redis_queue import OrderedRedisQueue, StreamedRedisQueue
from streaming.consumer.state import LuaCall
from streaming.kafka_io import committed_offsets as committed
from streaming.keyspace import Keyspace, read_trending
from streaming.redis_conn import Family, RedisRouter, connect
from tests.integration.consumer_support import (
    Expected,
    compare,
    handmade,
    now_ms,
    produce,
    read_topic,
    simulated,
)
from tests.integration.recs_support import delete_prefix


@pytest.fixture
def private(private: Settings) -> Iterator[Settings]:
    """The shared ``private`` settings; a test here also routes families to database 1, cleaned too."""
    yield private
    client = connect(private.redis_url.rsplit("/", 1)[0] + "/1")
    delete_prefix(client, private.redis_prefix)
    client.close()


def test_families_routed_to_their_own_redis_and_trending_renormalised(private: Settings) -> None:
    db1 = private.redis_url.rsplit("/", 1)[0] + "/1"
    routed = private.model_copy(
        update={
            "redis_url_windows": db1,
            "redis_url_profiles": db1,
            "trending_renormalise_half_lives": 1e-9,  # move t0 forward on every batch
        }
    )
    now = now_ms()
    records = simulated(2000, seed=5)[0] + handmade(200, 5, now, routed.allowed_lateness_minutes * 60)
    produce(routed.kafka_bootstrap_servers, routed.topic_raw, records)
    expected = Expected.of(records, routed.allowed_lateness_minutes * 60, time.time())
    router = RedisRouter.from_settings(routed)
    assert len(router.clients()) == 2 and router.shares_client(Family.WINDOWS, Family.PROFILES)
    ks = Keyspace.from_settings(routed)
    consumer = RealtimeConsumer(routed, group=f"{ks.prefix}.g", router=router, keyspace=ks, batch_size=300)
    try:
        consumer.run(stop_when=lambda s: s.records >= len(records))
    finally:
        consumer.close()
    assert consumer.stats.batches > 3
    assert compare(router, ks, expected) == []

    live, windows = router.client(Family.LIVE), router.client(Family.WINDOWS)
    video = next(iter(expected.videos))
    user = next(iter(expected.users))
    assert live.exists(ks.video_totals(video)) and not windows.exists(ks.video_totals(video))
    assert windows.exists(ks.user_profile(user)) and not live.exists(ks.user_profile(user))
    assert not list(live.scan_iter(match=f"{ks.prefix}:*:m:*", count=1000))
    assert list(windows.scan_iter(match=f"{ks.prefix}:*:m:*", count=1000))
    t0 = float(live.hget(ks.trending_meta(), "t0") or 0)
    assert t0 >= time.time() - 4 * 3600, "renormalisation should have moved t0 to the latest hour"
    top = read_trending(router, 3, keyspace=ks)
    ranked = sorted(expected.trending.items(), key=lambda kv: -kv[1])[:3]
    assert [item["video_id"] for item in top] == [video_id for video_id, _ in ranked]
    router.close()


def test_live_snapshots_user_channels_and_metrics(private: Settings) -> None:
    now = now_ms()
    records = handmade(1500, 9, now, private.allowed_lateness_minutes * 60, late_share=0.0)
    expected = Expected.of(records, private.allowed_lateness_minutes * 60, time.time())
    router = RedisRouter.from_settings(private)
    ks = Keyspace.from_settings(private)
    pubsub = connect(private.redis_url).pubsub()
    pubsub.psubscribe(f"{ks.prefix}:live:*")
    received: list[dict[str, Any]] = []
    listening = threading.Event()

    def listen() -> None:
        listening.set()
        while not stop.is_set():
            message = pubsub.get_message(timeout=0.1)
            if message and message["type"] == "pmessage":
                received.append({"channel": message["channel"], "data": orjson.loads(message["data"])})

    stop = threading.Event()
    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    listening.wait(5)
    time.sleep(0.3)

    consumer = RealtimeConsumer(private, group=f"{ks.prefix}.g", router=router, keyspace=ks, batch_size=50)
    try:
        produce(private.kafka_bootstrap_servers, private.topic_raw, records[:500])
        consumer.run(stop_when=lambda s: s.records >= 500)
        time.sleep(0.3)
        produce(private.kafka_bootstrap_servers, private.topic_raw, records[500:])
        consumer.run(stop_when=lambda s: s.records >= len(records))
        time.sleep(0.3)
        consumer.live.maybe_publish(force=True)
        time.sleep(0.5)
    finally:
        consumer.close()
        stop.set()
        listener.join(5)
        pubsub.close()

    snapshots = [m["data"] for m in received if m["channel"] == ks.channel_global()]
    assert snapshots, "no live:global snapshot"
    last = snapshots[-1]
    assert last["totals"]["events"] == expected.valid
    assert last["funnel"]["clicks"] == expected.totals["clicks"]
    assert last["trending"] and set(last["ctr"]) == {"button", "surface", "slot"}
    assert set(last["consumer_lag"]) == {f"{private.topic_raw}:{p}" for p in range(3)}
    stamps = sorted(datetime.fromisoformat(s["at"].replace("Z", "+00:00")).timestamp() for s in snapshots)
    assert all(b - a >= 0.24 for a, b in itertools.pairwise(stamps)), "snapshots faster than 4/s"

    per_user: Counter[str] = Counter()
    for m in received:
        if m["channel"].startswith(f"{ks.prefix}:live:user:"):
            assert m["channel"] == ks.channel_user(m["data"]["user_id"])
            assert all({"video_id", "button_id", "event_time"} <= set(c) for c in m["data"]["clicks"])
            per_user[m["data"]["user_id"]] += len(m["data"]["clicks"])
    want = {u: d["counts"]["clicks"] for u, d in expected.users.items() if d["counts"]["clicks"]}
    assert dict(per_user) == want
    tickers = {m["data"]["event_type"] for m in received if ":live:events:" in m["channel"]}
    assert tickers == {"click", "impression", "conversion"}

    group = f"{ks.prefix}.g"

    def sample(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, {"group": group, **labels}) or 0.0

    assert sample("clickpulse_consumer_records_total") == len(records)
    assert sample("clickpulse_consumer_events_total", outcome="counted") == expected.valid
    assert sample("clickpulse_consumer_batch_seconds_count") >= len(records) / 50
    assert sample("clickpulse_consumer_duplicates_total") == 0
    assert sample("clickpulse_consumer_dead_letters_total") == 0
    assert sample("clickpulse_consumer_late_events_total") == expected.late
    assert sample("clickpulse_consumer_redis_errors_total") == 0
    router.close()


class _UnconfirmedFlushes:
    """The consumer's producer, except that the flushes numbered in ``fail`` report a record Kafka did
    not confirm (after flushing for real), and ``on_fail`` runs then."""

    def __init__(self, real: Any, fail: set[int], on_fail: Callable[[], None] = lambda: None) -> None:
        self.real, self.fail, self.on_fail, self.calls = real, fail, on_fail, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def flush(self, *args: Any) -> int:
        self.calls += 1
        remaining = int(self.real.flush(*args))
        if self.calls in self.fail:
            self.on_fail()
            return remaining + 1
        return remaining


def _overlap_run(private: Settings, seed: int) -> tuple[list[Any], Expected, RedisRouter, Keyspace]:
    records = simulated(3000, seed=seed)[0] + handmade(
        300, seed, now_ms(), private.allowed_lateness_minutes * 60
    )
    produce(private.kafka_bootstrap_servers, private.topic_raw, records)
    expected = Expected.of(records, private.allowed_lateness_minutes * 60, time.time())
    return records, expected, RedisRouter.from_settings(private), Keyspace.from_settings(private)


def test_batches_larger_than_one_lua_call_are_applied_in_slices(private: Settings) -> None:
    """``consumer_lua_max_events`` below the batch size: each phase of a batch becomes several calls per
    role, each at most that many events, covering increasing offsets; a replay of the whole topic by a
    new group changes nothing, and the counts equal the truth."""
    records, expected, router, ks = _overlap_run(private, seed=25)
    sliced = private.model_copy(update={"consumer_lua_max_events": 70})
    consumer = RealtimeConsumer(sliced, group=f"{ks.prefix}.g", router=router, keyspace=ks, batch_size=200)
    sizes: dict[str, list[int]] = {}
    send = consumer.writer.send

    def measured(calls: list[LuaCall], reads: Any = ()) -> Any:
        for call in calls:
            sizes.setdefault(call.header["role"], []).append(sum(len(g.members) for g in call.groups))
        return send(calls, reads)

    consumer.writer.send = measured  # type: ignore[method-assign]
    try:
        consumer.run(stop_when=lambda s: s.records >= len(records))
    finally:
        consumer.close()
    assert max(sizes["v"]) == 70 and max(max(n) for n in sizes.values()) <= 70
    assert len(sizes["v"]) >= 3 * consumer.stats.batches - 3  # 200-event batches in 70-event slices
    assert compare(router, ks, expected) == []
    replay = RealtimeConsumer(
        sliced, group=f"{ks.prefix}.again", router=router, keyspace=ks, batch_size=200, from_beginning=True
    )
    try:
        replay.run(stop_when=lambda s: s.records >= len(records))
    finally:
        replay.close()
    assert replay.stats.records == len(records)
    assert compare(router, ks, expected) == []
    router.close()


def test_batches_kafka_did_not_confirm_are_retried_without_double_counts(private: Settings) -> None:
    """Kafka fails to confirm some batches after Redis took them: their retries (no-ops in Redis, thanks
    to the watermarks) still count every event once, and every first occurrence reaches clicks.enriched."""
    records, expected, router, ks = _overlap_run(private, seed=21)
    consumer = RealtimeConsumer(private, group=f"{ks.prefix}.g", router=router, keyspace=ks, batch_size=200)
    consumer.producer = _UnconfirmedFlushes(consumer.producer, fail={2, 3, 7})  # type: ignore[assignment]
    try:
        consumer.run(stop_when=lambda s: s.records >= len(records))
    finally:
        consumer.close()
    assert consumer.stats.retries == 3 and consumer.stats.batches > 8
    assert compare(router, ks, expected) == []
    enriched = read_topic(private.kafka_bootstrap_servers, private.topic_enriched, expected.valid)
    assert {orjson.loads(m.value())["event_id"] for m in enriched} == {
        e["event_id"] for e in expected.first_events
    }
    router.close()


def test_redis_failures_while_batches_overlap_count_every_event_once(private: Settings) -> None:
    """Redis refuses calls while later batches' calls are already written behind them (full batches, so
    phase one of the next batch is written before this one's reply is read): the scripts refuse every
    later call of the same role (GAP, nothing written), every batch in flight is retried in order, and
    the counts still equal the truth."""
    records, expected, router, ks = _overlap_run(private, seed=23)
    consumer = RealtimeConsumer(private, group=f"{ks.prefix}.g", router=router, keyspace=ks, batch_size=200)
    assert isinstance(consumer._redis, StreamedRedisQueue)
    send, execute = consumer.writer.send, consumer.writer.execute
    rounds, retries = itertools.count(1), itertools.count(1)
    impossible = 2**62
    failed: list[str] = []

    def refused_send(calls: list[LuaCall], reads: Any = ()) -> Any:
        n = next(rounds)
        if n in {6, 15, 22} and calls:
            failed.append(f"round {n}")
            calls[0].after = dict.fromkeys(calls[0].upto, impossible)  # the script refuses it
        return send(calls, reads)

    def flaky_execute(calls: list[LuaCall], reads: Any = ()) -> Any:
        if next(retries) == 1:  # the first retry fails too
            failed.append("retry 1")
            raise redis.ConnectionError("injected failure of a retry")
        return execute(calls, reads)

    reasons: list[str] = []
    count_failure = consumer._count_failure

    def record(exc: Exception, attempt: int) -> None:
        reasons.append(str(exc))
        count_failure(exc, attempt)

    consumer.writer.send = refused_send  # type: ignore[method-assign]
    consumer.writer.execute = flaky_execute  # type: ignore[method-assign]
    consumer._count_failure = record  # type: ignore[method-assign]
    try:
        consumer.run(stop_when=lambda s: s.records >= len(records))
    finally:
        consumer.close()
    assert failed == ["round 6", "retry 1", "round 15", "round 22"]
    injected = [r for r in reasons if str(impossible) in r]
    assert len(injected) == 3, reasons
    # A later call of the same role, written before the failed one's reply was read, was refused too.
    assert any(r.startswith("GAP") and str(impossible) not in r for r in reasons), reasons
    assert consumer.stats.retries >= 4 and consumer.stats.batches > 10
    assert compare(router, ks, expected) == []
    enriched = read_topic(private.kafka_bootstrap_servers, private.topic_enriched, expected.valid)
    assert {orjson.loads(m.value())["event_id"] for m in enriched} == {
        e["event_id"] for e in expected.first_events
    }
    router.close()


def test_redis_failures_on_the_threaded_queue_count_every_event_once(private: Settings) -> None:
    """The queue a Redis Cluster uses (one thread, a round at a time): after a failure nothing queued
    runs, every batch in flight is retried in order, and the counts still equal the truth."""
    records, expected, router, ks = _overlap_run(private, seed=24)
    consumer = RealtimeConsumer(private, group=f"{ks.prefix}.g", router=router, keyspace=ks, batch_size=200)
    consumer._redis.shutdown()
    consumer._redis = OrderedRedisQueue(consumer.writer)
    execute = consumer.writer.execute
    calls = itertools.count(1)
    failed: list[int] = []

    def flaky(batch_calls: list[LuaCall], reads: Any = ()) -> list[Any]:
        n = next(calls)
        if n in {6, 7, 15, 22}:  # 7: the first retry of the batch that failed at 6 fails too
            failed.append(n)
            raise redis.ConnectionError(f"injected failure of Redis call {n}")
        return execute(batch_calls, reads)

    consumer.writer.execute = flaky  # type: ignore[method-assign,assignment]
    try:
        consumer.run(stop_when=lambda s: s.records >= len(records))
    finally:
        consumer.close()
    assert failed == [6, 7, 15, 22]
    # Every failed call retries its batch; so does every batch whose queued call was refused after it.
    assert consumer.stats.retries >= len(failed) and consumer.stats.batches > 10
    assert compare(router, ks, expected) == []
    router.close()


def _phase_two_kinds(consumer: RealtimeConsumer) -> list[set[str]]:
    """Records, per round the consumer sends, the kinds of its {global} and user groups."""
    kinds: list[set[str]] = []
    send = consumer.writer.send

    def recorded(calls: list[LuaCall], reads: Any = ()) -> Any:
        sent = {g.kind for call in calls for g in call.groups} & set("gGuU")
        if sent:
            kinds.append(sent)
        return send(calls, reads)

    consumer.writer.send = recorded  # type: ignore[method-assign]
    return kinds


def test_phase_two_goes_as_totals_while_no_offset_is_replayed(private: Settings) -> None:
    """A new consumer sends phase two event by event until a batch shows that none of its offsets was
    counted before, then as totals it counted itself; the counts equal the truth. A group replaying the
    topic from the beginning (every offset counted) stays event by event and changes nothing."""
    records, expected, router, ks = _overlap_run(private, seed=26)
    consumer = RealtimeConsumer(private, group=f"{ks.prefix}.g", router=router, keyspace=ks, batch_size=200)
    kinds = _phase_two_kinds(consumer)
    try:
        consumer.run(stop_when=lambda s: s.records >= len(records))
    finally:
        consumer.close()
    assert kinds[0] == {"g", "u"} and consumer.stats.retries == 0
    assert {"G", "U"} in kinds and sum(k == {"G", "U"} for k in kinds) >= len(kinds) - 3
    assert all(k in ({"g", "u"}, {"G", "U"}) for k in kinds)
    assert compare(router, ks, expected) == []
    replay = RealtimeConsumer(
        private, group=f"{ks.prefix}.again", router=router, keyspace=ks, batch_size=200, from_beginning=True
    )
    kinds = _phase_two_kinds(replay)
    try:
        replay.run(stop_when=lambda s: s.records >= len(records))
    finally:
        replay.close()
    assert replay.stats.records == len(records) and replay.stats.retries == 0
    assert kinds and all(k == {"g", "u"} for k in kinds)
    assert compare(router, ks, expected) == []
    router.close()


def test_totals_over_offsets_counted_before_are_refused(
    private: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """A consumer that wrongly takes replayed offsets for new ones and sends phase two as totals: the
    scripts refuse those calls (REPLAY, nothing written), the batches are retried event by event, and
    nothing is counted twice."""
    records, expected, router, ks = _overlap_run(private, seed=27)
    consumer = RealtimeConsumer(private, group=f"{ks.prefix}.g", router=router, keyspace=ks, batch_size=200)
    try:
        consumer.run(stop_when=lambda s: s.records >= len(records))
    finally:
        consumer.close()
    assert compare(router, ks, expected) == []
    replay = RealtimeConsumer(
        private, group=f"{ks.prefix}.again", router=router, keyspace=ks, batch_size=200, from_beginning=True
    )
    replay.writer.expect_replay = lambda: None  # type: ignore[method-assign]
    replay.writer.send_totals = True
    kinds = _phase_two_kinds(replay)
    try:
        replay.run(stop_when=lambda s: s.records >= len(records))
    finally:
        replay.close()
    assert kinds[0] == {"G", "U"}
    assert replay.stats.retries >= 1 and replay.stats.records == len(records)
    assert "REPLAY partition" in caplog.text
    assert compare(router, ks, expected) == []
    router.close()


def test_stop_while_kafka_fails_keeps_the_batch_uncommitted(private: Settings) -> None:
    """Asked to stop while Kafka fails a batch (already in Redis): it stores no offsets, nor does any later
    batch, and a restarted consumer replays it without counting anything twice."""
    records, expected, router, ks = _overlap_run(private, seed=22)
    group = f"{ks.prefix}.g"
    first = RealtimeConsumer(private, group=group, router=router, keyspace=ks, batch_size=200)
    first.producer = _UnconfirmedFlushes(first.producer, fail={2}, on_fail=first.stop)  # type: ignore[assignment]
    stored: list[dict[int, int]] = []
    store = first._store_offsets

    def record_then_store(next_offsets: Mapping[int, int]) -> None:
        stored.append(dict(next_offsets))
        store(next_offsets)

    first._store_offsets = record_then_store  # type: ignore[method-assign]
    try:
        first.run(stop_when=lambda s: s.records >= len(records))
    finally:
        first.close()
    assert len(stored) == 1, "only the batch before the failed one stores offsets"
    assert committed(private.kafka_bootstrap_servers, group, private.topic_raw) == {
        p: stored[0].get(p, -1001) for p in range(3)
    }
    second = RealtimeConsumer(private, group=group, router=router, keyspace=ks, batch_size=200)
    try:
        second.run(stop_when=lambda s: s.records + first.stats.records >= len(records))
    finally:
        second.close()
    assert compare(router, ks, expected) == []
    router.close()
