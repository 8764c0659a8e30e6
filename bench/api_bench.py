"""API benchmark: stats (and recommendations, when the API has them) against a constant endpoint.

Setup: simulated traffic through Kafka and the real consumer into a private Redis prefix; the API runs
in its own process (uvicorn, one worker) with the hidden ``/bench/constant`` route enabled, which goes
through the same auth, middleware and serialisation but reads nothing from Redis. The load generator
(``bench/loadgen.py``) runs in another process.

1. Saturation: closed loop with 32 connections for each endpoint in turn; ratio = endpoint / constant
   (target >= 0.5). Stats run twice: as configured (1 s per-process cache) and with the cache off.
2. Latency at half of the stats endpoint's saturation rate, open loop (latency from the scheduled send
   time): p50 and p99 for stats and for constant at the same rate (target p99 <= 25 ms).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from typing import Any

import httpx

from clickpulse.settings import PROJECT_ROOT, Settings, get_settings
from streaming.redis_roles import Role, settings_as

logger = logging.getLogger(__name__)

READ_KEY = "bench-read-key"
CONNECTIONS = 32
SATURATION_S = 8.0
LATENCY_S = 10.0
TARGET_RATIO = 0.5
TARGET_P99_MS = 25.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _fill(settings: Settings, events: int) -> list[str]:
    """Simulated backfill → private topic → the real consumer → Redis; returns the video ids."""
    from clickpulse.stack.topics import ensure_topics
    from streaming.consumer import RealtimeConsumer
    from streaming.replay import write_to_kafka
    from streaming.simulator import SimulationConfig, Simulator, backfill_window

    ensure_topics(settings.kafka_bootstrap_servers, {settings.topic_raw: 3, settings.topic_enriched: 3})
    ensure_topics(settings.kafka_bootstrap_servers, {settings.topic_dlq: 1})
    start, end = backfill_window(3)
    sim = Simulator(SimulationConfig(events=events, seed=9, start=start, end=end, users=2000, videos=300))
    records = list(sim)
    report = write_to_kafka(
        records, {"bootstrap.servers": settings.kafka_bootstrap_servers}, settings.topic_raw, True
    )
    if not report.ok:
        raise RuntimeError(f"backfill failed: {report.errors[:3]}")
    consumer = RealtimeConsumer(settings, batch_size=2000)
    try:
        consumer.run(stop_when=lambda s: s.records >= len(records), idle_timeout_s=30)
    finally:
        consumer.close()
    return sorted(sim.truth.to_dict()["videos"])


def _cleanup(settings: Settings) -> None:
    import redis

    from clickpulse.stack.topics import delete_topics

    client = redis.Redis.from_url(settings.redis_url)
    keys = list(client.scan_iter(match=f"{settings.redis_prefix}:*", count=1000))
    for i in range(0, len(keys), 500):
        client.unlink(*keys[i : i + 500])
    client.close()
    topics = [settings.topic_raw, settings.topic_enriched, settings.topic_dlq]
    delete_topics(settings.kafka_bootstrap_servers, topics)


def _start_api(env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "serving.app:create_app_from_env",
        "--factory",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--no-access-log",
    ]
    process = subprocess.Popen(command, env=env, cwd=PROJECT_ROOT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        if process.poll() is not None:
            raise RuntimeError(f"the API exited with {process.returncode}")
        time.sleep(0.2)
    process.terminate()
    raise RuntimeError("the API did not start within 30 s")


def _load(port: int, paths: list[str], *, duration_s: float, rate: float = 0.0) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as handle:
        handle.write("\n".join(paths))
        paths_file = handle.name
    try:
        command = [
            sys.executable,
            "-m",
            "bench.loadgen",
            "--url",
            f"http://127.0.0.1:{port}",
            "--paths-file",
            paths_file,
            "--header",
            f"Authorization: Bearer {READ_KEY}",
            "--connections",
            str(CONNECTIONS if not rate else 64),
            "--duration",
            str(duration_s),
        ]
        if rate:
            command += ["--rate", f"{rate:.1f}"]
        out = subprocess.run(command, capture_output=True, text=True, check=True, cwd=PROJECT_ROOT)
        result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    finally:
        os.unlink(paths_file)
    if result["ok"] != result["requests"] or result["errors"]:
        raise RuntimeError(f"failed requests during the load on {paths[0]}: {result}")
    return result


def _row(name: str, value: float, baseline: float, unit: str, note: str) -> dict[str, Any]:
    return {
        "name": name,
        "value": value,
        "baseline": baseline,
        "ratio": value / baseline if baseline else None,
        "unit": unit,
        "note": note,
    }


def _measure(env: dict[str, str], videos: list[str], label: str) -> list[dict[str, Any]]:
    """Saturation and half-saturation latency of each target against /bench/constant, one server."""
    rows: list[dict[str, Any]] = []
    port = _free_port()
    process = _start_api(env, port)
    try:
        routes = httpx.get(f"http://127.0.0.1:{port}/openapi.json").json()["paths"]
        targets = {f"stats{label}": [f"/v1/videos/{v}/stats" for v in videos]}
        if "/v1/recommendations/{user_id}" in routes:
            targets[f"recommendations{label}"] = [
                f"/v1/recommendations/u{i:05d}?k=10" for i in range(1, 2001)
            ]
        constant = ["/bench/constant"]
        saturation = {"constant": _load(port, constant, duration_s=SATURATION_S)}
        for target, paths in targets.items():
            saturation[target] = _load(port, paths, duration_s=SATURATION_S)
        base_rps = saturation["constant"]["rps"]
        for target in targets:
            rps = saturation[target]["rps"]
            met = "met" if rps / base_rps >= TARGET_RATIO else "MISSED"
            rows.append(
                _row(
                    f"api {target} saturation throughput",
                    rps,
                    base_rps,
                    "req/s",
                    f"vs /bench/constant, {CONNECTIONS} connections, 1 uvicorn worker, "
                    f"{len(targets[target])} ids in turn; target ratio >= {TARGET_RATIO} ({met})",
                )
            )
        for target, paths in targets.items():
            rate = saturation[target]["rps"] / 2
            loaded = _load(port, paths, duration_s=LATENCY_S, rate=rate)
            reference = _load(port, constant, duration_s=LATENCY_S, rate=rate)
            rows.append(
                _row(
                    f"api {target} p50 at half saturation",
                    loaded["p50_ms"],
                    reference["p50_ms"],
                    "ms",
                    f"open loop at {rate:.0f} req/s; baseline = /bench/constant at the same rate",
                )
            )
            met = "met" if loaded["p99_ms"] <= TARGET_P99_MS else "MISSED"
            rows.append(
                _row(
                    f"api {target} p99 at half saturation",
                    loaded["p99_ms"],
                    reference["p99_ms"],
                    "ms",
                    f"open loop at {rate:.0f} req/s; target p99 <= {TARGET_P99_MS:.0f} ms ({met})",
                )
            )
    finally:
        process.terminate()
        process.wait(10)
    return rows


def run(events: int = 20_000) -> list[dict[str, Any]]:
    base = settings_as(get_settings(), Role.ADMIN)  # the stack's Redis; private prefixes need admin
    name = f"bench-api-{uuid.uuid4().hex[:8]}"
    env_overrides = {
        "KAFKA_BOOTSTRAP_SERVERS": base.kafka_bootstrap_servers,
        "REDIS_URL": base.redis_url,
        "CLICKPULSE_REDIS_PREFIX": name,
        "CLICKPULSE_LIVE_CHANNEL_PREFIX": name,
        "CLICKPULSE_TOPIC_RAW": f"{name}.raw",
        "CLICKPULSE_TOPIC_ENRICHED": f"{name}.enriched",
        "CLICKPULSE_TOPIC_DLQ": f"{name}.dlq",
        "CLICKPULSE_CONSUMER_GROUP": f"{name}.realtime",
        "CLICKPULSE_CONSUMER_METRICS_PORT": "0",
        "CLICKPULSE_READ_KEYS": READ_KEY,
        "CLICKPULSE_API_BENCH_ROUTES": "true",
    }
    settings = Settings(**env_overrides)  # type: ignore[arg-type]
    rows: list[dict[str, Any]] = []
    try:
        videos = _fill(settings, events)
        for label, cache_ms in (("", None), (" uncached", "0")):
            env = {**os.environ, **env_overrides}
            if cache_ms is not None:
                env["CLICKPULSE_API_STATS_CACHE_MS"] = cache_ms
            rows.extend(_measure(env, videos, label))
    finally:
        _cleanup(settings)
    return rows


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    for row in run():
        print(row)
