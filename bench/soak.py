"""`make soak`: a long run at half the sustainable rate, with flat consumer lag and flat memory.

The whole path runs as in production: simulated live traffic (wall clock) → Python SDK → ``clickpulse
collector`` (its own process) → Kafka (the local stack, private topics) → ``clickpulse consumer`` (its
own process) → a private redis-server (same config as the stack). Two phases:

1. Ramp: the offered rate grows by half every ``CLICKPULSE_SOAK_STEP_S`` seconds (default 12) from
   500 records/s. A step is sustained when the collector answered at least 95% of the offered records
   and the consumer lag grew by less than two seconds of traffic (committed offsets move once a
   second); the sustainable maximum is the last sustained step.
2. Soak: ``CLICKPULSE_SOAK_SECONDS`` (default 600) at half that rate. Every ``CLICKPULSE_SOAK_SAMPLE_S``
   seconds: the group's lag (end offsets - committed offsets of clicks.raw) and the resident memory
   (VmRSS) of the consumer and the collector processes.

Verdict, by least squares over the samples: lag is flat when the fitted growth over the run stays
below ``CLICKPULSE_SOAK_LAG_TOLERANCE_S`` seconds of traffic (default 2); memory is flat when the
fitted growth after the warm-up (the first 20% of the run, at least 30 s) stays below
``CLICKPULSE_SOAK_MEMORY_TOLERANCE_MIB`` (default 16) or 5% of the mean, whichever is larger. After
the load stops the consumer drains and the Redis total must equal the simulator's count of distinct
valid events. Results go to ``bench/soak-results.md``; the exit code is 1 when a check fails.
"""

from __future__ import annotations

import logging
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bench.__main__ import exit_on_sigterm, machine_details
from bench.collector_bench import WRITE_KEY, start_collector
from bench.consumer_bench import on_private_redis, private_redis, private_topics
from clickpulse.settings import PROJECT_ROOT, Settings, get_settings
from clickpulse.stack.processes import log_tail
from streaming.kafka_io import group_lag, wait_caught_up
from streaming.keyspace import Keyspace, read_global
from streaming.redis_conn import RedisRouter
from streaming.sdk import ClickPulseClient
from streaming.simulator import SimulatedRecord, SimulationConfig, Simulator, backfill_window

logger = logging.getLogger(__name__)

RESULTS = Path(__file__).with_name("soak-results.md")
FULL_SOAK_S = 600.0


@dataclass(frozen=True)
class SoakConfig:
    seconds: float = FULL_SOAK_S
    sample_s: float = 5
    step_s: float = 12
    start_rate: float = 500
    max_rate: float = 50_000
    lag_tolerance_s: float = 2
    memory_tolerance_mib: float = 16
    memory_tolerance_share: float = 0.05
    growth: float = 1.5

    @classmethod
    def from_env(cls) -> SoakConfig:
        """``CLICKPULSE_SOAK_<FIELD>`` overrides a field, e.g. ``CLICKPULSE_SOAK_SECONDS=120``."""
        names = ("seconds", "sample_s", "step_s", "start_rate", "max_rate", "lag_tolerance_s")
        found = {
            n: float(os.environ[f"CLICKPULSE_SOAK_{n.upper()}"])
            for n in names
            if f"CLICKPULSE_SOAK_{n.upper()}" in os.environ
        }
        if "CLICKPULSE_SOAK_MEMORY_TOLERANCE_MIB" in os.environ:
            found["memory_tolerance_mib"] = float(os.environ["CLICKPULSE_SOAK_MEMORY_TOLERANCE_MIB"])
        return cls(**found)


@dataclass(frozen=True)
class Step:
    offered: float
    answered: float  # records/s the collector answered
    lag_growth: int
    sustained: bool


@dataclass(frozen=True)
class Sample:
    t: float
    answered: int
    lag: int
    consumer_mib: float
    collector_mib: float


@dataclass
class Fit:
    """Least-squares line through (t, y): ``slope`` per second; ``growth`` over the fitted span."""

    slope: float
    growth: float
    mean: float

    @classmethod
    def of(cls, ts: list[float], ys: list[float]) -> Fit:
        if len(ts) < 3:
            raise ValueError("need at least three samples to fit a line")
        slope, _intercept = statistics.linear_regression(ts, ys)
        return cls(slope, slope * (ts[-1] - ts[0]), statistics.fmean(ys))


class Load(threading.Thread):
    """Feeds the SDK from the simulator at ``rate`` records per second; the rate may change any time.
    When the SDK's queue is full ``track`` blocks, so the load never runs ahead of what gets answered
    by more than the queue; it never bursts to catch up more than one second's worth."""

    def __init__(self, client: ClickPulseClient, records: Iterator[SimulatedRecord]) -> None:
        super().__init__(name="soak-load", daemon=True)
        self.client = client
        self.records = records
        self.rate = 0.0
        self.offered = 0
        self._halt = threading.Event()

    def run(self) -> None:
        owed, last = 0.0, time.monotonic()
        while not self._halt.is_set():
            now = time.monotonic()
            owed, last = min(owed + (now - last) * self.rate, max(1.0, self.rate)), now
            while owed >= 1 and not self._halt.is_set():
                record = next(self.records)
                if record.valid and record.event is not None:
                    self.client.track(dict(record.event))
                else:
                    self.client.send_raw(record.payload)
                owed -= 1
                self.offered += 1
            self._halt.wait(0.005)

    def stop(self) -> None:
        self._halt.set()
        self.join(30)


@dataclass
class Pipeline:
    """The processes of one soak run and what is measured on them."""

    settings: Settings
    consumer: subprocess.Popen[bytes]
    collector: subprocess.Popen[bytes]
    client: ClickPulseClient
    logs: Path

    def lag(self) -> int:
        """Records of clicks.raw beyond the group's committed offsets (librdkafka commits every second)."""
        s = self.settings
        return group_lag(s.kafka_bootstrap_servers, s.consumer_group, s.topic_raw)

    def drain(self, timeout_s: float) -> None:
        """Everything the SDK queued is answered, and the consumer committed all of clicks.raw."""
        if not self.client.flush(timeout_s):
            raise RuntimeError(f"the SDK could not deliver everything: {self.client.stats}")
        s = self.settings
        wait_caught_up(s.kafka_bootstrap_servers, s.consumer_group, s.topic_raw, timeout_s)

    def answered(self) -> int:
        return self.client.stats["sent"]

    def alive(self) -> None:
        for name, proc in (("consumer", self.consumer), ("collector", self.collector)):
            if proc.poll() is not None:
                raise RuntimeError(f"the {name} exited:\n{log_tail(self.logs / f'{name}.log', 40)}")

    def sample(self, t: float) -> Sample:
        self.alive()
        return Sample(t, self.answered(), self.lag(), rss_mib(self.consumer.pid), rss_mib(self.collector.pid))


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def start_consumer(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "REDIS_URL": settings.redis_url,
        "CLICKPULSE_REDIS_ACL": "1" if settings.redis_acl else "0",
        "CLICKPULSE_TOPIC_RAW": settings.topic_raw,
        "CLICKPULSE_TOPIC_ENRICHED": settings.topic_enriched,
        "CLICKPULSE_TOPIC_DLQ": settings.topic_dlq,
        "CLICKPULSE_REDIS_PREFIX": settings.redis_prefix,
        "CLICKPULSE_LIVE_CHANNEL_PREFIX": settings.redis_prefix,
        "CLICKPULSE_CONSUMER_GROUP": settings.consumer_group,
    }
    argv = [sys.executable, "-m", "clickpulse.cli", "consumer", "--metrics-port", "0"]
    return subprocess.Popen(argv, env=env, cwd=PROJECT_ROOT, stdout=log.open("ab"), stderr=subprocess.STDOUT)


def stop_processes(*procs: subprocess.Popen[bytes]) -> None:
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def ramp(pipe: Pipeline, load: Load, config: SoakConfig) -> list[Step]:
    steps: list[Step] = []
    rate = config.start_rate
    while rate <= config.max_rate:
        load.rate = rate
        began, answered0, lag0 = time.monotonic(), pipe.answered(), pipe.lag()
        time.sleep(config.step_s)
        pipe.alive()
        seconds = time.monotonic() - began
        answered = (pipe.answered() - answered0) / seconds
        growth = pipe.lag() - lag0
        # committed offsets move once a second, so the lag alone jitters by about a second of traffic
        step = Step(rate, answered, growth, answered >= 0.95 * rate and growth < 2 * rate)
        steps.append(step)
        logger.info("ramp %.0f/s: answered %.0f/s, lag %+d: %s", rate, answered, growth, step.sustained)
        if not step.sustained:
            break
        rate *= config.growth
    return steps


def soak(pipe: Pipeline, load: Load, rate: float, config: SoakConfig) -> list[Sample]:
    load.rate = rate
    began = time.monotonic()
    samples = [pipe.sample(0.0)]
    while samples[-1].t < config.seconds:
        time.sleep(max(0.0, began + len(samples) * config.sample_s - time.monotonic()))
        samples.append(pipe.sample(time.monotonic() - began))
        if len(samples) % 12 == 0:
            s = samples[-1]
            logger.info(
                "soak %.0fs: lag %d, consumer %.1f MiB, collector %.1f MiB",
                s.t,
                s.lag,
                s.consumer_mib,
                s.collector_mib,
            )
    return samples


@dataclass(frozen=True)
class Check:
    name: str
    measured: str
    threshold: str
    passed: bool


def verdict(samples: list[Sample], rate: float, config: SoakConfig) -> list[Check]:
    ts = [s.t for s in samples]
    span = ts[-1] - ts[0]
    answered_rate = (samples[-1].answered - samples[0].answered) / span
    lag = Fit.of(ts, [float(s.lag) for s in samples])
    lag_limit = config.lag_tolerance_s * rate
    warm = max(30.0, 0.2 * span)
    steady = [s for s in samples if s.t >= warm]
    checks = [
        Check(
            "rate held",
            f"{answered_rate:,.0f} records/s answered",
            f">= 95% of {rate:,.0f}",
            answered_rate >= 0.95 * rate,
        ),
        Check(
            "lag flat",
            f"slope {lag.slope:+.2f} records/s, fitted growth {lag.growth:+,.0f} (mean {lag.mean:,.0f})",
            f"growth < {lag_limit:,.0f} ({config.lag_tolerance_s:g} s of traffic)",
            lag.growth < lag_limit,
        ),
    ]
    for name in ("consumer", "collector"):
        ys = [getattr(s, f"{name}_mib") for s in steady]
        mem = Fit.of([s.t for s in steady], ys)
        limit = max(config.memory_tolerance_mib, config.memory_tolerance_share * mem.mean)
        checks.append(
            Check(
                f"{name} memory flat",
                f"slope {mem.slope * 60:+.3f} MiB/min, fitted growth {mem.growth:+.1f} MiB after "
                f"{warm:.0f} s (mean {mem.mean:.1f} MiB, max {max(ys):.1f})",
                f"growth < {limit:.1f} MiB",
                mem.growth < limit,
            )
        )
    return checks


def report(
    config: SoakConfig,
    steps: list[Step],
    rate: float,
    samples: list[Sample],
    checks: list[Check],
    counted: tuple[int, int],
) -> str:
    shortened = config.seconds < FULL_SOAK_S
    lines = [
        "# ClickPulse soak",
        "",
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on: {machine_details()}",
        "",
        f"Path: simulator → Python SDK → collector process → Kafka → consumer process → Redis. "
        f"Soak: **{config.seconds / 60:g} min** at {rate:,.0f} records/s (half the sustainable maximum), "
        f"sampled every {config.sample_s:g} s.",
    ]
    if shortened:
        lines += ["", f"**Shortened run ({config.seconds:g} s): not the {FULL_SOAK_S / 60:g}-minute soak.**"]
    lines += [
        "",
        "## Ramp",
        "",
        "| offered/s | answered/s | lag growth | sustained |",
        "|---:|---:|---:|---|",
        *(f"| {s.offered:,.0f} | {s.answered:,.0f} | {s.lag_growth:+,} | {s.sustained} |" for s in steps),
        "",
        "## Verdict",
        "",
        "| check | measured | threshold | pass |",
        "|---|---|---|---|",
        *(f"| {c.name} | {c.measured} | {c.threshold} | {'PASS' if c.passed else 'FAIL'} |" for c in checks),
        f"| nothing lost or double counted | Redis total {counted[0]:,} | simulator truth {counted[1]:,} "
        f"| {'PASS' if counted[0] == counted[1] else 'FAIL'} |",
        "",
        "## Samples",
        "",
        "| t (s) | answered | lag | consumer RSS (MiB) | collector RSS (MiB) |",
        "|---:|---:|---:|---:|---:|",
    ]
    every = max(1, len(samples) // 30)
    for s in samples[::every]:
        lines.append(
            f"| {s.t:.0f} | {s.answered:,} | {s.lag:,} | {s.consumer_mib:.1f} | {s.collector_mib:.1f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    exit_on_sigterm()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("streaming.sdk").setLevel(logging.ERROR)  # one line per rejected malformed record
    config = SoakConfig.from_env()
    logs = Path(tempfile.mkdtemp(prefix="cp-soak-"))
    start, end = backfill_window(2)
    simulator = Simulator(
        SimulationConfig(users=20_000, videos=2_000, events=10**9, seed=2024, start=start, end=end),
        wall_clock=time.time,
    )
    with private_redis() as redis_url, private_topics(get_settings()) as topics:
        settings = on_private_redis(topics, redis_url).model_copy(
            update={"consumer_group": f"soak.{uuid.uuid4().hex[:8]}"}
        )
        collector, url = start_collector(
            settings, settings.topic_raw, settings.topic_dlq, logs / "collector.log"
        )
        consumer = start_consumer(settings, logs / "consumer.log")
        client = ClickPulseClient(
            url, WRITE_KEY, batch_size=500, flush_interval_s=0.1, max_queue=20_000, enqueue_timeout_s=120
        )
        pipe = Pipeline(settings, consumer, collector, client, logs)
        load = Load(client, iter(simulator))
        try:
            load.start()
            load.rate = 100.0
            time.sleep(5)  # warm-up: the consumer joins its group, the collector its producer
            pipe.drain(120)
            steps = ramp(pipe, load, config)
            sustained = [s.offered for s in steps if s.sustained]
            maximum = sustained[-1] if sustained else steps[0].answered
            load.rate = 0.0
            pipe.drain(300)  # the ramp's backlog
            rate = maximum / 2
            logger.info(
                "sustainable maximum %.0f records/s; soaking %.0f s at %.0f/s", maximum, config.seconds, rate
            )
            samples = soak(pipe, load, rate, config)
            load.stop()
            pipe.drain(300)
            router = RedisRouter.from_settings(settings)
            counted = int(read_global(router, keyspace=Keyspace.from_settings(settings))["totals"]["events"])
            router.close()
            truth = simulator.truth.valid
        finally:
            try:
                load.stop()
                client.close(timeout=30)
            finally:
                stop_processes(consumer, collector)
    checks = verdict(samples, rate, config)
    text = report(config, steps, rate, samples, checks, (counted, truth))
    RESULTS.write_text(text)
    print(text)
    print(f"written to {RESULTS}; process logs in {logs}")
    return 0 if all(c.passed for c in checks) and counted == truth else 1


if __name__ == "__main__":
    sys.exit(main())
