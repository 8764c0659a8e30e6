"""API benchmark: the stats endpoint against a constant endpoint of the same server, same run.

Setup: simulated traffic through Kafka and the real consumer into a private Redis prefix; the API runs
in its own process (uvicorn, one worker) with the hidden ``/bench/constant`` route enabled, which goes
through the same auth, middleware and response path but reads nothing from Redis. The load generator
(``bench/loadgen.py``) runs in another process; ``bench/api_load.py`` (shared with the recommendations
benchmark) starts both and measures:

1. Saturation: closed loop, the constant route and stats alternated back to back; ratio = stats /
   constant (target >= 0.5). Stats run twice, each on a fresh server: as configured (1 s per-process
   cache) and with the cache off.
2. Latency at half of the stats endpoint's saturation rate, open loop (latency from the scheduled send
   time): p50 and p99 for stats and for constant at the same rate (target p99 <= 25 ms).

Recommendations are measured the same way by ``bench/recs_bench.py``, on published lists.
"""

from __future__ import annotations

import logging
import os
import uuid
from typing import Any

from bench.api_load import compare_with_constant, comparison_rows, free_port, start_api, stop_api
from clickpulse.settings import Settings, get_settings

logger = logging.getLogger(__name__)

READ_KEY = "bench-read-key"


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
    """The private topics (the keys go with the private redis-server)."""
    from clickpulse.stack.topics import delete_topics

    topics = [settings.topic_raw, settings.topic_enriched, settings.topic_dlq]
    delete_topics(settings.kafka_bootstrap_servers, topics)


def _measure(env: dict[str, str], videos: list[str], label: str) -> list[dict[str, Any]]:
    """Stats against /bench/constant on one fresh server."""
    port = free_port()
    process = start_api(env, port)
    try:
        measured = compare_with_constant(process, port, [f"/v1/videos/{v}/stats" for v in videos], READ_KEY)
    finally:
        stop_api(process)
    cache = env.get("CLICKPULSE_API_STATS_CACHE_MS", str(Settings.model_fields["api_stats_cache_ms"].default))
    setup = f"1 uvicorn worker, {len(videos)} video ids in turn, CLICKPULSE_API_STATS_CACHE_MS={cache}"
    return comparison_rows(f"stats{label}", measured, setup)


def run(events: int = 20_000) -> list[dict[str, Any]]:
    """On a redis-server of the benchmark's own: on the shared one, other work (another consumer's
    multi-millisecond Lua batches) queues ahead of the reads being timed, which the constant route
    never waits for."""
    from bench.consumer_bench import private_redis

    base = get_settings()
    name = f"bench-api-{uuid.uuid4().hex[:8]}"
    rows: list[dict[str, Any]] = []
    with private_redis() as redis_url:
        env_overrides = {
            "KAFKA_BOOTSTRAP_SERVERS": base.kafka_bootstrap_servers,
            "REDIS_URL": redis_url,
            "CLICKPULSE_REDIS_PREFIX": name,
            "CLICKPULSE_LIVE_CHANNEL_PREFIX": name,
            "CLICKPULSE_TOPIC_RAW": f"{name}.raw",
            "CLICKPULSE_TOPIC_ENRICHED": f"{name}.enriched",
            "CLICKPULSE_TOPIC_DLQ": f"{name}.dlq",
            "CLICKPULSE_CONSUMER_GROUP": f"{name}.realtime",
            "CLICKPULSE_CONSUMER_METRICS_PORT": "0",
            "CLICKPULSE_READ_KEYS": READ_KEY,
            "CLICKPULSE_API_BENCH_ROUTES": "true",
            "CLICKPULSE_REDIS_ACL": "0",  # the private server has no ACL users (on_private_redis)
        }
        settings = Settings(**env_overrides)  # type: ignore[arg-type]
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
