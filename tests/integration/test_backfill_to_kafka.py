"""Backfills against the real local Kafka: every record arrives, keyed by user, stamped with event_time."""

from __future__ import annotations

import csv
import os
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import uuid4

import orjson
import pytest
from confluent_kafka import TIMESTAMP_CREATE_TIME, Consumer, KafkaException, Message
from confluent_kafka.admin import AdminClient, NewTopic
from typer.testing import CliRunner

from clickpulse.commands.simulate import app
from clickpulse.settings import get_settings
from streaming.pseudonymize import pseudonymize
from streaming.replay import read_ndjson, write_to_kafka
from streaming.simulation.truth import epoch_ms
from streaming.simulator import SimulationConfig, Simulator, backfill_window

BOOTSTRAP = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
BROKER_WAIT_S = 240


def wait_for_broker(admin: AdminClient) -> None:
    """The stack may still be starting; give it a few minutes before failing."""
    deadline = time.monotonic() + BROKER_WAIT_S
    while True:
        try:
            admin.list_topics(timeout=5)
            return
        except KafkaException:
            if time.monotonic() > deadline:
                raise
            time.sleep(3)


@pytest.fixture
def topic() -> Iterator[str]:
    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
    wait_for_broker(admin)
    name = f"test.backfill.{uuid4().hex[:8]}"
    for future in admin.create_topics([NewTopic(name, num_partitions=3, replication_factor=1)]).values():
        future.result(timeout=30)
    yield name
    for future in admin.delete_topics([name]).values():
        future.result(timeout=30)


def consume_all(topic: str, expected: int, timeout_s: float = 60) -> list[Message]:
    consumer = Consumer(
        {
            "bootstrap.servers": BOOTSTRAP,
            "group.id": f"test-backfill-{uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    messages: list[Message] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(messages) < expected and time.monotonic() < deadline:
            for message in consumer.consume(num_messages=500, timeout=1.0):
                if message.error() is not None:
                    raise KafkaException(message.error())
                messages.append(message)
        for message in consumer.consume(num_messages=500, timeout=2.0):  # nothing extra may follow
            messages.append(message)
    finally:
        consumer.close()
    return messages


def as_sent(message: Message) -> tuple[bytes | None, bytes, int]:
    kind, timestamp = message.timestamp()
    assert kind == TIMESTAMP_CREATE_TIME
    value = message.value()
    assert value is not None
    return message.key(), value, timestamp


def event_time_ms(payload: bytes) -> int:
    return epoch_ms(datetime.fromisoformat(orjson.loads(payload)["event_time"]))


def test_simulated_backfill_arrives_keyed_and_stamped_with_event_time(topic: str) -> None:
    start, end = backfill_window(3)
    config = SimulationConfig(
        users=40, videos=20, events=1500, seed=3, start=start, end=end,
        late_share=0.05, duplicate_share=0.02, malformed_share=0.02,
    )  # fmt: skip
    records = list(Simulator(config))

    report = write_to_kafka(records, {"bootstrap.servers": BOOTSTRAP}, topic, timestamp_from_event_time=True)
    assert report.ok and report.delivered == len(records) == 1500

    received = [as_sent(m) for m in consume_all(topic, len(records))]
    expected = [(r.key, r.payload, r.kafka_timestamp_ms) for r in records]
    assert Counter(received) == Counter(expected)
    for key, payload, timestamp in received:
        if key is not None:
            assert key == orjson.loads(payload)["user_id"].encode()
            assert timestamp == event_time_ms(payload)
            assert epoch_ms(start) <= timestamp < epoch_ms(end)


def test_replayed_file_keeps_order_per_user(topic: str, tmp_path: Path) -> None:
    start, end = backfill_window(2)
    config = SimulationConfig(
        users=10,
        videos=10,
        events=800,
        seed=4,
        start=start,
        end=end,
        malformed_share=0.03,
        duplicate_share=0.0,
    )  # no duplicates: each payload then names one position in the file
    path = tmp_path / "events.ndjson"
    path.write_bytes(b"".join(r.payload + b"\n" for r in Simulator(config)))

    report = write_to_kafka(
        read_ndjson(path), {"bootstrap.servers": BOOTSTRAP}, topic, timestamp_from_event_time=True
    )
    assert report.ok and report.delivered == 800

    messages = consume_all(topic, 800)
    assert len(messages) == 800
    sent_order = {line: index for index, line in enumerate(path.read_bytes().splitlines())}
    by_key: dict[bytes, list[int]] = {}
    for message in messages:
        key, payload, timestamp = as_sent(message)
        if key is None:
            continue
        assert timestamp == event_time_ms(payload)
        by_key.setdefault(key, []).append(sent_order[payload])
    assert len(by_key) > 1
    assert all(order == sorted(order) for order in by_key.values())  # one user, one partition, in order


def test_live_writes_use_the_current_time(topic: str) -> None:
    config = SimulationConfig(users=5, videos=5, events=50, seed=5, malformed_share=0.0, duplicate_share=0.0)
    records = list(Simulator(config))  # event times in May 2024
    before = int(time.time() * 1000)
    report = write_to_kafka(records, {"bootstrap.servers": BOOTSTRAP}, topic, timestamp_from_event_time=False)
    after = int(time.time() * 1000)
    assert report.ok
    timestamps = [as_sent(m)[2] for m in consume_all(topic, 50)]
    assert len(timestamps) == 50
    assert all(before - 1000 <= ts <= after + 1000 for ts in timestamps)


def test_simulate_command_backfills_into_kafka(
    topic: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", BOOTSTRAP)
    get_settings.cache_clear()
    truth_path = tmp_path / "truth.json"
    args = ["simulate", "--backfill-hours", "2", "--events", "1000", "--users", "30", "--videos", "15",
            "--topic", topic, "--truth", str(truth_path), "--dimensions-dir", str(tmp_path / "dims"),
            "--duplicate-share", "0.03", "--malformed-share", "0.03"]  # fmt: skip
    try:
        result = CliRunner().invoke(app, args)
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    truth = orjson.loads(truth_path.read_bytes())
    start, end = (datetime.fromisoformat(truth["meta"][name]) for name in ("start", "end"))
    assert end - start == timedelta(hours=2) and end <= datetime.now(UTC)

    messages = [as_sent(m) for m in consume_all(topic, 1000)]
    assert len(messages) == truth["totals"]["sent"] == 1000
    valid = [(key, payload, ts) for key, payload, ts in messages if key is not None]
    assert len(valid) == truth["totals"]["valid"] + truth["totals"]["duplicates"]
    unique = {orjson.loads(payload)["event_id"]: (payload, ts) for _, payload, ts in valid}
    assert len(unique) == truth["totals"]["valid"]
    clicks: Counter[str] = Counter()
    for payload, timestamp in unique.values():
        event = orjson.loads(payload)
        assert timestamp == event_time_ms(payload)
        assert epoch_ms(start) <= timestamp < epoch_ms(end)
        clicks[event["video_id"]] += event["event_type"] == "click"
    assert {video: counts["clicks"] for video, counts in truth["videos"].items()} == clicks


PSEUDONYM_KEY = "pseudonymisation-key-backfill-0123"


def _run_with_key(args: list[str], monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", BOOTSTRAP)
    monkeypatch.setenv("CLICKPULSE_PSEUDONYMIZE_KEY", PSEUDONYM_KEY)
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, args)
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    return result.output


def test_replay_backfill_writes_pseudonyms_like_the_collector(
    topic: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    start, end = backfill_window(2)
    config = SimulationConfig(
        users=15,
        videos=10,
        events=400,
        seed=6,
        start=start,
        end=end,
        malformed_share=0.03,
        duplicate_share=0.02,
    )
    records = list(Simulator(config))
    path = tmp_path / "events.ndjson"
    path.write_bytes(b"".join(r.payload + b"\n" for r in records))

    _run_with_key(["replay", str(path), "--backfill", "--topic", topic], monkeypatch)

    expected: Counter[tuple[bytes | None, bytes, int | None]] = Counter()
    for line in read_ndjson(path):  # what replay reads, with its timestamps
        if line.key is None:  # malformed: as recorded, like the collector's dead letters
            expected[(None, line.payload, line.timestamp_ms)] += 1
            continue
        event = orjson.loads(line.payload)
        pseudonym = pseudonymize(PSEUDONYM_KEY, event["user_id"])
        expected[(pseudonym.encode(), orjson.dumps({**event, "user_id": pseudonym}), line.timestamp_ms)] += 1
    received = Counter(as_sent(m) for m in consume_all(topic, len(records)))
    assert received == expected
    raw_ids = {r.event["user_id"].encode() for r in records if r.event is not None}
    assert not any(raw in value for key, value, _ in received if key is not None for raw in raw_ids)


def test_simulate_backfill_writes_pseudonyms(
    topic: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    truth_path, dims = tmp_path / "truth.json", tmp_path / "dims"
    args = ["simulate", "--backfill-hours", "1", "--events", "300", "--users", "20", "--videos", "10",
            "--topic", topic, "--truth", str(truth_path), "--dimensions-dir", str(dims),
            "--malformed-share", "0"]  # fmt: skip
    _run_with_key(args, monkeypatch)
    truth = orjson.loads(truth_path.read_bytes())["totals"]
    with (dims / "user_profiles.csv").open() as handle:
        raw_ids = {row["user_id"] for row in csv.DictReader(handle)}
    pseudonyms = {pseudonymize(PSEUDONYM_KEY, user): user for user in raw_ids}

    messages = consume_all(topic, truth["sent"])
    assert len(messages) == truth["sent"] == 300
    seen = set()
    for key, payload, _ in (as_sent(m) for m in messages):
        user = orjson.loads(payload)["user_id"]
        assert key == user.encode() and user in pseudonyms
        seen.add(user)
    assert len(seen) == truth["distinct_users"]
