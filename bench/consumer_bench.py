"""Consumer benchmarks: throughput and latency against baselines measured in the same run.

``run()`` returns rows ``{name, value, baseline, ratio, unit, note}``:

- consumer events/s against a bare ``consume(num_messages=N)`` + contract decode loop on the same topic,
  for one consumer and for N consumer processes in one group (``CLICKPULSE_BENCH_CONSUMER_PROCESSES``,
  default ``1,2``). Untimed passes over the topic come first, for ``CLICKPULSE_BENCH_CONSUMER_WARMUP_S``
  (after ``make up`` the broker's JIT keeps compiling for minutes: whole runs in the first four gave
  0.46-0.57 of the mix, three of eight below 0.5); the single consumer
  then runs ``CLICKPULSE_BENCH_CONSUMER_ROUNDS`` (default 5) timed passes, each followed by its
  redis-benchmark mix, and the rows report the medians;
- consumer events/s against ``redis-benchmark`` running the command mix the consumer's Lua scripts
  executed (counted with ``INFO commandstats`` on a private redis-server during the consumer run; each
  command is benchmarked on its own, pipelined, and the times are added up, since redis-benchmark runs
  one command per invocation and cannot run a Lua batch);
- event → Redis latency p50/p99 while a separate process produces 5,000 events/s (target p99 ≤ 250 ms);
- Redis memory per million events (``INFO memory`` of a private redis-server at 100K and 200K events).

The topic holds simulated records as the collector writes them (``streaming.ingest.raw_record``: the
event's JSON with ``received_at``, keyed by user_id; the record timestamp is the backfill time) plus
the simulator's malformed records as they are. Every run uses its own topics, consumer groups and a
private redis-server on a spare loopback port, so it disturbs no one and ``INFO`` sees only this run.
``python -m bench.consumer_bench [memory]``.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from statistics import median
from typing import Any

import orjson
from confluent_kafka import Consumer, Producer

from clickpulse.settings import Settings, get_settings
from clickpulse.stack import redis_server
from clickpulse.stack.processes import stop
from clickpulse.stack.topics import delete_topics, ensure_topics
from streaming.consumer import RealtimeConsumer
from streaming.contract import decode_and_validate
from streaming.ingest import raw_record, rfc3339_ms
from streaming.simulator import SimulationConfig, Simulator, backfill_window

logger = logging.getLogger(__name__)

THROUGHPUT_EVENTS = 100_000
THROUGHPUT_ROUNDS = 5
WARMUP_S = 150.0
LATENCY_RATE = 5_000
LATENCY_SECONDS = 15
LATENCY_WARMUP_S = 3.0
MEMORY_EVENTS = 200_000
LATENCY_TARGET_MS = 250.0

# What redis-benchmark runs for each command the scripts call (keys spread with __rand_int__).
BENCH_COMMANDS = {
    "hincrby": "HINCRBY cpb:{h}:__rand_int__ clicks 1",
    "hsetnx": "HSETNX cpb:{s}:__rand_int__ e__rand_int__ 3:123456",
    "expire": "EXPIRE cpb:{h}:__rand_int__ 3600",
    "pfadd": "PFADD cpb:{u}:__rand_int__ u__rand_int__",
    "hset": "HSET cpb:{h}:__rand_int__ wm 123456",
    "hget": "HGET cpb:{h}:__rand_int__ clicks",
    "hmget": "HMGET cpb:{h}:__rand_int__ country subscription_tier language",
    "zincrby": "ZINCRBY cpb:{z} 1.5 v__rand_int__",
    "lrem": "LREM cpb:{l}:__rand_int__ 0 v1",
    "lpush": "LPUSH cpb:{l}:__rand_int__ v1",
    "ltrim": "LTRIM cpb:{l}:__rand_int__ 0 49",
    "publish": "PUBLISH cpb:c message",
    "incrby": "INCRBY cpb:{n}:__rand_int__ 100",  # not {e}: SET writes non-integers there
    "hgetall": "HGETALL cpb:{h}:__rand_int__",
    "get": "GET cpb:{e}:__rand_int__",
    "set": "SET cpb:{e}:__rand_int__ x",
    "zcard": "ZCARD cpb:{z}",
    "zrevrange": "ZREVRANGE cpb:{z} 0 9 WITHSCORES",
}
NOT_DATA = {
    "evalsha",
    "script|load",
    "info",
    "config|get",
    "config|set",
    "ping",
    "hello",
    "client|setinfo",
    "select",
}


def _spare_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def private_redis(maxmemory: str = "4gb") -> Iterator[str]:
    """A redis-server of our own (same config template as the stack) on a spare loopback port, without
    ACL users: the benchmarks measure Redis itself, and only they reach it (``on_private_redis``)."""
    data_dir = Path(tempfile.mkdtemp(prefix="cp-bench-"))
    port = _spare_port()
    name = "redis-bench"
    proc = redis_server.start_instance(data_dir, name, "127.0.0.1", port, maxmemory)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        redis_server.wait_ready(url, 20, proc.log_file if proc else None)
        yield url
    finally:
        stop(data_dir, name, timeout_s=10)
        shutil.rmtree(data_dir, ignore_errors=True)


def on_private_redis(settings: Settings, url: str) -> Settings:
    """``settings`` pointed at a ``private_redis`` server, which has no ACL users (its default user is
    open, as with ``CLICKPULSE_REDIS_ACL=0``), so no component logs in there."""
    return settings.model_copy(update={"redis_url": url, "redis_acl": False})


@contextmanager
def private_topics(settings: Settings, partitions: int = 6) -> Iterator[Settings]:
    tag = uuid.uuid4().hex[:8]
    names = {f"bench.raw.{tag}": partitions, f"bench.enriched.{tag}": partitions, f"bench.dlq.{tag}": 1}
    ensure_topics(settings.kafka_bootstrap_servers, names)
    raw, enriched, dlq = names
    try:
        yield settings.model_copy(
            update={
                "topic_raw": raw,
                "topic_enriched": enriched,
                "topic_dlq": dlq,
                "redis_prefix": f"bench{tag}",
            }
        )
    finally:
        delete_topics(settings.kafka_bootstrap_servers, list(names))


def _simulated(events: int, seed: int, hours: int = 2, users: int = 20_000, videos: int = 2_000) -> Simulator:
    start, end = backfill_window(hours)
    return Simulator(
        SimulationConfig(
            events=events, seed=seed, start=start, end=end, users=users, videos=videos, malformed_share=0.001
        )
    )


def _as_collected(payload: bytes, received_at_ms: int) -> tuple[bytes, bytes]:
    """(key, value) of a valid simulated event as the collector writes it to the raw topic, received at
    ``received_at_ms`` (the record timestamp)."""
    return raw_record(orjson.loads(payload), rfc3339_ms(received_at_ms))


def _fill(settings: Settings, sim: Simulator) -> int:
    producer = Producer(
        {
            "bootstrap.servers": settings.kafka_bootstrap_servers,
            "linger.ms": 20,
            "queue.buffering.max.messages": 500_000,
        }
    )
    n = 0
    for record in sim:
        timestamp_ms = record.kafka_timestamp_ms or 0
        key, value = record.key, record.payload
        if record.valid:
            key, value = _as_collected(value, timestamp_ms)
        while True:
            try:
                producer.produce(settings.topic_raw, value, key=key, timestamp=timestamp_ms)
                break
            except BufferError:
                producer.poll(0.1)
        n += 1
    producer.flush(60)
    return n


def bare_loop_rate(settings: Settings, total: int) -> float:
    """consume(num_messages=1000) + the contract's decode_and_validate: the floor of any consumer."""
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap_servers,
            "group.id": f"bench-bare-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 50,
        }
    )
    consumer.subscribe([settings.topic_raw])
    seen, started, first = 0, 0.0, 0
    while seen < total:
        messages = consumer.consume(num_messages=1000, timeout=1.0)
        if not messages:
            continue
        if not started:
            started, first = time.perf_counter(), len(messages)
            seen += len(messages)
            continue
        for message in messages:
            decode_and_validate(message.value() or b"")
        seen += len(messages)
    rate = (seen - first) / (time.perf_counter() - started)
    consumer.close()
    return rate


def consumer_rate(settings: Settings, total: int, batch_size: int) -> tuple[float, RealtimeConsumer]:
    consumer = RealtimeConsumer(settings, group=f"bench-{uuid.uuid4().hex[:8]}", batch_size=batch_size)
    consumer.run(max_batches=1)
    first = consumer.stats.records
    began = time.perf_counter()
    consumer.run(stop_when=lambda s: s.records >= total)
    rate = (consumer.stats.records - first) / (time.perf_counter() - began)
    return rate, consumer


def _group_member(
    settings: Settings, group: str, batch_size: int, total: int, index: int, shared: Any, results: Any
) -> None:
    """One of N consumer processes of one group (runs in its own process, spawned).

    It consumes from the start (group join and rebalances included) until every member holds partitions,
    then times its share until the group as a whole has consumed ``total`` records."""
    assigned, progress, lock = shared
    consumer = RealtimeConsumer(settings, group=group, batch_size=batch_size)
    counted = 0

    def report(stats: Any) -> bool:
        nonlocal counted
        with lock:
            progress.value += stats.records - counted
            counted = stats.records
            return bool(progress.value >= total)

    partitions = len(
        consumer.consumer.list_topics(settings.topic_raw, timeout=10).topics[settings.topic_raw].partitions
    )
    while not report(consumer.stats):
        consumer.run(stop_when=lambda _s: True)  # one consume-and-process round
        assigned[index] = len(consumer._assigned)
        if all(assigned) and sum(assigned) == partitions:
            break
    started, before = time.time(), consumer.stats.records
    consumer.run(stop_when=report)
    ended = time.time()
    report(consumer.stats)
    consumer.close()
    results.put((started, ended, consumer.stats.records - before))


def group_rate(settings: Settings, total: int, batch_size: int, processes: int) -> float:
    """Events/s of ``processes`` consumer processes in one group sharing the topic's partitions: the
    records they consumed once all held partitions, over the time from the first start to the last end."""
    ctx = multiprocessing.get_context("spawn")
    assigned = ctx.Array("i", processes)
    shared = (assigned, ctx.Value("q", 0, lock=False), ctx.Lock())
    results = ctx.Queue()
    group = f"bench-n{processes}-{uuid.uuid4().hex[:8]}"
    procs = [
        ctx.Process(target=_group_member, args=(settings, group, batch_size, total, i, shared, results))
        for i in range(processes)
    ]
    for proc in procs:
        proc.start()
    spans = [results.get(timeout=600) for _ in procs]
    for proc in procs:
        proc.join(60)
    began = min(s for s, _e, _n in spans)
    ended = max(e for _s, e, _n in spans)
    return sum(n for _s, _e, n in spans) / (ended - began)


def _commandstats(client: Any) -> dict[str, int]:
    stats = client.info("commandstats")
    return {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in stats.items()}


def redis_benchmark_rate(url: str, calls: dict[str, int], events: int) -> tuple[float, str]:
    """Events/s if Redis ran only the raw commands of the consumer's mix, each at redis-benchmark speed."""
    binary = shutil.which("redis-benchmark")
    if binary is None:
        return float("nan"), "redis-benchmark not installed"
    port = url.rsplit(":", 1)[1].split("/")[0]
    seconds = 0.0
    skipped = []
    for command, count in sorted(calls.items(), key=lambda kv: -kv[1]):
        if command in NOT_DATA or count == 0:
            continue
        template = BENCH_COMMANDS.get(command)
        if template is None:
            skipped.append(command)
            continue
        requests = max(20_000, min(count, 300_000))
        out = subprocess.run(
            [
                binary,
                "-h",
                "127.0.0.1",
                "-p",
                port,
                "-q",
                "-n",
                str(requests),
                "-r",
                "100000",
                "-c",
                "8",
                "-P",
                "64",
                *template.split(),
            ],
            capture_output=True,
            text=True,
            check=False,
        ).stdout
        match = re.findall(r"([\d.]+) requests per second", out.replace("\r", "\n"))
        if not match:
            skipped.append(command)
            continue
        seconds += count / float(match[-1])
    per_event = sum(c for k, c in calls.items() if k not in NOT_DATA) / events
    note = f"{per_event:.1f} Redis commands per event inside the scripts; -c 8 -P 64"
    if skipped:
        note += f"; not benchmarked: {', '.join(skipped)}"
    return events / seconds, note


def consumer_rounds() -> int:
    """``CLICKPULSE_BENCH_CONSUMER_ROUNDS``: timed passes of the single consumer (default 5)."""
    return max(1, int(os.environ.get("CLICKPULSE_BENCH_CONSUMER_ROUNDS", THROUGHPUT_ROUNDS)))


def warmup_seconds() -> float:
    """``CLICKPULSE_BENCH_CONSUMER_WARMUP_S``: untimed consumer passes before the timed ones, for at least
    this long (default 150; one pass at least). Right after ``make up`` the Kafka broker's JIT is still
    compiling: whole runs in the first four minutes after a restart gave 0.46-0.57 of the mix, three of
    eight below 0.5."""
    return max(0.0, float(os.environ.get("CLICKPULSE_BENCH_CONSUMER_WARMUP_S", WARMUP_S)))


def consumer_processes() -> list[int]:
    """``CLICKPULSE_BENCH_CONSUMER_PROCESSES``: the group sizes measured (default ``1,2``)."""
    return [
        int(n) for n in os.environ.get("CLICKPULSE_BENCH_CONSUMER_PROCESSES", "1,2").split(",") if n.strip()
    ]


def compact_aof(client: Any, timeout_s: float = 120.0) -> None:
    """Rewrite the server's append-only file now (``BGREWRITEAOF``) and wait until it is done (a rewrite
    already running finishes first)."""
    deadline = time.monotonic() + timeout_s

    def wait_idle() -> None:
        while True:
            info = client.info("persistence")
            if not (info.get("aof_rewrite_in_progress") or info.get("aof_rewrite_scheduled")):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"the bench's redis-server still rewrote its AOF after {timeout_s:.0f}s")
            time.sleep(0.05)

    wait_idle()
    client.bgrewriteaof()
    wait_idle()


def _one_pass(
    settings: Settings, url: str, total: int, batch_size: int, processes: int
) -> tuple[float, float, str]:
    """One timed pass of ``processes`` consumers over the topic on the emptied private server, then
    redis-benchmark running the commands the scripts executed meanwhile: (events/s, the mix's events/s,
    its note). No automatic AOF rewrite runs inside either timed window: they are turned off, and the AOF
    is compacted, untimed, before each window, so neither carries the writes of the windows before it
    (a rewrite forked by earlier passes' writes cost the pass it fell into about 8 %, at random)."""
    from streaming.redis_conn import connect

    probe = connect(url)
    probe.config_set("auto-aof-rewrite-percentage", 0)
    probe.flushall()  # every pass starts from an empty server, as the first did
    compact_aof(probe)
    before = _commandstats(probe)
    if processes == 1:
        rate, consumer = consumer_rate(settings, total, batch_size)
        consumer.close()
        records = consumer.stats.records
    else:
        rate, records = group_rate(settings, total, batch_size, processes), total
    after = _commandstats(probe)
    compact_aof(probe)
    probe.close()
    calls = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    mix_rate, note = redis_benchmark_rate(url, calls, records)
    return rate, mix_rate, note


def throughput_rows(
    settings: Settings, events: int = THROUGHPUT_EVENTS, batch_size: int | None = None
) -> list[dict[str, Any]]:
    """The consumer as configured (``CLICKPULSE_CONSUMER_BATCH_SIZE``, 2000 by default)."""
    batch_size = batch_size or settings.consumer_batch_size

    rows: list[dict[str, Any]] = []
    with private_redis() as url, private_topics(on_private_redis(settings, url)) as own:
        total = _fill(own, _simulated(events, seed=101))

        def prefixed(tag: str) -> Settings:
            # Each pass counts into its own key prefix (the watermarks of one pass would skip the next).
            return own.model_copy(update={"redis_prefix": f"{own.redis_prefix}{tag}"})

        from streaming.redis_conn import connect

        probe = connect(url)
        began, warm_passes = time.monotonic(), 0
        while warm_passes == 0 or time.monotonic() - began < warmup_seconds():  # untimed
            probe.flushall()
            _rate, warm = consumer_rate(prefixed(f"warm{warm_passes}"), total, batch_size)
            warm.close()
            warm_passes += 1
        probe.close()
        bare = bare_loop_rate(own, total)
        for processes in consumer_processes():
            rounds = consumer_rounds() if processes == 1 else 1
            passes = [
                _one_pass(prefixed(f"n{processes}r{i}"), url, total, batch_size, processes)
                for i in range(rounds)
            ]
            rate = median([r for r, _m, _n in passes])
            mix_rate = median([m for _r, m, _n in passes])
            note = passes[0][2]
            who = "consumer" if processes == 1 else f"consumer x{processes} processes (one group)"
            if rounds > 1:
                each = ", ".join(f"{r / 1000:.1f}K/{m / 1000:.1f}K" for r, m, _n in passes)
                note += f"; medians of {rounds} passes after {warm_passes} untimed (consumer/mix: {each})"
            target = "target >= 0.5 of the smaller baseline: " + (
                "the bare loop's" if bare <= mix_rate else "the redis-benchmark mix's"
            )
            if processes > 1:  # the target is the single consumer's; this row shows scale-out on this machine
                target = (
                    f"scale-out, for information: {processes} processes share this machine's cores "
                    "with Redis and Kafka"
                )
            rows += [
                {
                    "name": f"{who} events/s vs bare consume+decode loop",
                    "value": round(rate),
                    "baseline": round(bare),
                    "ratio": round(rate / bare, 3),
                    "unit": "events/s",
                    "note": f"{total} simulated events, batch {batch_size}, 6 partitions; {target}",
                },
                {
                    "name": f"{who} events/s vs redis-benchmark (same command mix)",
                    "value": round(rate),
                    "baseline": round(mix_rate),
                    "ratio": round(rate / mix_rate, 3),
                    "unit": "events/s",
                    "note": f"{note}; {target}",
                },
            ]
    return rows


def _paced_producer(bootstrap: str, topic: str, rate: int, seconds: float, ready: Any) -> None:
    """Runs in its own process: produces ``rate`` events/s as the collector writes them; Kafka timestamps
    and ``received_at`` are the produce times (one per 10 ms tick, as one per collector request)."""
    sim = Simulator(
        SimulationConfig(events=int(rate * seconds), seed=202, users=20_000, videos=2_000, malformed_share=0),
        wall_clock=time.time,
    )
    payloads = [r.payload for r in sim]
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 2, "enable.idempotence": True})
    ready.set()
    tick = 0.01
    per_tick = max(1, int(rate * tick))
    began = time.perf_counter()
    for i in range(0, len(payloads), per_tick):
        now_ms = int(time.time() * 1000)
        for payload in payloads[i : i + per_tick]:
            key, value = _as_collected(payload, now_ms)
            producer.produce(topic, value, key=key, timestamp=now_ms)
        producer.poll(0)
        due = began + (i // per_tick + 1) * tick
        delay = due - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
    producer.flush(30)


def latency_rows(
    settings: Settings, rate: int = LATENCY_RATE, seconds: float = LATENCY_SECONDS
) -> list[dict[str, Any]]:
    with private_redis() as url, private_topics(on_private_redis(settings, url)) as own:
        consumer = RealtimeConsumer(own, group=f"bench-lat-{uuid.uuid4().hex[:8]}", record_latencies=True)
        while not consumer._assigned:
            consumer.run(max_batches=1, idle_timeout_s=0.5)
        ctx = multiprocessing.get_context("spawn")
        ready = ctx.Event()
        proc = ctx.Process(
            target=_paced_producer, args=(own.kafka_bootstrap_servers, own.topic_raw, rate, seconds, ready)
        )
        proc.start()
        ready.wait(60)
        began = time.perf_counter()
        total = int(rate * seconds)
        consumer.run(stop_when=lambda s: s.records >= total or time.perf_counter() - began > seconds + 30)
        elapsed = time.perf_counter() - began
        proc.join(30)
        samples = consumer.latencies or []
        consumer.close()
    warm = samples[int(len(samples) * LATENCY_WARMUP_S / seconds) :] or samples
    warm.sort()
    p50 = warm[len(warm) // 2] * 1000
    p99 = warm[min(len(warm) - 1, int(len(warm) * 0.99))] * 1000
    achieved = len(samples) / elapsed
    note = (
        f"{len(samples)} events at ~{achieved:.0f}/s; first {LATENCY_WARMUP_S:.0f}s dropped; "
        "Kafka create time to Redis ack"
    )
    return [
        {
            "name": f"event->Redis latency p50 @{rate}/s",
            "value": round(p50, 1),
            "baseline": LATENCY_TARGET_MS,
            "ratio": round(p50 / LATENCY_TARGET_MS, 3),
            "unit": "ms",
            "note": note,
        },
        {
            "name": f"event->Redis latency p99 @{rate}/s",
            "value": round(p99, 1),
            "baseline": LATENCY_TARGET_MS,
            "ratio": round(p99 / LATENCY_TARGET_MS, 3),
            "unit": "ms",
            "note": "baseline = target p99; ratio <= 1 meets it",
        },
    ]


def _family(key: str, prefix: str) -> str:
    rest = key[len(prefix) + 1 :]
    tag_end = rest.find("}")
    tag, suffix = rest[1:tag_end], rest[tag_end + 1 :]
    kind = tag.split(":", 1)[0]
    suffix = re.sub(r":\d{8,}$", ":<bucket>", suffix)
    suffix = re.sub(r"^:seen:\d+$", ":seen:<hour>", suffix)
    return f"{{{kind}}}{suffix}"


def memory_rows(settings: Settings, events: int = MEMORY_EVENTS) -> list[dict[str, Any]]:
    """INFO memory of a private Redis before, at half and at the end of ``events`` simulated events."""
    from streaming.redis_conn import connect

    half = events // 2
    with private_redis() as url, private_topics(on_private_redis(settings, url)) as own:
        client = connect(url)
        base = int(client.info("memory")["used_memory"])
        total = _fill(own, _simulated(events, seed=303, hours=4, users=50_000, videos=5_000))
        consumer = RealtimeConsumer(own, group=f"bench-mem-{uuid.uuid4().hex[:8]}", batch_size=2000)
        consumer.run(stop_when=lambda s: s.records >= half)
        at_half = int(client.info("memory")["used_memory"])
        consumer.run(stop_when=lambda s: s.records >= total)
        consumer.close()
        info = client.info("memory")
        at_end = int(info["used_memory"])
        by_family: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        keys = list(client.scan_iter(match=f"{own.redis_prefix}:*", count=5000))
        for i in range(0, len(keys), 1000):
            pipe = client.pipeline(transaction=False)
            for key in keys[i : i + 1000]:
                pipe.memory_usage(key, samples=0)
            for key, size in zip(keys[i : i + 1000], pipe.execute(), strict=True):
                family = by_family[_family(key, own.redis_prefix)]
                family[0] += 1
                family[1] += int(size or 0)
        client.close()
    mb = 1024 * 1024
    per_million_marginal = (at_end - at_half) / (total - half) * 1_000_000 / mb
    per_million_average = (at_end - base) / total * 1_000_000 / mb
    top = sorted(by_family.items(), key=lambda kv: -kv[1][1])
    breakdown = "; ".join(f"{name} {count} keys {size / mb:.1f} MB" for name, (count, size) in top[:10])
    note = (
        f"{total} simulated events over 4 h, 50K users, 5K videos; used_memory {base / mb:.1f} -> "
        f"{at_half / mb:.1f} (half) -> {at_end / mb:.1f} MB; MEMORY USAGE by family: {breakdown}"
    )
    return [
        {
            "name": "Redis memory per 1M events (marginal, 2nd half)",
            "value": round(per_million_marginal, 1),
            "baseline": None,
            "ratio": None,
            "unit": "MB",
            "note": note,
        },
        {
            "name": "Redis memory per 1M events (average incl. first touch)",
            "value": round(per_million_average, 1),
            "baseline": None,
            "ratio": None,
            "unit": "MB",
            "note": "(used_memory at end - empty server) / events x 1M",
        },
    ]


def run(include_memory: bool = True) -> list[dict[str, Any]]:
    settings = get_settings()
    rows = throughput_rows(settings) + latency_rows(settings)
    if include_memory:
        rows += memory_rows(settings)
    return rows


def _print(rows: list[dict[str, Any]]) -> None:
    for row in rows:
        ratio = "" if row["ratio"] is None else f"  ratio {row['ratio']}"
        baseline = "" if row["baseline"] is None else f" (baseline {row['baseline']})"
        print(f"{row['name']}: {row['value']} {row['unit']}{baseline}{ratio}\n    {row['note']}")


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    which = sys.argv[1] if len(sys.argv) > 1 else "all"
    choices: dict[str, Callable[[], list[dict[str, Any]]]] = {
        "memory": lambda: memory_rows(get_settings()),
        "throughput": lambda: throughput_rows(get_settings()),
        "latency": lambda: latency_rows(get_settings()),
        "all": run,
    }
    chosen = choices[which]
    _print(chosen())
