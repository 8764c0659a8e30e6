"""Faults during a live ingest: every count still equals the simulator's ground truth, exactly once.

Simulator → Python SDK → collector (in process) → Kafka → consumer (its own process) → Redis, on a Kafka
and Redis this test starts for itself (``own_stack``). While the SDK sends ``CLICKPULSE_FAULTS_EVENTS``
records (default 200,000) paced over ``CLICKPULSE_FAULTS_SECONDS`` (default 150; ``make soak`` runs a
longer variant), the test

- SIGKILLs the consumer five times, starting a new one each time (two of the kills hit a consumer
  that is still working through the backlog its killed predecessor left);
- stops the Kafka broker and starts it again;
- stops Redis and starts it again (AOF, fsync every second: counters, offset watermarks and the
  event_id seen-set, with their TTLs, come back as they were).

What each component does meanwhile, as pinned here:

- Consumer killed: the batch in flight never stored its offsets; the next member of the group takes
  the partitions over once the dead one's session times out (6 s) and replays from the last committed
  offset. The per-partition offset watermarks in Redis skip every record already applied, and the
  event_id seen-set drops re-sent duplicates, so the replay counts nothing twice.
- Kafka down: the collector cannot get a delivery confirmation within its delivery timeout, answers
  503 with ``Retry-After`` and acknowledges nothing of that request; the SDK re-sends the whole batch
  with backoff until it gets a 200. Records of a refused request that did reach Kafka become
  duplicates on ``clicks.raw``, dropped by the consumer's event_id dedupe. The consumer's batch in
  flight cannot produce its enriched records, fails and is retried whole; no offset is stored meanwhile.
- Redis down: the consumer's Lua call fails with a connection error. The consumer does not store the
  batch's offsets and does not fetch further batches: it retries the same batch (backoff up to 5 s)
  until Redis answers, then stores the offsets. The test checks that the group's committed offsets
  stand still while Redis is down although records are waiting. The collector does not use Redis and
  keeps accepting events.

Afterwards: the SDK gave up on nothing, saw at least one 503, and every per-video, per-hour,
per-button, per-surface and per-slot count equals the truth (0 lost, 0 double counted).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from pathlib import Path

import pytest

from clickpulse.settings import Settings
from clickpulse.stack import launcher
from clickpulse.stack.processes import log_tail, stop
from streaming.collector import create_app
from streaming.collector.app import Collector
from streaming.kafka_io import committed_offsets, end_offsets, group_lag, wait_caught_up
from streaming.keyspace import Keyspace
from streaming.redis_conn import RedisRouter
from streaming.replay import throttle
from streaming.sdk import ClickPulseClient
from streaming.simulator import SimulationConfig, Simulator, backfill_window
from tests.integration.consumer_support import (
    compare_with_simulator_truth,
    consumer_env,
    counted,
    start_consumer_process,
    wait_until,
)
from tests.serving_support import Private, SentTraffic, private_settings, send_simulated, serving

EVENTS = int(os.environ.get("CLICKPULSE_FAULTS_EVENTS", "200000"))
# The SDK is fed at EVENTS / SECONDS records per second, so the faults land mid-ingest whatever EVENTS is.
SECONDS = float(os.environ.get("CLICKPULSE_FAULTS_SECONDS", "150"))
CONSUMER_KILLS = 5
# When each fault starts, as the share of the records the collector answered; the gaps leave room for
# what a fault takes here (a kill about 10 s: the dead member's session times out; Kafka about 30 s).
# A kill at the same share as the one before it waits only until the new consumer counted its first
# batch, so it lands while that consumer works through the backlog the previous kill left.
SCHEDULE = (
    (0.04, "kill"),
    (0.04, "kill"),
    (0.18, "kafka"),
    (0.42, "kill"),
    (0.50, "redis"),
    (0.64, "kill"),
    (0.64, "kill"),
)

pytestmark = pytest.mark.timeout(max(600, 3 * SECONDS))


@pytest.fixture
def private(own_stack: Settings) -> Iterator[Private]:
    """Topics, group and key prefix on the test's own stack; the stack goes away with its data."""
    yield private_settings(
        own_stack.kafka_bootstrap_servers,
        own_stack.redis_url,
        "faults",
        partitions=own_stack.topic_partitions,
        CLICKPULSE_DATA_DIR=own_stack.data_dir,
        CLICKPULSE_CACHE_DIR=own_stack.cache_dir,
        # a short delivery timeout, so a request that reached a dead broker is answered 503 quickly
        CLICKPULSE_COLLECTOR_DELIVERY_TIMEOUT_S=3,
        CLICKPULSE_CONSUMER_SESSION_TIMEOUT_MS=6000,
    )


class Chaos:
    """The faults, each injected only after the consumer counted something since the previous one ended."""

    def __init__(self, stack: Settings, settings: Settings, collector: Collector, log: Path) -> None:
        self.stack = stack
        self.settings = settings
        self.collector = collector
        self.log = log
        self.env = consumer_env(settings, settings.redis_prefix)
        self.router = RedisRouter.from_settings(settings)
        self.keyspace = Keyspace.from_settings(settings)
        self.consumer = self._start_consumer()
        self.kills = 0
        self.lag_at_kills: list[int] = []
        self.unavailable_during_kafka_outage = 0
        self.retried_batches_during_redis_outage = 0
        self.waiting_during_redis_outage = 0
        self._counted_before = 0
        self.timings: list[str] = []  # each fault, with the wait for progress before it

    def _start_consumer(self) -> subprocess.Popen[bytes]:
        return start_consumer_process(self.env, self.settings.consumer_group, batch_size=1000, log=self.log)

    def _alive(self) -> None:
        assert self.consumer.poll() is None, f"the consumer died by itself:\n{log_tail(self.log, 60)}"

    def wait_for_progress(self) -> None:
        """The consumer counted more events than when the previous fault ended (so it runs, owns
        partitions and has work)."""
        before = self._counted_before

        def progressed() -> bool:
            self._alive()
            return counted(self.router, self.keyspace) > before

        wait_until(progressed, 180, "the consumer counting more events")

    def inject(self, fault: str) -> None:
        began = time.monotonic()
        self.wait_for_progress()
        {"kill": self.kill_consumer, "kafka": self.restart_kafka, "redis": self.restart_redis}[fault]()
        self._counted_before = counted(self.router, self.keyspace)
        self.timings.append(f"{fault} {time.monotonic() - began:.1f}s")

    def kill_consumer(self) -> None:
        self._alive()
        self.consumer.send_signal(signal.SIGKILL)
        self.consumer.wait(30)
        self.kills += 1
        self.lag_at_kills.append(self.lag())
        self.consumer = self._start_consumer()

    def lag(self) -> int:
        s = self.settings
        return group_lag(s.kafka_bootstrap_servers, s.consumer_group, s.topic_raw)

    def unavailable(self) -> int:
        """503 answers the collector gave so far (its own Prometheus counter)."""
        sample = self.collector.metrics.registry.get_sample_value(
            "clickpulse_collector_requests_total", {"status": "503"}
        )
        return int(sample or 0)

    def restart_kafka(self) -> None:
        before = self.unavailable()
        assert stop(self.stack.data_dir, "kafka-1")
        wait_until(lambda: self.unavailable() > before, 120, "a 503 from the collector while Kafka is down")
        self.unavailable_during_kafka_outage = self.unavailable() - before
        launcher.up(self.stack)

    def _retry_lines(self) -> int:
        return self.log.read_text(errors="replace").count("batch failed")

    def restart_redis(self) -> None:
        bootstrap, group, topic = (
            self.settings.kafka_bootstrap_servers,
            self.settings.consumer_group,
            self.settings.topic_raw,
        )
        retries_before = self._retry_lines()
        assert stop(self.stack.data_dir, "redis")
        wait_until(lambda: self._retry_lines() > retries_before, 60, "the consumer retrying a batch")
        # librdkafka commits stored offsets every second: what was stored before the outage is in by now
        time.sleep(2.5)
        frozen = committed_offsets(bootstrap, group, topic)
        time.sleep(4)
        still = committed_offsets(bootstrap, group, topic)
        assert still == frozen, "offsets moved while Redis refused every batch"
        self.waiting_during_redis_outage = self.lag()
        assert self.waiting_during_redis_outage > 0, "records should be waiting while Redis is down"
        self._alive()
        self.retried_batches_during_redis_outage = self._retry_lines() - retries_before
        launcher.up(self.stack)

    def stop_consumer(self) -> int:
        self.consumer.send_signal(signal.SIGTERM)
        return self.consumer.wait(60)

    def close(self) -> None:
        if self.consumer.poll() is None:
            self.consumer.kill()
            self.consumer.wait(30)
        self.router.close()


def _feed(
    simulator: Simulator, client: ClickPulseClient, lateness_minutes: int, sent: SentTraffic
) -> tuple[ThreadPoolExecutor, Future[SentTraffic]]:
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="feeder")
    records = throttle(simulator, EVENTS / SECONDS)
    return pool, pool.submit(send_simulated, records, client, lateness_minutes, sent)


def _answered(client: ClickPulseClient) -> int:
    """Records the collector answered (accepted or rejected): the ingest's progress."""
    return client.stats["sent"]


def _answered_at_least(client: ClickPulseClient, count: float) -> bool:
    return _answered(client) >= count


def test_counts_exact_through_consumer_kills_and_kafka_and_redis_restarts(
    own_stack: Settings, private: Private, tmp_path: Path
) -> None:
    settings = private.settings
    start, end = backfill_window(2)
    simulator = Simulator(
        SimulationConfig(users=2000, videos=200, events=EVENTS, seed=77, start=start, end=end),
        wall_clock=time.time,
    )
    app = create_app(settings)
    chaos = Chaos(own_stack, settings, app.state.collector, tmp_path / "consumer.log")
    began = time.monotonic()
    try:
        with serving(app) as server:
            client = ClickPulseClient(
                server.url,
                "test-write-key",
                batch_size=500,
                flush_interval_s=0.2,
                max_queue=2_000,
                max_retries=100_000,  # an outage is waited out, never given up on
                backoff_max_s=2.0,
                enqueue_timeout_s=600,
            )
            sent = SentTraffic()
            pool, feeding = _feed(simulator, client, settings.allowed_lateness_minutes, sent)
            for share, fault in SCHEDULE:
                due = share * EVENTS
                wait_until(partial(_answered_at_least, client, due), 2 * SECONDS, f"{share:.0%} answered")
                assert _answered(client) < EVENTS, f"the ingest ended before the {fault} fault"
                chaos.inject(fault)
            feeding.result(timeout=900)
            pool.shutdown()
            assert client.flush(600), client.stats
            client.close()
            ingest_s = time.monotonic() - began
        stats = client.stats
        wait_caught_up(settings.kafka_bootstrap_servers, settings.consumer_group, settings.topic_raw, 600)
        assert chaos.stop_consumer() == 0, log_tail(chaos.log, 60)
        total_s = time.monotonic() - began

        truth = simulator.truth.to_dict()["totals"]
        print(
            f"\n{EVENTS} records: sent in {ingest_s:.0f}s, counted after {total_s:.0f}s; "
            f"faults (with the wait before each) {', '.join(chaos.timings)}; lag at each kill "
            f"{chaos.lag_at_kills}; SDK {stats}; 503s during the Kafka outage "
            f"{chaos.unavailable_during_kafka_outage}; records waiting / batch retries while Redis "
            f"was down {chaos.waiting_during_redis_outage} / {chaos.retried_batches_during_redis_outage}"
        )
        assert chaos.kills == CONSUMER_KILLS
        # The SDK delivered everything: valid records accepted, malformed ones rejected, none given up.
        assert stats["failed"] == 0
        assert stats["accepted"] == sent.valid
        assert stats["rejected"] == truth["malformed"] == sent.malformed
        # The collector answered 503 while Kafka was down, and the SDK retried those batches.
        assert chaos.unavailable_during_kafka_outage >= 1
        assert stats["retries"] >= chaos.unavailable_during_kafka_outage
        # clicks.raw holds every accepted record, plus the parts of refused batches Kafka did take.
        raw = sum(end_offsets(settings.kafka_bootstrap_servers, settings.topic_raw).values())
        assert raw >= sent.valid

        # 0 lost, 0 double counted: the global total is the number of distinct valid events ...
        assert counted(chaos.router, chaos.keyspace) == truth["valid"]
        # ... and every family the simulator keeps a truth for matches it.
        problems = compare_with_simulator_truth(
            chaos.router, chaos.keyspace, simulator.truth, hours_truth=sent.on_time
        )
        assert problems == [], problems[:20]
    finally:
        chaos.close()
