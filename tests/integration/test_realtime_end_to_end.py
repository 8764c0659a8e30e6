"""Issue 3's main promise: simulator → Python SDK → collector → Kafka → consumer → Redis equals the truth."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from streaming.collector import create_app
from streaming.kafka_io import end_offsets
from streaming.keyspace import Keyspace
from streaming.redis_conn import RedisRouter
from streaming.sdk import ClickPulseClient
from streaming.simulator import SimulationConfig, Simulator, backfill_window
from tests.integration.consumer_support import compare_with_simulator_truth
from tests.serving_support import (
    ConsumerThread,
    Private,
    cleanup,
    private_settings,
    send_simulated,
    serving,
)


@pytest.fixture
def private(kafka_bootstrap: str, redis_url: str) -> Iterator[Private]:
    made = private_settings(kafka_bootstrap, redis_url, "e2e")
    yield made
    cleanup(made)


def test_sdk_collector_consumer_counts_equal_the_simulator_truth(private: Private) -> None:
    settings = private.settings
    start, end = backfill_window(2)
    simulator = Simulator(
        SimulationConfig(users=200, videos=50, events=4000, seed=11, start=start, end=end),
        wall_clock=time.time,
    )
    consumer = ConsumerThread(settings, batch_size=500).start()
    try:
        with serving(create_app(settings)) as collector:
            client = ClickPulseClient(f"{collector.url}", "test-write-key", 200, 0.2)
            sent = send_simulated(simulator, client, settings.allowed_lateness_minutes)
            assert client.flush(60)
            client.close()
            stats = client.stats
        truth = simulator.truth.to_dict()["totals"]
        # Every record the SDK sent was answered: valid ones accepted, malformed ones rejected.
        assert stats["accepted"] == sent.valid
        assert stats["rejected"] == truth["malformed"]
        assert stats["failed"] == 0

        raw_records = sum(end_offsets(settings.kafka_bootstrap_servers, settings.topic_raw).values())
        assert raw_records == sent.valid
        consumer.wait_for(raw_records, timeout_s=120)
    finally:
        consumer.stop()

    router = RedisRouter.from_settings(settings)
    problems = compare_with_simulator_truth(
        router, Keyspace.from_settings(settings), simulator.truth, hours_truth=sent.on_time
    )
    assert problems == [], problems[:20]
    dlq_records = sum(end_offsets(settings.kafka_bootstrap_servers, settings.topic_dlq).values())
    assert dlq_records == truth["malformed"]
