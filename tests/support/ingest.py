"""Helpers for the ingestion tests: a real uvicorn server in a thread, events, and reading a topic back."""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import uvicorn
from confluent_kafka import Consumer, Message, TopicPartition

from clickpulse.settings import Settings

WRITE_KEY = "wk-ingest-test"
READ_KEY = "rk-ingest-test"


def collector_settings(bootstrap: str, raw: str, dlq: str, **extra: Any) -> Settings:
    """Settings for a collector on the test's own topics, with the test's write and read keys."""
    return Settings(
        KAFKA_BOOTSTRAP_SERVERS=bootstrap,
        CLICKPULSE_TOPIC_RAW=raw,
        CLICKPULSE_TOPIC_DLQ=dlq,
        CLICKPULSE_WRITE_KEYS=WRITE_KEY,
        CLICKPULSE_READ_KEYS=READ_KEY,
        **extra,
    )


def closed_port(below: int = 65536) -> int:
    """A loopback port nothing listens on (bound then released): a Kafka or collector that is down.

    ``below`` bounds it: a Redis Cluster node also listens on port + 10000, so it needs one < 55536."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port < below:
            return port


@contextmanager
def serve(app: Any) -> Iterator[str]:
    """Run an ASGI app under uvicorn on an ephemeral loopback port; yields its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)
        sock.close()


def make_event(event_type: str = "click", **overrides: Any) -> dict[str, Any]:
    """A valid contract-v1 event with fresh ids."""
    event: dict[str, Any] = {
        "event_id": str(uuid.uuid4()),
        "event_type": event_type,
        "event_time": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "user_id": f"u-{uuid.uuid4().hex[:8]}",
        "session_id": f"s-{uuid.uuid4().hex[:8]}",
        "video_id": f"v-{uuid.uuid4().hex[:6]}",
    }
    if event_type == "click":
        event.update(button_id="play", playback_position_s=12.5)
    if event_type == "conversion":
        event["conversion_type"] = "subscribe"
    event.update(overrides)
    return event


def read_topic(bootstrap: str, topic: str, expected: int, timeout_s: float = 30.0) -> list[Message]:
    """Every record of ``topic`` from the beginning: waits for ``expected`` records, then for stragglers."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"test-reader-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    try:
        metadata = consumer.list_topics(topic, timeout=10)
        partitions = metadata.topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        records: list[Message] = []
        deadline = time.monotonic() + timeout_s
        quiet_until: float | None = None
        while time.monotonic() < deadline:
            batch = consumer.consume(num_messages=500, timeout=0.2)
            for message in batch:
                if message.error() is None:
                    records.append(message)
            if len(records) >= expected:
                if quiet_until is None:
                    quiet_until = time.monotonic() + 0.5  # anything beyond what was expected shows up too
                elif time.monotonic() >= quiet_until and not batch:
                    break
        return records
    finally:
        consumer.close()


def payload(message: Message) -> bytes:
    """A record's value; a record without one (a tombstone) fails the test that read it."""
    value = message.value()
    assert value is not None, f"{message.topic()}[{message.partition()}]@{message.offset()} has no value"
    return value


def forward_through_bridge(
    bridge: Any, publish: Callable[[str, bytes], int], messages: Sequence[bytes], deliveries: int
) -> None:
    """Start a ``RedisBridge``, publish ``messages`` on its channel once it subscribed (each must reach
    exactly one subscriber: this bridge), wait until Kafka confirmed ``deliveries`` records, stop it."""
    bridge.start()
    try:
        assert bridge.ready.wait(10), "the bridge did not subscribe"
        for message in messages:
            assert publish(bridge.channel, message) == 1
        deadline = time.monotonic() + 10
        while bridge.stats["delivered"] < deliveries and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        bridge.stop()
