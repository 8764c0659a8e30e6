"""The collector against the real Kafka: a uvicorn server per test, writing to topics private to the test.

Every assertion compares with what the test itself sent: the events, their indexes and their bytes.
"""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
import orjson
import pytest
from confluent_kafka import TIMESTAMP_CREATE_TIME

from clickpulse.settings import Settings
from streaming.collector import create_app
from streaming.contract import MAX_EVENT_BYTES, MAX_REQUEST_BYTES
from streaming.dlq import HEADER_ERROR, HEADER_STAGE, read_headers
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

AUTH = {"Authorization": f"Bearer {WRITE_KEY}"}
NDJSON = {**AUTH, "Content-Type": "application/x-ndjson"}


@dataclass
class Running:
    url: str
    settings: Settings

    def post(self, body: bytes, headers: dict[str, str] | None = None, **kwargs: Any) -> httpx.Response:
        return httpx.post(
            f"{self.url}/v1/events",
            content=body,
            headers=AUTH if headers is None else headers,
            timeout=30,
            **kwargs,
        )

    def raw(self, expected: int) -> list[Any]:
        return read_topic(self.settings.kafka_bootstrap_servers, self.settings.topic_raw, expected)

    def dlq(self, expected: int) -> list[Any]:
        return read_topic(self.settings.kafka_bootstrap_servers, self.settings.topic_dlq, expected)


@pytest.fixture
def collector(kafka_bootstrap: str, new_topic: Callable[..., str]) -> Iterator[Running]:
    settings = collector_settings(kafka_bootstrap, new_topic("raw"), new_topic("dlq", partitions=1))
    with serve(create_app(settings)) as url:
        yield Running(url, settings)


def _ms(rfc3339: str) -> int:
    return round(datetime.fromisoformat(rfc3339).timestamp() * 1000)


def test_mixed_ndjson_batch_accounts_for_every_event(collector: Running) -> None:
    valid = [make_event("click"), make_event("impression"), make_event("conversion", extra={"kept": 1})]
    wrong_type = orjson.dumps(make_event(user_id=12345))
    missing = orjson.dumps({k: v for k, v in make_event().items() if k != "video_id"})
    oversize = orjson.dumps(make_event(debug="x" * MAX_EVENT_BYTES))
    click_without_button = orjson.dumps({k: v for k, v in make_event().items() if k != "button_id"})
    lines: list[tuple[bytes, str | None]] = [
        (orjson.dumps(valid[0]), None),
        (b'{"event_id": "truncated', "malformed JSON"),
        (wrong_type, "user_id"),
        (orjson.dumps(valid[1]), None),
        (missing, "video_id: required"),
        (oversize, "larger than"),
        (b"[1, 2]", "not a JSON object"),
        (click_without_button, "button_id"),
        (orjson.dumps(valid[2]), None),
    ]
    body = b"\n\n".join(line for line, _ in lines) + b"\n"  # blank lines are not events

    response = collector.post(body, NDJSON)

    assert response.status_code == 200
    answer = response.json()
    expected_rejected = {i: why for i, (_, why) in enumerate(lines) if why is not None}
    assert answer["accepted"] + len(answer["rejected"]) == len(lines)
    assert answer["accepted"] == len(valid)
    assert {r["index"] for r in answer["rejected"]} == set(expected_rejected)
    for rejection in answer["rejected"]:
        assert expected_rejected[rejection["index"]] in rejection["error"]

    raw = collector.raw(len(valid))
    assert len(raw) == len(valid)
    by_id = {orjson.loads(payload(r))["event_id"]: r for r in raw}
    assert set(by_id) == {e["event_id"] for e in valid}
    for event in valid:
        record = by_id[event["event_id"]]
        value = orjson.loads(payload(record))
        assert record.key() == event["user_id"].encode()
        assert {k: v for k, v in value.items() if k != "received_at"} == event
        timestamp_type, timestamp_ms = record.timestamp()
        assert timestamp_type == TIMESTAMP_CREATE_TIME
        assert timestamp_ms == _ms(value["received_at"])
        assert abs(timestamp_ms - time.time() * 1000) < 60_000

    dead = collector.dlq(len(expected_rejected))
    errors = {r["index"]: r["error"] for r in answer["rejected"]}
    assert sorted(payload(d) for d in dead) == sorted(lines[i][0] for i in expected_rejected)
    for letter in dead:
        index = next(i for i in expected_rejected if lines[i][0] == letter.value())
        headers = read_headers(letter.headers())
        assert headers[HEADER_STAGE] == "collector"
        assert headers[HEADER_ERROR] == errors[index]


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gzip"])
def test_json_array_and_wrapped_shapes(collector: Running, compress: bool) -> None:
    sent: list[tuple[str, dict[str, Any]]] = []
    bad_elements: list[bytes] = []
    for shape in ("array", "wrapped"):
        good = [make_event(), make_event("impression")]
        bad = b'{ "event_type" : "click",\n   "user_id": "u-x" }'
        elements = [orjson.dumps(good[0]), bad, orjson.dumps(good[1], option=orjson.OPT_INDENT_2)]
        array = b"[\n  " + b" ,\n  ".join(elements) + b"\n]"
        body = array if shape == "array" else b'{"source": "test", "events": ' + array + b"}"
        headers = {**AUTH, "Content-Type": "application/json"}
        if compress:
            body, headers = gzip.compress(body), {**headers, "Content-Encoding": "gzip"}

        response = collector.post(body, headers)

        assert response.status_code == 200, response.text
        assert response.json()["accepted"] == 2
        assert [r["index"] for r in response.json()["rejected"]] == [1]
        sent += [(shape, e) for e in good]
        bad_elements.append(bad)

    raw = collector.raw(len(sent))
    assert sorted(orjson.loads(payload(r))["event_id"] for r in raw) == sorted(e["event_id"] for _, e in sent)
    dead = collector.dlq(len(bad_elements))
    assert [payload(d) for d in dead] == bad_elements  # the element's bytes exactly as sent


def test_write_keys(collector: Running) -> None:
    body = orjson.dumps([make_event()])
    assert collector.post(body, {}).status_code == 401
    assert collector.post(body, {"Authorization": "Bearer wrong"}).status_code == 401
    assert collector.post(body, {"Authorization": f"Bearer {READ_KEY}"}).status_code == 401
    assert collector.post(body, {}, params={"write_key": READ_KEY}).status_code == 401

    beacon = make_event()  # navigator.sendBeacon: key in the query, text/plain body, no custom headers
    response = collector.post(
        orjson.dumps(beacon), {"Content-Type": "text/plain;charset=UTF-8"}, params={"write_key": WRITE_KEY}
    )
    assert response.json() == {"accepted": 1, "rejected": []}

    (record,) = collector.raw(1)  # only the authorised request wrote anything
    assert orjson.loads(payload(record))["event_id"] == beacon["event_id"]


def test_request_limits(collector: Running) -> None:
    events = [orjson.dumps(make_event(pad="p" * 1000)) for _ in range(600)]
    big = b"\n".join(events)
    assert len(big) > MAX_REQUEST_BYTES
    assert collector.post(big, NDJSON).status_code == 413

    def chunks() -> Iterator[bytes]:  # no Content-Length: the cap applies while streaming
        for start in range(0, len(big), 16384):
            yield big[start : start + 16384]

    assert collector.post(chunks(), NDJSON).status_code == 413  # type: ignore[arg-type]

    compressed = gzip.compress(big)
    assert len(compressed) < MAX_REQUEST_BYTES
    gz = {**NDJSON, "Content-Encoding": "gzip"}
    assert collector.post(compressed, gz).status_code == 413

    bomb = gzip.compress(b" " * (200 * 1024 * 1024), compresslevel=9)
    began = time.monotonic()
    response = collector.post(bomb, gz)
    assert response.status_code == 413
    assert "decompressed" in response.json()["error"]
    assert time.monotonic() - began < 5

    fits = b"\n".join(events[:400])
    assert len(fits) < MAX_REQUEST_BYTES
    answer = collector.post(gzip.compress(fits), gz).json()
    assert answer == {"accepted": 400, "rejected": []}
    assert len(collector.raw(400)) == 400  # none of the refused requests wrote anything


def test_unreadable_bodies_are_400_and_dead_lettered(collector: Running) -> None:
    bodies = {
        b"this is not json": {**AUTH, "Content-Type": "application/json"},
        b'[{"event_id": 1}, ': {**AUTH, "Content-Type": "application/json"},
        b"\x1f\x8b\x08\x00garbage": {**AUTH, "Content-Encoding": "gzip"},
    }
    reasons = {}
    for body, headers in bodies.items():
        response = collector.post(body, headers)
        assert response.status_code == 400
        reasons[body] = response.json()["error"]
    dead = collector.dlq(len(bodies))
    assert sorted(payload(d) for d in dead) == sorted(bodies)
    for letter in dead:
        headers = read_headers(letter.headers())
        assert headers[HEADER_ERROR] == reasons[letter.value()]
        assert headers[HEADER_STAGE] == "collector"


def test_health_and_metrics(collector: Running) -> None:
    assert httpx.get(f"{collector.url}/healthz").json()["status"] == "ok"
    collector.post(orjson.dumps([make_event(), make_event(), {"nope": 1}]))
    collector.post(b"[]", {})
    metrics = httpx.get(f"{collector.url}/metrics").text
    assert 'clickpulse_collector_requests_total{status="200"} 1.0' in metrics
    assert 'clickpulse_collector_requests_total{status="401"} 1.0' in metrics
    assert 'clickpulse_collector_events_total{outcome="accepted"} 2.0' in metrics
    assert 'clickpulse_collector_events_total{outcome="rejected"} 1.0' in metrics
    assert "clickpulse_collector_produce_latency_seconds_count 1.0" in metrics
    assert 'clickpulse_collector_batch_size_events_bucket{le="5.0"} 1.0' in metrics


def test_kafka_down_is_503_with_retry_after(unique_name: Callable[[str], str]) -> None:
    settings = collector_settings(
        f"127.0.0.1:{closed_port()}",
        unique_name("raw"),
        unique_name("dlq"),
        CLICKPULSE_COLLECTOR_DELIVERY_TIMEOUT_S=1.5,
        CLICKPULSE_COLLECTOR_RETRY_AFTER_S=3,
    )
    with serve(create_app(settings)) as url:
        began = time.monotonic()
        response = httpx.post(
            f"{url}/v1/events", content=orjson.dumps([make_event()]), headers=AUTH, timeout=30
        )
        elapsed = time.monotonic() - began
        health = httpx.get(f"{url}/healthz", timeout=10)
    assert response.status_code == 503
    assert response.headers["retry-after"] == "3"
    assert "re-send the whole batch" in response.json()["retry"]
    assert elapsed < 1.5 + 3, f"503 took {elapsed:.1f}s"
    assert health.status_code == 503 and health.json()["kafka"] == "down"


def test_cli_serves_the_collector(kafka_bootstrap: str, new_topic: Callable[..., str]) -> None:
    port = closed_port()
    raw, dlq = new_topic("raw"), new_topic("dlq", partitions=1)
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "CLICKPULSE_TOPIC_RAW": raw,
        "CLICKPULSE_TOPIC_DLQ": dlq,
        "CLICKPULSE_WRITE_KEYS": WRITE_KEY,
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "clickpulse.cli", "collector", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline and process.poll() is None, "collector did not start"
            time.sleep(0.2)
        event = make_event()
        response = httpx.post(f"{url}/v1/events", content=orjson.dumps(event), headers=AUTH)
        assert response.json() == {"accepted": 1, "rejected": []}
        (record,) = read_topic(kafka_bootstrap, raw, 1)
        assert orjson.loads(payload(record))["event_id"] == event["event_id"]
    finally:
        process.terminate()
        output = process.communicate(timeout=20)[0].decode()
    assert "Application shutdown complete" in output, output  # SIGTERM: drained and flushed
