"""The Python SDK against a real collector (uvicorn) and the real Kafka, on topics private to each test."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any, TypedDict

import httpx
import orjson
import pytest
from confluent_kafka import KafkaError, Message, Producer
from fastapi import FastAPI, Request, Response

from clickpulse.settings import Settings
from streaming.collector import create_app
from streaming.collector.app import collector_producer_config
from streaming.sdk import ClickPulseClient, QueueFullError, RejectedEvent
from tests.support.ingest import (
    READ_KEY,
    WRITE_KEY,
    closed_port,
    collector_settings,
    make_event,
    payload,
    read_topic,
    serve,
)


class Backoff(TypedDict):
    backoff_base_s: float
    backoff_max_s: float


FAST: Backoff = {"backoff_base_s": 0.05, "backoff_max_s": 0.5}


class FlakyProducer:
    """A real producer that fails the first ``failures`` records in one of two ways:

    ``queue_full``: produce() raises BufferError (nothing reaches Kafka, the collector answers 503);
    ``lost_ack``: the record is written but its delivery report says it failed (like a lost ack), so
    the collector answers 503 although Kafka has the records: the retry then duplicates them.
    """

    def __init__(self, producer: Producer, failures: int, mode: str) -> None:
        self._producer = producer
        self._failures = failures
        self._mode = mode

    def produce(self, topic: str, *, on_delivery: Any = None, **kwargs: Any) -> None:
        if self._failures > 0:
            self._failures -= 1
            if self._mode == "queue_full":
                raise BufferError("Local: Queue full")
            inner = on_delivery

            def lost(_error: Any, message: Any) -> None:
                inner(KafkaError(KafkaError._MSG_TIMED_OUT), message)

            on_delivery = lost
        self._producer.produce(topic, on_delivery=on_delivery, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._producer, name)

    def __len__(self) -> int:
        return len(self._producer)


@pytest.fixture
def topics(kafka_bootstrap: str, new_topic: Callable[..., str]) -> Settings:
    return collector_settings(
        kafka_bootstrap,
        new_topic("raw"),
        new_topic("dlq", partitions=1),
        CLICKPULSE_COLLECTOR_RETRY_AFTER_S=0,
        CLICKPULSE_COLLECTOR_QUEUE_FULL_WAIT_S=0,
    )


@pytest.fixture
def collector_url(topics: Settings) -> Iterator[str]:
    with serve(create_app(topics)) as url:
        yield url


def _ids(records: list[Message]) -> Counter[str]:
    return Counter(orjson.loads(payload(r))["event_id"] for r in records)


@pytest.mark.parametrize("mode", ["queue_full", "lost_ack"])
def test_retries_through_503_until_every_event_is_in_kafka(topics: Settings, mode: str) -> None:
    failures = 3 if mode == "queue_full" else 100  # 3 refused requests, or the first batch's acks lost
    producer = FlakyProducer(Producer(collector_producer_config(topics)), failures, mode)
    with serve(create_app(topics, producer=producer)) as url:
        client = ClickPulseClient(url, WRITE_KEY, batch_size=100, flush_interval_s=0.2, **FAST)
        sent = [client.track(make_event()) for _ in range(250)]
        client.close()
        metrics = httpx.get(f"{url}/metrics").text

    assert client.stats["accepted"] == 250
    assert client.stats["failed"] == 0 and client.stats["rejected"] == 0
    assert client.stats["retries"] >= (3 if mode == "queue_full" else 1)
    assert 'clickpulse_collector_requests_total{status="503"}' in metrics
    arrived = _ids(read_topic(topics.kafka_bootstrap_servers, topics.topic_raw, 250))
    assert set(arrived) == set(sent)  # at least once ...
    if mode == "queue_full":
        assert all(n == 1 for n in arrived.values())  # ... and exactly once when nothing was written
    else:
        duplicated = {i for i, n in arrived.items() if n > 1}
        assert duplicated and duplicated <= set(sent[:100])  # only the batch whose acks were lost
        assert all(n <= 2 for n in arrived.values())  # and dedupable by event_id


def test_no_retry_on_401(topics: Settings, collector_url: str) -> None:
    rejected: list[RejectedEvent] = []
    client = ClickPulseClient(collector_url, READ_KEY, batch_size=10, on_rejected=rejected.extend, **FAST)
    for _ in range(10):
        client.track(make_event())
    assert client.flush(timeout=30)
    client.close()
    assert client.stats["requests"] == 1 and client.stats["retries"] == 0
    assert client.stats["rejected"] == 10 and client.stats["accepted"] == 0
    assert {r.status for r in rejected} == {401} and len(rejected) == 10
    metrics = httpx.get(f"{collector_url}/metrics").text
    assert 'clickpulse_collector_requests_total{status="401"} 1.0' in metrics


def test_no_retry_on_400_but_retry_on_503_honouring_retry_after() -> None:
    answers = [(503, {"Retry-After": "1"}), (400, {})]
    seen: list[float] = []
    app = FastAPI()

    @app.post("/v1/events")
    async def events(request: Request) -> Response:
        await request.body()
        seen.append(time.monotonic())
        status, headers = answers[min(len(seen), len(answers)) - 1]
        return Response(b'{"error": "scripted"}', status_code=status, headers=headers)

    with serve(app) as url:
        client = ClickPulseClient(url, WRITE_KEY, batch_size=5, **FAST)
        for _ in range(5):
            client.track(make_event())
        client.close()
    assert len(seen) == 2, "one retry after the 503, none after the 400"
    assert seen[1] - seen[0] >= 0.95, "Retry-After: 1 was not honoured"
    assert client.stats["retries"] == 1 and client.stats["rejected"] == 5


def test_flush_on_close_and_from_many_threads(topics: Settings, collector_url: str) -> None:
    client = ClickPulseClient(collector_url, WRITE_KEY, batch_size=10_000, flush_interval_s=60)
    sent: list[str] = []
    lock = threading.Lock()

    def worker() -> None:
        ids = [client.track(make_event()) for _ in range(200)]
        with lock:
            sent.extend(ids)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    time.sleep(0.3)
    assert client.stats["requests"] == 0  # neither the size nor the time trigger fired
    client.close()
    assert client.stats["accepted"] == 800 and client.stats["queued"] == 0
    assert _ids(read_topic(topics.kafka_bootstrap_servers, topics.topic_raw, 800)) == Counter(sent)


def test_batches_stay_under_the_request_limit(topics: Settings, collector_url: str) -> None:
    with ClickPulseClient(collector_url, WRITE_KEY, batch_size=100, gzip=False) as client:
        sent = [client.track(make_event(notes="n" * 25_000)) for _ in range(50)]  # ~1.25 MB in all
    assert client.stats["accepted"] == 50
    assert client.stats["requests"] >= 3
    metrics = httpx.get(f"{collector_url}/metrics").text
    assert 'status="413"' not in metrics
    assert set(_ids(read_topic(topics.kafka_bootstrap_servers, topics.topic_raw, 50))) == set(sent)


def test_send_raw_reports_rejections_and_dead_letters(topics: Settings, collector_url: str) -> None:
    rejected: list[RejectedEvent] = []
    raw_payloads = [b'{"event_id": "cut off', b"<xml/>", orjson.dumps({"event_type": "click"})]
    with ClickPulseClient(collector_url, WRITE_KEY, on_rejected=rejected.extend) as client:
        good = client.track(make_event())
        for body in raw_payloads:
            client.send_raw(body)
        client.send_raw(orjson.dumps(make_event("impression")))
    assert client.stats == {
        "sent": 5, "accepted": 2, "rejected": 3, "retries": 0, "failed": 0, "requests": 1, "queued": 0
    }  # fmt: skip
    assert sorted(r.payload for r in rejected) == sorted(raw_payloads)
    assert {r.status for r in rejected} == {200}
    dead = read_topic(topics.kafka_bootstrap_servers, topics.topic_dlq, 3)
    assert sorted(payload(d) for d in dead) == sorted(raw_payloads)
    assert good in _ids(read_topic(topics.kafka_bootstrap_servers, topics.topic_raw, 2))
    with ClickPulseClient(collector_url, WRITE_KEY) as other, pytest.raises(ValueError, match="newline"):
        other.send_raw(b"{}\n{}")


def test_full_queue_blocks_then_raises_and_close_counts_failures() -> None:
    failed: list[bytes] = []
    client = ClickPulseClient(
        f"http://127.0.0.1:{closed_port()}",
        WRITE_KEY,
        batch_size=100,
        flush_interval_s=60,
        max_queue=3,
        enqueue_timeout_s=0.2,
        on_failed=lambda batch, _reason: failed.extend(batch),
        **FAST,
    )
    for _ in range(3):
        client.track(make_event())
    began = time.monotonic()
    with pytest.raises(QueueFullError):
        client.track(make_event())
    assert 0.15 < time.monotonic() - began < 2
    client.close(timeout=1.0)
    assert client.stats["failed"] == 3 and len(failed) == 3
    assert client.stats["retries"] >= 1  # it did try, with backoff, until close gave up
    with pytest.raises(RuntimeError, match="closed"):
        client.track(make_event())


def test_simulator_traffic_through_sdk_and_collector(topics: Settings, collector_url: str) -> None:
    from streaming.replay import write_to_collector
    from streaming.simulator import SimulationConfig, Simulator

    config = SimulationConfig(users=40, videos=15, events=1500, malformed_share=0.05, duplicate_share=0.03)
    records = list(Simulator(config))
    valid = [r for r in records if r.valid]
    malformed = [r.payload for r in records if not r.valid]
    assert malformed and len(valid) > len(malformed)

    report = write_to_collector(records, endpoint=collector_url, write_key=WRITE_KEY, batch_size=200)

    assert report.produced == len(records) and report.skipped == 0
    bootstrap = topics.kafka_bootstrap_servers
    raw = read_topic(bootstrap, topics.topic_raw, len(valid))
    assert _ids(raw) == Counter(str(r.event["event_id"]) for r in valid if r.event is not None)
    for record in raw:  # keyed by user_id, as the simulator's own Kafka writer keys them
        assert record.key() == str(orjson.loads(payload(record))["user_id"]).encode()
    dead = read_topic(bootstrap, topics.topic_dlq, len(malformed))
    assert Counter(payload(d) for d in dead) == Counter(malformed)
