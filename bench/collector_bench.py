"""Collector throughput with batches of 100 events, against the Kafka producer alone on the same topic.

The collector runs as it does in production (``clickpulse collector``, one uvicorn worker, its own
process) and is driven by concurrent HTTP clients posting pre-built NDJSON batches, so the clients'
JSON work is not measured. Baselines, in the same run and on the same private topic:

- the confluent-kafka producer alone (same config as the collector's) producing the same event bytes;
- optionally Kafka's own ``ProducerPerformance`` (kafka-producer-perf-test) with the same producer
  settings, when Java and the stack's cached Kafka jars are present.

The ratio says what HTTP, per-event validation and per-request delivery confirmation cost relative to
writing to Kafka directly. ``python -m bench collector_bench``; env ``CLICKPULSE_BENCH_COLLECTOR_EVENTS``
(default 100000) and ``CLICKPULSE_BENCH_COLLECTOR_CLIENTS`` (default 8).
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import orjson

from clickpulse.settings import Settings, get_settings
from clickpulse.stack.processes import log_tail

logger = logging.getLogger(__name__)

BATCH = 100
WRITE_KEY = "bench-write-key"


def _events(count: int) -> list[bytes]:
    base = int(time.time() * 1000)
    out = []
    for i in range(count):
        event = {
            "event_id": str(uuid.uuid4()),
            "event_type": "click",
            "event_time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime((base + i) / 1000)) + ".000Z",
            "user_id": f"u{i % 5000}",
            "session_id": f"s{i % 20000}",
            "video_id": f"v{i % 800}",
            "button_id": ("play", "pause", "like", "seek_forward", "rec_tile")[i % 5],
            "playback_position_s": float(i % 3600),
            "surface": "home",
            "device": "web",
            "app_version": "5.2.1",
        }
        out.append(orjson.dumps(event))
    return out


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_collector(
    settings: Settings, raw: str, dlq: str, log: Path | None = None
) -> tuple[subprocess.Popen[bytes], str]:
    """``clickpulse collector`` on a free port, once /healthz answers; its stderr goes to ``log`` when
    given (a long run must not fill an unread pipe), else to a pipe read if it exits early."""
    port = _free_port()
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "CLICKPULSE_TOPIC_RAW": raw,
        "CLICKPULSE_TOPIC_DLQ": dlq,
        "CLICKPULSE_WRITE_KEYS": WRITE_KEY,
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "clickpulse.cli", "collector", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log.open("ab") if log is not None else subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            error = process.stderr.read().decode() if process.stderr else log_tail(log or "")
            raise RuntimeError(f"collector exited: {error}")
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return process, url
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    process.kill()
    raise RuntimeError("collector did not become healthy")


async def _drive(url: str, bodies: list[bytes], clients: int) -> tuple[float, list[float], int]:
    """Post every body with ``clients`` concurrent connections; returns (seconds, latencies, accepted)."""
    latencies: list[float] = []
    accepted = 0
    next_body = iter(bodies)
    headers = {"Authorization": f"Bearer {WRITE_KEY}", "Content-Type": "application/x-ndjson"}

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal accepted
        for body in next_body:
            began = time.perf_counter()
            response = await client.post(f"{url}/v1/events", content=body, headers=headers)
            latencies.append(time.perf_counter() - began)
            response.raise_for_status()
            accepted += int(response.json()["accepted"])

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:
        began = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(clients)))
        return time.perf_counter() - began, latencies, accepted


def _producer_alone(settings: Settings, topic: str, events: list[bytes]) -> float:
    from confluent_kafka import Producer

    from streaming.collector.app import collector_producer_config

    producer = Producer(collector_producer_config(settings))
    producer.produce(topic, value=events[0], key=b"warm-up")
    producer.flush(30)
    began = time.perf_counter()
    for i, value in enumerate(events):
        while True:
            try:
                producer.produce(topic, value=value, key=f"u{i % 5000}".encode())
                break
            except BufferError:
                producer.poll(0.01)
        if i % 1000 == 0:
            producer.poll(0)
    remaining = producer.flush(60)
    elapsed = time.perf_counter() - began
    if remaining:
        raise RuntimeError(f"{remaining} records not delivered by the producer baseline")
    return len(events) / elapsed


def _kafka_libs(settings: Settings) -> Path | None:
    for root in (settings.cache_dir, Path(__file__).resolve().parent.parent / ".cache"):
        for libs in sorted(root.glob("kafka-libs-*")):
            if any(libs.glob("kafka-tools-*.jar")):
                return libs
    return None


def _perf_test(settings: Settings, topic: str, records: int, record_size: int) -> float | None:
    libs = _kafka_libs(settings)
    if libs is None or shutil.which("java") is None:
        logger.info("java or the cached Kafka jars are missing: kafka-producer-perf-test skipped")
        return None
    command = [
        "java",
        "-Xmx512m",
        "-cp",
        f"{libs}/*",
        "org.apache.kafka.tools.ProducerPerformance",
        "--topic",
        topic,
        "--num-records",
        str(records),
        "--record-size",
        str(record_size),
        "--throughput",
        "-1",
        "--producer-props",
        f"bootstrap.servers={settings.kafka_bootstrap_servers}",
        "acks=all",
        "enable.idempotence=true",
        "linger.ms=5",
        "compression.type=lz4",
        "batch.size=524288",
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    match = re.findall(r"([\d.]+) records/sec", result.stdout)
    if result.returncode != 0 or not match:
        logger.warning("ProducerPerformance failed: %s", (result.stderr or result.stdout)[-500:])
        return None
    return float(match[-1])


def run() -> list[dict[str, Any]]:
    from confluent_kafka.admin import AdminClient

    from clickpulse.stack.topics import ensure_topics

    logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per request otherwise
    settings = get_settings()
    count = int(os.environ.get("CLICKPULSE_BENCH_COLLECTOR_EVENTS", "100000"))
    clients = int(os.environ.get("CLICKPULSE_BENCH_COLLECTOR_CLIENTS", "8"))
    suffix = uuid.uuid4().hex[:8]
    raw, dlq = f"bench.collector.raw.{suffix}", f"bench.collector.dlq.{suffix}"
    ensure_topics(settings.kafka_bootstrap_servers, {raw: settings.topic_partitions, dlq: 1})
    events = _events(count)
    bodies = [b"\n".join(events[i : i + BATCH]) for i in range(0, count, BATCH)]
    mean_size = sum(map(len, events)) // len(events)
    try:
        process, url = start_collector(settings, raw, dlq)
        try:
            asyncio.run(_drive(url, bodies[:20], clients))  # warm-up: connections, producer metadata
            seconds, latencies, accepted = asyncio.run(_drive(url, bodies, clients))
        finally:
            process.terminate()
            process.wait(timeout=30)
        if accepted != count:
            raise RuntimeError(f"collector accepted {accepted} of {count} events")
        collector_eps = count / seconds
        producer_eps = _producer_alone(settings, raw, events)
        perf_eps = _perf_test(settings, raw, count, mean_size)
    finally:
        admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap_servers})
        for future in admin.delete_topics([raw, dlq], operation_timeout=10).values():
            future.result(timeout=15)

    latencies.sort()
    p50 = statistics.median(latencies) * 1000
    p99 = latencies[int(len(latencies) * 0.99) - 1] * 1000
    note = f"{count} events of ~{mean_size} B, {clients} concurrent clients, 1 uvicorn worker"
    rows: list[dict[str, Any]] = [
        {
            "name": "collector events/s, batches of 100 (vs confluent-kafka producer alone)",
            "value": collector_eps,
            "baseline": producer_eps,
            "ratio": collector_eps / producer_eps,
            "unit": "events/s",
            "note": note + "; baseline: same bytes, same topic, same producer config",
        },
        {
            "name": "collector request latency p99 (batch of 100, acked by Kafka)",
            "value": p99,
            "baseline": None,
            "ratio": None,
            "unit": "ms",
            "note": f"p50 {p50:.1f} ms, under the load above",
        },
    ]
    if perf_eps is not None:
        rows.append(
            {
                "name": "collector events/s (vs kafka-producer-perf-test)",
                "value": collector_eps,
                "baseline": perf_eps,
                "ratio": collector_eps / perf_eps,
                "unit": "events/s",
                "note": f"ProducerPerformance, {count} records of {mean_size} B, acks=all, idempotent, lz4",
            }
        )
    return rows


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    for row in run():
        print(row)
