"""The realtime consumer against the real Kafka and Redis: counts equal the ground truth, exactly once."""

from __future__ import annotations

import random
import signal
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import orjson
import pytest

from clickpulse.settings import Settings
from streaming.consumer import RealtimeConsumer, UserClicks
from streaming.contract import decode_and_validate
from streaming.dlq import (
    HEADER_ERROR,
    HEADER_SOURCE_OFFSET,
    HEADER_SOURCE_PARTITION,
    HEADER_SOURCE_TOPIC,
    HEADER_STAGE,
    read_headers,
)
from streaming.kafka_io import committed_offsets as committed
from streaming.kafka_io import wait_caught_up
from streaming.keyspace import Keyspace, write_user_attributes
from streaming.redis_conn import Family, RedisRouter
from tests.integration.consumer_support import (
    Expected,
    Record,
    compare,
    compare_with_simulator_truth,
    consumer_env,
    counted,
    handmade,
    now_ms,
    produce,
    read_topic,
    redis_state,
    reset_group,
    start_consumer_process,
    traffic,
    wait_until,
)


def run_until(consumer: RealtimeConsumer, records: int, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    consumer.run(stop_when=lambda s: s.records >= records or time.monotonic() > deadline)
    assert consumer.stats.records >= records, f"consumed {consumer.stats.records} of {records} records"


def test_counts_equal_truth_and_replay_changes_nothing(private: Settings) -> None:
    records, truth = traffic(private, 6000, seed=7)
    router = RedisRouter.from_settings(private)
    ks = Keyspace.from_settings(private)
    attributed = {"hm-u1": ("DE", "premium", "de"), "hm-u2": ("BR", "basic", "pt")}
    write_user_attributes(
        router,
        [
            {"user_id": u, "country": c, "subscription_tier": t, "language": lang}
            for u, (c, t, lang) in attributed.items()
        ],
        keyspace=ks,
    )
    produce(private.kafka_bootstrap_servers, private.topic_raw, records)
    now_s = time.time()
    expected = Expected.of(records, private.allowed_lateness_minutes * 60, now_s)
    assert expected.duplicates > 50 and expected.invalid >= 13 and expected.late > 20

    clicked: list[UserClicks] = []
    group = f"{private.redis_prefix}.g"
    consumer = RealtimeConsumer(
        private, group=group, router=router, keyspace=ks, user_click_hooks=[clicked.extend]
    )
    try:
        run_until(consumer, len(records))
    finally:
        consumer.close()
    stats = consumer.stats
    assert (stats.counted, stats.duplicates, stats.dead_letters) == (
        expected.valid,
        expected.duplicates,
        expected.invalid,
    )
    assert compare(router, ks, expected) == []
    assert compare_with_simulator_truth(router, ks, truth) == []
    assert sum(len(u.clicks) for u in clicked) == expected.totals["clicks"]

    # clicks.enriched: every counted event once, same key and Kafka timestamp, enrichment fields.
    enriched = read_topic(private.kafka_bootstrap_servers, private.topic_enriched, expected.valid)
    by_id = {orjson.loads(m.value())["event_id"]: m for m in enriched}
    assert len(enriched) == len(by_id) == expected.valid
    for first in expected.first_events:
        msg = by_id[first["event_id"]]
        body = orjson.loads(msg.value())
        assert msg.timestamp()[1] == first["ts"]
        assert msg.key() == first["user_id"].encode()
        assert body["is_late"] == first["late"]
        assert body["received_at"]
        country, tier, language = attributed.get(first["user_id"], (None, None, None))
        assert (body["user_country"], body["user_tier"], body["user_language"]) == (country, tier, language)

    # clicks.dlq: original bytes and headers for every invalid record.
    letters = read_topic(private.kafka_bootstrap_servers, private.topic_dlq, expected.invalid)
    assert len(letters) == expected.invalid
    sent_bad = {
        r.value or b"" for r in records if r.value is None or decode_and_validate(r.value).event is None
    }
    for letter in letters:
        headers = read_headers(letter.headers())
        assert (letter.value() or b"") in sent_bad
        assert headers[HEADER_STAGE] == "consumer" and headers[HEADER_ERROR]
        assert headers[HEADER_SOURCE_TOPIC] == private.topic_raw
        assert int(headers[HEADER_SOURCE_PARTITION]) in range(3) and int(headers[HEADER_SOURCE_OFFSET]) >= 0

    # Reset the group to the beginning and replay everything: no counter moves.
    live = router.client(Family.LIVE)
    before = redis_state(live, private.redis_prefix)
    reset_group(private.kafka_bootstrap_servers, group, private.topic_raw)
    replay = RealtimeConsumer(
        private, group=group, router=router, keyspace=ks, user_click_hooks=[clicked.extend]
    )
    try:
        run_until(replay, len(records))
    finally:
        replay.close()
    assert replay.stats.records == len(records)
    assert redis_state(live, private.redis_prefix) == before
    assert sum(len(u.clicks) for u in clicked) == expected.totals["clicks"], "a replay re-notified users"
    router.close()


class Feeder(threading.Thread):
    """Produces records at a steady pace while consumers run, so a kill lands mid-stream."""

    def __init__(self, bootstrap: str, topic: str, records: list[Record], per_s: int) -> None:
        super().__init__(daemon=True)
        self.args = (bootstrap, topic, records, per_s)
        self.done = threading.Event()

    def run(self) -> None:
        bootstrap, topic, records, per_s = self.args
        chunk = max(1, per_s // 10)
        for i in range(0, len(records), chunk):
            produce(bootstrap, topic, records[i : i + chunk])
            time.sleep(0.1)
        self.done.set()


@pytest.mark.parametrize("consumers", [1, 2], ids=["sigkill-restart", "two-consumers-one-killed"])
def test_sigkill_mid_stream_keeps_counts_exact(private: Settings, tmp_path: Path, consumers: int) -> None:
    records, _truth = traffic(private, 5000, seed=11 + consumers)
    expected = Expected.of(records, private.allowed_lateness_minutes * 60, time.time())
    router = RedisRouter.from_settings(private)
    ks = Keyspace.from_settings(private)
    group = f"{private.redis_prefix}.g"
    env = consumer_env(private, private.redis_prefix)
    log = tmp_path / "consumer.log"
    procs = [start_consumer_process(env, group, batch_size=100, log=log) for _ in range(consumers)]
    feeder = Feeder(private.kafka_bootstrap_servers, private.topic_raw, records, per_s=1500)
    try:
        feeder.start()
        wait_until(lambda: counted(router, ks) > 800, 60, "the first counts")
        victim = procs[0]
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)
        assert 0 < counted(router, ks) < expected.valid, "the kill should land mid-stream"
        if consumers == 1:
            procs.append(start_consumer_process(env, group, batch_size=100, log=log))
        feeder.join(60)
        wait_caught_up(private.kafka_bootstrap_servers, group, private.topic_raw, timeout_s=90)
    finally:
        for proc in procs[1:]:
            proc.send_signal(signal.SIGTERM)
        for proc in procs[1:]:
            assert proc.wait(30) == 0, log.read_text()[-3000:]
    assert compare(router, ks, expected) == [], log.read_text()[-3000:]
    assert all(
        offset > 0 for offset in committed(private.kafka_bootstrap_servers, group, private.topic_raw).values()
    )
    router.close()


def random_records(count: int, seed: int, now: int) -> list[Record]:
    """Arbitrary record values: empty, a tombstone, ~900 KB, invalid UTF-8, text, JSON fragments, a
    truncated valid event, then random bytes of random lengths (seeded, so a failure can be replayed)."""
    rng = random.Random(seed)
    event = orjson.dumps(
        {"event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)), "event_type": "click"}
    )
    fixed: list[bytes | None] = [
        b"",
        None,
        rng.randbytes(900_000),
        b"\xc3\x28\xa0\xa1\xe2\x28\xa1\xf0\x28\x8c\xbc",
        "plain text, not JSON: ünïcödé".encode(),
        b"{}",
        b'{"events": []}',
        b"[{}]",
        b"\x00" * 64,
        event[: len(event) // 2],
    ]
    values = fixed + [rng.randbytes(rng.choice([1, 7, 100, 5000])) for _ in range(count - len(fixed))]
    return [Record(v, rng.randbytes(rng.randint(0, 8)) or None, now) for v in values]


def test_random_bytes_are_all_dead_lettered_and_counting_goes_on(private: Settings) -> None:
    now = now_ms()
    junk = random_records(300, seed=99, now=now)
    valid = handmade(60, 99, now, private.allowed_lateness_minutes * 60)
    records = valid[:30] + junk + valid[30:]
    produce(private.kafka_bootstrap_servers, private.topic_raw, records)
    expected = Expected.of(records, private.allowed_lateness_minutes * 60, time.time())
    assert expected.invalid == len(junk) and expected.valid == len(valid)

    router = RedisRouter.from_settings(private)
    ks = Keyspace.from_settings(private)
    consumer = RealtimeConsumer(private, group=f"{private.redis_prefix}.g", router=router, keyspace=ks)
    try:
        run_until(consumer, len(records))
    finally:
        consumer.close()
    assert (consumer.stats.dead_letters, consumer.stats.counted) == (len(junk), len(valid))
    assert compare(router, ks, expected) == []

    letters = read_topic(private.kafka_bootstrap_servers, private.topic_dlq, len(junk))
    assert Counter(letter.value() or b"" for letter in letters) == Counter(r.value or b"" for r in junk)
    for letter in letters:
        headers = read_headers(letter.headers())
        assert headers[HEADER_STAGE] == "consumer" and headers[HEADER_ERROR]
        assert headers[HEADER_SOURCE_TOPIC] == private.topic_raw
    router.close()
