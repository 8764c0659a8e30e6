"""Helpers for the serving tests: a private pipeline (topics, prefix, group), the real consumer in a
thread, a real uvicorn server on an ephemeral port, and expectations computed from the events sent.

Every name is private to one test module (topics, consumer group, Redis key prefix, Pub/Sub channel
prefix), so tests never see each other or the demo's data; keys are removed afterwards by prefix.
"""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import redis
import uvicorn
from confluent_kafka.admin import AdminClient

from clickpulse.settings import Settings
from clickpulse.stack.topics import ensure_topics
from streaming.consumer import RealtimeConsumer, RunStats
from streaming.sdk import ClickPulseClient
from streaming.simulator import SimulatedRecord, Truth

WEIGHTS = {"impression": 0.1, "click": 1.0, "conversion": 5.0}
METRIC = {"click": "clicks", "impression": "impressions", "conversion": "conversions"}


@dataclass(frozen=True)
class Private:
    """Names private to one test module and the settings that point every component at them."""

    name: str
    settings: Settings
    topics: tuple[str, ...]


def private_settings(
    kafka_bootstrap: str, redis_url: str, label: str, partitions: int = 3, **extra: Any
) -> Private:
    name = f"{label}-{uuid.uuid4().hex[:10]}"
    raw, enriched, dlq = f"{name}.raw", f"{name}.enriched", f"{name}.dlq"
    ensure_topics(kafka_bootstrap, {raw: partitions, enriched: partitions, dlq: 1})
    settings = Settings(
        KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap,
        REDIS_URL=redis_url,
        CLICKPULSE_TOPIC_RAW=raw,
        CLICKPULSE_TOPIC_ENRICHED=enriched,
        CLICKPULSE_TOPIC_DLQ=dlq,
        CLICKPULSE_REDIS_PREFIX=name,
        CLICKPULSE_LIVE_CHANNEL_PREFIX=name,
        CLICKPULSE_CONSUMER_GROUP=f"{name}.realtime",
        CLICKPULSE_CONSUMER_METRICS_PORT=0,
        CLICKPULSE_READ_KEYS="test-read-key,second-read-key",
        CLICKPULSE_WRITE_KEYS="test-write-key",
        **extra,
    )
    return Private(name, settings, (raw, enriched, dlq))


def cleanup(private: Private) -> None:
    """Delete the module's Redis keys (SCAN by prefix, never FLUSHDB) and its topics."""
    settings = private.settings
    client = redis.Redis.from_url(settings.redis_url)
    try:
        batch: list[bytes] = []
        for key in client.scan_iter(match=f"{settings.redis_prefix}:*", count=1000):
            batch.append(key)
            if len(batch) >= 500:
                client.unlink(*batch)
                batch.clear()
        if batch:
            client.unlink(*batch)
    finally:
        client.close()
    # keep the client until the futures resolve: a dropped AdminClient cancels the deletion
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap_servers})
    for future in admin.delete_topics(list(private.topics), operation_timeout=10).values():
        future.result(timeout=30)


class ConsumerThread:
    """The real ``RealtimeConsumer`` on a thread: ``start()``, ``wait_for(records)``, ``stop()``."""

    def __init__(self, settings: Settings, batch_size: int = 500, **options: Any) -> None:
        self.consumer = RealtimeConsumer(settings, batch_size=batch_size, **options)
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="consumer", daemon=True)

    def _run(self) -> None:
        try:
            self.consumer.run()
        except BaseException as exc:
            self.error = exc
        finally:
            self.consumer.close()

    @property
    def stats(self) -> RunStats:
        return self.consumer.stats

    def start(self) -> ConsumerThread:
        self._thread.start()
        return self

    def wait_for(self, records: int, timeout_s: float = 90.0) -> RunStats:
        deadline = time.monotonic() + timeout_s
        while self.stats.records < records:
            if self.error is not None:
                raise RuntimeError("consumer failed") from self.error
            if time.monotonic() > deadline:
                raise TimeoutError(f"consumer read {self.stats.records} of {records} records")
            time.sleep(0.05)
        return self.stats

    def stop(self) -> None:
        self.consumer.stop()
        self._thread.join(30)


class ServerThread:
    """uvicorn serving ``app`` on 127.0.0.1 with a port the OS picked."""

    def __init__(self, app: Any) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        config = uvicorn.Config(app, log_level="warning", lifespan="on", timeout_graceful_shutdown=2)
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 20.0) -> ServerThread:
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(15)
        self.sock.close()


@contextmanager
def serving(app: Any) -> Iterator[ServerThread]:
    server = ServerThread(app).start()
    try:
        yield server
    finally:
        server.stop()


@dataclass
class SentTraffic:
    """What ``send_simulated`` handed to the SDK so far (read it from another thread for progress)."""

    valid: int = 0
    malformed: int = 0
    on_time: Truth = field(default_factory=Truth)


def send_simulated(
    records: Iterable[SimulatedRecord],
    client: ClickPulseClient,
    lateness_minutes: int,
    sent: SentTraffic | None = None,
) -> SentTraffic:
    """Every record through the SDK as live traffic: valid events (duplicates included) with
    ``track()``, malformed ones as raw bytes. ``on_time`` counts the first occurrences the stream may
    bucket by hour: those within the allowed lateness when sent (a late event beyond it still counts in
    the all-time totals, which the simulator's own truth holds)."""
    sent = sent or SentTraffic()
    lateness_ms = lateness_minutes * 60_000
    for record in records:
        if record.valid and record.event is not None:
            client.track(dict(record.event))
            sent.valid += 1
            event_ms = int(datetime.fromisoformat(record.event["event_time"]).timestamp() * 1000)
            if not record.is_duplicate and time.time() * 1000 - event_ms <= lateness_ms:
                sent.on_time.add_event(record.event, event_ms)
        else:
            client.send_raw(record.payload)
            sent.malformed += 1
    return sent


def counted_events(records: Iterable[SimulatedRecord]) -> list[dict[str, Any]]:
    """Valid events, each event_id once: what the counters must reflect."""
    return [r.event for r in records if r.valid and not r.is_duplicate and r.event is not None]


def event_seconds(event: dict[str, Any]) -> float:
    return datetime.fromisoformat(str(event["event_time"]).replace("Z", "+00:00")).timestamp()


@dataclass
class Tally:
    impressions: int = 0
    clicks: int = 0
    conversions: int = 0
    by_button: Counter[str] = field(default_factory=Counter)
    users: set[str] = field(default_factory=set)

    def add(self, event: dict[str, Any]) -> None:
        kind = event["event_type"]
        setattr(self, METRIC[kind], getattr(self, METRIC[kind]) + 1)
        if kind == "click" and event.get("button_id"):
            self.by_button[event["button_id"]] += 1
        self.users.add(event["user_id"])

    def counts(self) -> dict[str, Any]:
        return {
            "impressions": self.impressions,
            "clicks": self.clicks,
            "conversions": self.conversions,
            "ctr": self.clicks / self.impressions if self.impressions else None,
            "conversion_rate": self.conversions / self.clicks if self.clicks else None,
        }


def tally(events: Iterable[dict[str, Any]], key: str | None = None) -> dict[str, Tally]:
    """Counts per value of ``key`` (``None``: everything under "all"); events without the key are skipped."""
    out: dict[str, Tally] = defaultdict(Tally)
    for event in events:
        if key is None:
            out["all"].add(event)
        elif event.get(key) is not None:
            out[str(event[key])].add(event)
    return dict(out)


def hour_name(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).strftime("%Y%m%d%H")


def decayed_scores(events: Iterable[dict[str, Any]], at: float, half_life_s: float) -> dict[str, float]:
    scores: dict[str, float] = defaultdict(float)
    for event in events:
        age = at - event_seconds(event)
        scores[event["video_id"]] += WEIGHTS[event["event_type"]] * 2.0 ** (-age / half_life_s)
    return dict(scores)
