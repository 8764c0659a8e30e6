"""The realtime consumer: clicks.raw → Redis state, clicks.enriched, clicks.dlq, live Pub/Sub.

Every batch goes through these steps:

1. ``consume(num_messages=batch_size)``; decode and validate every record with the event contract.
2. Plan both phases (``StateWriter.plan``); look up user attributes (LRU, then HMGETs for the misses
   in the same pipeline) and run phase one (event_id dedupe, per-video counters, watermarks).
3. Phase two: global counters, profiles (first occurrences only).
4. Produce the first occurrences, enriched, to clicks.enriched (same key and Kafka timestamp as the
   raw record) and the invalid records to clicks.dlq; wait until Kafka confirmed every delivery.
5. Only then store the offsets; librdkafka commits stored offsets every second, on partition revoke
   (synchronously, in the callback) and on close.

Batches overlap so that Redis always has work queued (``redis_queue``: rounds in order, none written
after a failure; on a standalone Redis they are written at once and their replies read when needed):
while Redis runs batch N-1's phase two and batch N's phase one, this thread decodes and plans batch
N+1; it then produces N-1's enriched records.
Steps 4-5 of a batch always complete in batch order, and a failure anywhere retries that batch and
every later one in flight, in order, before any new Redis work starts (every step is idempotent or
at-least-once), so a crash anywhere loses nothing and a replay counts nothing twice.
"""

from __future__ import annotations

import contextlib
import copy
import gc
import logging
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
import redis
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer, TopicPartition

from clickpulse.settings import Settings
from streaming import dlq
from streaming.consumer import metrics
from streaming.consumer.enrichment import UNKNOWN, UserAttributes, UserAttributesCache
from streaming.consumer.live import LivePublisher, UserClickHook, UserClickPublisher, user_clicks
from streaming.consumer.records import CountedEvent, DecodedBatch, decode_batch
from streaming.consumer.redis_queue import OrderedRedisQueue, Pending, Round, StreamedRedisQueue
from streaming.consumer.state import ApplyResult, LuaCall, StateWriter, without_duplicates
from streaming.event import encode_event
from streaming.kafka_io import consumer_config, error_code, producer_config
from streaming.keyspace import Keyspace, Retention
from streaming.redis_conn import Family, RedisRouter
from streaming.redis_roles import Role

logger = logging.getLogger(__name__)

STAGE = "consumer"
FLUSH_TIMEOUT_S = 30.0
MAX_BACKOFF_S = 5.0
LATENCY_SAMPLE_EVERY = 16
# The interpreter's GIL switch interval while ``run`` runs (the default is 5 ms): a Redis reply wakes
# the Redis thread (Redis Cluster; on a standalone Redis this thread reads the replies itself), which
# then waits for the GIL until this thread's Python work yields it; Redis idles meanwhile. 1 ms:
# 16.4K -> 22.5K events/s in the benchmark (README, "Consumer throughput work").
GIL_SWITCH_INTERVAL_S = 0.001
# The cyclic garbage collector's first threshold while ``run`` runs (Python's default is 700). A batch
# allocates tens of thousands of short-lived lists, tuples and records; freed by reference counting,
# they still made the collector run every ~35 events and walk every batch in flight: 30K -> 39K
# events/s in the benchmark, 24 -> 17 µs of this thread's CPU per event (README, "Consumer
# throughput work"). Reference cycles are still collected, every 50,000 allocations.
GC_FIRST_THRESHOLD = 50_000


def _enrichment(attributes: UserAttributes, is_late: bool) -> dict[str, Any]:
    more = attributes.enrichment_fields()
    more["is_late"] = is_late
    return more


def enriched_json(
    e: CountedEvent, attributes: UserAttributes | None, parts: dict[tuple[Any, ...], bytes] | None = None
) -> bytes:
    """The contract JSON of the event plus user_country, user_tier, user_language, is_late, received_at.

    ``parts`` (one dict per batch) keeps the JSON of the enrichment fields by their values. For an event
    without unknown fields it is appended, with received_at when the event has none, to msgspec's
    encoding of the event: what ``encode_event`` does for it, without encoding the same few fields again
    for every event.
    """
    attributes = attributes or UNKNOWN
    event = e.event
    if parts is None or event.extra is not None:
        more = _enrichment(attributes, e.is_late)
        if event.received_at is None:
            more["received_at"] = datetime.fromtimestamp(e.timestamp_ms / 1000, UTC)
        return encode_event(event, more)
    values = (attributes.country, attributes.subscription_tier, attributes.language, e.is_late)
    part = parts.get(values)
    if part is None:
        part = parts[values] = b"," + orjson.dumps(_enrichment(attributes, e.is_late))[1:-1]
    if event.received_at is not None:
        return encode_event(event)[:-1] + part + b"}"
    received_at = {"received_at": datetime.fromtimestamp(e.timestamp_ms / 1000, UTC)}
    return encode_event(event)[:-1] + part + b"," + orjson.dumps(received_at, option=orjson.OPT_UTC_Z)[1:]


class DeliveryError(RuntimeError):
    """Kafka did not confirm every enriched record or dead letter of a batch."""


RETRYABLE = (redis.RedisError, KafkaException, DeliveryError, BufferError)


@dataclass(slots=True)
class _InFlight:
    """A batch on its way: phase one queued (``first``), then phase two queued (``second``) and its
    enriched records produced, then completed (Kafka confirmed, offsets stored)."""

    batch: DecodedBatch
    began: float
    first: Pending[tuple[dict[str, UserAttributes], int]]
    second_calls: list[LuaCall]  # phase two, planned with phase one
    second: Pending[tuple[dict[str, list[CountedEvent]], float]] | None = None
    attributes: dict[str, UserAttributes] = field(default_factory=dict)
    duplicates: int = 0
    produced: bool = False
    error: Exception | None = None


@dataclass(slots=True)
class RunStats:
    """Counts since the consumer started (this process)."""

    batches: int = 0
    records: int = 0
    counted: int = 0
    duplicates: int = 0
    dead_letters: int = 0
    late: int = 0
    enriched: int = 0
    retries: int = 0


class RealtimeConsumer:
    """The ``realtime`` consumer group member. ``run()`` until ``stop()``, N batches, or idle."""

    def __init__(
        self,
        settings: Settings,
        *,
        group: str | None = None,
        batch_size: int | None = None,
        router: RedisRouter | None = None,
        keyspace: Keyspace | None = None,
        user_click_hooks: Sequence[UserClickHook] | None = None,
        from_beginning: bool = False,
        consumer_overrides: Mapping[str, Any] | None = None,
        record_latencies: bool = False,
    ) -> None:
        self.settings = settings
        self.group = group or settings.consumer_group
        self.batch_size = batch_size or settings.consumer_batch_size
        self.topic = settings.topic_raw
        self.retention = Retention.from_settings(settings)
        self._owns_router = router is None
        self.router = router or RedisRouter.from_settings(settings, Role.CONSUMER)
        self.keyspace = keyspace or Keyspace.from_settings(settings)
        self.writer = StateWriter(self.router, self.keyspace, settings, self.topic)
        self.enricher = UserAttributesCache(
            self.router.client(Family.PROFILES),
            self.keyspace,
            settings.enrichment_cache_size,
            settings.enrichment_cache_ttl_s,
        )
        live_client = self.router.client(Family.LIVE)
        self.live = LivePublisher(live_client, self.keyspace, settings.live_publish_interval_ms / 1000)
        self.user_click_hooks: list[UserClickHook] = (
            list(user_click_hooks)
            if user_click_hooks is not None
            else [UserClickPublisher(live_client, self.keyspace)]
        )
        self.from_beginning = from_beginning
        self.stats = RunStats()
        self.latencies: list[float] | None = [] if record_latencies else None
        self._stop = threading.Event()
        self._redis: StreamedRedisQueue | OrderedRedisQueue = (
            StreamedRedisQueue(self.writer) if self.writer.streams else OrderedRedisQueue(self.writer)
        )
        self._live_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="live")
        self._flights: list[_InFlight] = []
        self._delivery_errors: list[str] = []
        self._reset_done: set[int] = set()
        self._assigned: set[int] = set()
        self._labels = {"group": self.group}

        # Delivery callbacks only for failures (flush() still waits for every record, and a Python
        # callback per enriched record would cost more than the rest of its produce), set once as the
        # producer's default rather than passed with every record.
        self.producer = Producer(
            producer_config(
                settings, **{"delivery.report.only.error": True, "on_delivery": self._on_delivery}
            )
        )
        overrides = {"session.timeout.ms": settings.consumer_session_timeout_ms, **(consumer_overrides or {})}
        self.consumer = Consumer(consumer_config(settings, self.group, **overrides))
        self.consumer.subscribe(
            [self.topic], on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost
        )
        logger.info(
            "consumer group %r subscribed to %s (batch size %d)", self.group, self.topic, self.batch_size
        )

    # Rebalance callbacks (run inside consume()).
    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._assigned.update(p.partition for p in partitions)
        logger.info("assigned %s", sorted(p.partition for p in partitions))
        self.writer.expect_replay()  # their committed offsets may be behind what Redis counted
        if self.from_beginning:
            fresh = [p for p in partitions if p.partition not in self._reset_done]
            for p in fresh:
                p.offset = OFFSET_BEGINNING
                self._reset_done.add(p.partition)
            if fresh:
                consumer.incremental_assign(partitions)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        logger.info(
            "revoked %s; completing the batches in flight, committing",
            sorted(p.partition for p in partitions),
        )
        self._progress(drain=True)
        self._commit()
        for p in partitions:
            self._assigned.discard(p.partition)
            with contextlib.suppress(KeyError):
                metrics.LAG.remove(self.group, self.topic, str(p.partition))

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        logger.warning(
            "lost %s (session timed out); their batches will be replayed", [p.partition for p in partitions]
        )
        for p in partitions:
            self._assigned.discard(p.partition)

    def _commit(self) -> None:
        try:
            self.consumer.commit(asynchronous=False)
        except KafkaException as exc:
            if error_code(exc) != KafkaError._NO_OFFSET:
                logger.warning("commit failed: %s", exc)

    # The loop.
    def stop(self) -> None:
        """Ask ``run`` to return after the current batch (safe from signal handlers and threads)."""
        self._stop.set()

    def run(
        self,
        *,
        max_batches: int | None = None,
        idle_timeout_s: float | None = None,
        stop_when: Callable[[RunStats], bool] | None = None,
    ) -> RunStats:
        """Process batches until ``stop()``, ``max_batches``, ``stop_when(stats)``, or no record for
        ``idle_timeout_s`` while partitions are assigned. Returns with no batch in flight.

        Up to three batches overlap while the consumer keeps up with full batches (module docstring); a
        batch smaller than ``batch_size`` (the consumer caught up) completes before the next consume.
        """
        last_activity = time.monotonic()
        finished_at_start = self.stats.batches
        switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(min(switch_interval, GIL_SWITCH_INTERVAL_S))
        thresholds = gc.get_threshold()
        gc.set_threshold(max(thresholds[0], GC_FIRST_THRESHOLD), *thresholds[1:])
        try:
            while not self._stop.is_set():
                messages = self.consumer.consume(
                    num_messages=self.batch_size, timeout=self.settings.consumer_batch_timeout_s
                )
                batch = decode_batch(messages, self.retention.lateness_s) if messages else None
                if batch is not None and batch.records:
                    self._flights.append(self._launch(batch))
                    last_activity = time.monotonic()
                if not self._progress(drain=len(messages) < self.batch_size):
                    break
                if batch is None:
                    self._in_live_thread(self.live.maybe_publish)
                    if not self._assigned:
                        last_activity = time.monotonic()
                done = self.stats.batches - finished_at_start + len(self._flights)
                if max_batches is not None and done >= max_batches:
                    break
                if stop_when is not None and stop_when(self._projected_stats()):
                    break
                if idle_timeout_s is not None and time.monotonic() - last_activity > idle_timeout_s:
                    break
        finally:
            try:
                self._progress(drain=True)
                self._live_thread.submit(lambda: None).result()
            finally:
                sys.setswitchinterval(switch_interval)
                gc.set_threshold(*thresholds)
        return self.stats

    def _projected_stats(self) -> RunStats:
        """The stats as they will be once the batches in flight complete (for ``stop_when``)."""
        if not self._flights:
            return self.stats
        projected = copy.copy(self.stats)
        projected.records += sum(f.batch.records for f in self._flights)
        return projected

    def _launch(self, batch: DecodedBatch) -> _InFlight:
        """Queue the attribute look-up and phase one (both phases are planned here)."""
        events = batch.events
        calls, second_calls = self.writer.plan(events)
        enricher = self.enricher

        def phase_one() -> Round[tuple[dict[str, UserAttributes], int]]:
            found, missing = enricher.cached(e.event.user_id for e in events)
            reads = [(enricher.client, command) for command in enricher.reads(missing)]
            n = len(calls)
            return Round(
                calls,
                reads,
                lambda replies: (
                    enricher.fill(found, missing, replies[n:]),
                    self.writer.phase_one_result(calls, replies[:n]),
                ),
            )

        return _InFlight(batch, time.monotonic(), self._redis.submit_round(phase_one), second_calls)

    def _advance(self, flight: _InFlight) -> None:
        """Wait for phase one, drop the duplicates it found from phase two, queue phase two. A failure
        is kept in ``flight.error`` (the batch is retried when it completes)."""
        try:
            calls = flight.second_calls
            flight.attributes, flight.duplicates = flight.first.result()
            if flight.duplicates:
                calls = without_duplicates(calls)

            def phase_two() -> Round[tuple[dict[str, list[CountedEvent]], float]]:
                return Round(
                    calls, [], lambda replies: (self.writer.phase_two_result(calls, replies), time.time())
                )

            flight.second = self._redis.submit_round(phase_two)
        except RETRYABLE as exc:
            flight.error = exc

    def _produce_flight(self, flight: _InFlight) -> None:
        if flight.produced or flight.error is not None or flight.second is None:
            return
        try:
            self._produce_batch(flight.batch, flight.attributes)
            flight.produced = True
        except RETRYABLE as exc:
            flight.error = exc

    def _progress(self, drain: bool) -> bool:
        """Move the batches in flight along; False when asked to stop while a batch failed.

        Not draining: every batch but the newest gets its phase two queued, every batch but the newest
        two completes, then the second newest produces its enriched records (so a flush only ever
        waits for the batch it completes). Draining: every batch completes, in order.
        """
        flights = self._flights
        for flight in flights[: len(flights) if drain else len(flights) - 1]:
            if flight.second is None and flight.error is None:
                self._advance(flight)
        keep = 0 if drain else 2
        while len(self._flights) > keep:
            flight = self._flights.pop(0)
            outcome = self._finish(flight)
            if outcome is None:
                self._flights.clear()  # their offsets stay unstored; a restart replays them
                return False
            if outcome is False:  # retried: complete every later batch too before new Redis work
                keep = 0
        if keep == 0 and self._redis.failed:
            self._redis.reset()
        for flight in self._flights:
            self._produce_flight(flight)
        return True

    def _finish(self, flight: _InFlight) -> bool | None:
        """Complete the oldest batch in flight: True, False when it had to be retried, None when asked
        to stop before its retry succeeded."""
        retried = False
        result: ApplyResult | None
        try:
            if flight.second is None and flight.error is None:
                self._advance(flight)
            self._produce_flight(flight)
            if flight.error is not None:
                raise flight.error
            assert flight.second is not None
            applied_clicks, written_at = flight.second.result()
            result = self._acknowledged(
                flight.batch, ApplyResult(flight.duplicates, applied_clicks), written_at
            )
        except RETRYABLE as exc:
            self._count_failure(exc, 1)
            self._redis.wait_idle()
            retried = True
            result = self._retry(flight.batch)
            if result is None:
                return None
        self._store_offsets(flight.batch.next_offsets)
        self._account(flight.batch, result, time.monotonic() - flight.began)
        self._after_batch(flight.batch, result)
        return not retried

    def _retry(self, batch: DecodedBatch) -> ApplyResult | None:
        """Run the whole batch again in this thread until it succeeds (every step is idempotent or
        at-least-once); None when asked to stop first (its offsets stay uncommitted)."""
        attempt = 1
        while True:
            delay = min(MAX_BACKOFF_S, 0.1 * 2**attempt)
            if self._stop.wait(delay):
                logger.warning("stopping with a failed batch; its offsets stay uncommitted")
                return None
            try:
                attributes = self.enricher.lookup(e.event.user_id for e in batch.events)
                result = self.writer.apply(batch.events)
                written_at = time.time()
                self._produce_batch(batch, attributes)
                return self._acknowledged(batch, result, written_at)
            except RETRYABLE as exc:
                attempt += 1
                self._count_failure(exc, attempt)

    def _count_failure(self, exc: Exception, attempt: int) -> None:
        self.stats.retries += 1
        if isinstance(exc, redis.RedisError):
            metrics.REDIS_ERRORS.labels(**self._labels).inc()
        else:
            metrics.PRODUCE_ERRORS.labels(**self._labels).inc()
        logger.warning("batch failed (attempt %d), retrying: %s", attempt, exc)

    def _produce_batch(self, batch: DecodedBatch, attributes: Mapping[str, UserAttributes]) -> None:
        self._delivery_errors.clear()
        parts: dict[tuple[Any, ...], bytes] = {}
        topic = self.settings.topic_enriched
        # Delivery reports go to _on_delivery (the producer's default: None callbacks keep it). The
        # arguments are positional (topic, value, key, partition, callback, on_delivery, timestamp): with
        # the timestamp as a keyword a call took 1.06 µs, positional 0.72.
        produce = self.producer.produce
        for e in batch.events:
            if not e.first:
                continue
            user_id = e.event.user_id
            value = enriched_json(e, attributes.get(user_id), parts)
            while True:
                try:
                    produce(topic, value, user_id.encode(), -1, None, None, e.timestamp_ms)
                    break
                except BufferError:
                    self.producer.poll(0.05)
        for letter in batch.dead_letters:
            self._produce_dead_letter(
                letter.value, letter.key, letter.partition, letter.offset, letter.reason
            )

    def _acknowledged(self, batch: DecodedBatch, result: ApplyResult, written_at: float) -> ApplyResult:
        """Redis has the batch (since ``written_at``); wait until Kafka confirmed every enriched record
        and dead letter."""
        self._observe_latency(batch.events, written_at)
        remaining = self.producer.flush(FLUSH_TIMEOUT_S)
        if remaining:
            raise DeliveryError(f"{remaining} records not confirmed by Kafka within {FLUSH_TIMEOUT_S:.0f}s")
        if self._delivery_errors:
            raise DeliveryError(f"{len(self._delivery_errors)} deliveries failed: {self._delivery_errors[0]}")
        self.stats.enriched += sum(1 for e in batch.events if e.first)
        return result

    def _observe_latency(self, events: list[CountedEvent], written_at: float) -> None:
        """Kafka timestamp → Redis acknowledged; the histogram takes every 16th event (cheaper)."""
        metric = metrics.EVENT_TO_REDIS_SECONDS.labels(**self._labels)
        for e in events[::LATENCY_SAMPLE_EVERY]:
            metric.observe(written_at - e.timestamp_ms / 1000)
        if self.latencies is not None:
            self.latencies.extend(written_at - e.timestamp_ms / 1000 for e in events)

    def _on_delivery(self, err: KafkaError | None, _msg: Any) -> None:
        if err is not None:
            self._delivery_errors.append(str(err))

    def _produce_dead_letter(
        self, value: bytes, key: bytes | None, partition: int, offset: int, reason: str
    ) -> None:
        while True:
            try:
                dlq.send_dead_letter(
                    self.producer,
                    self.settings.topic_dlq,
                    value,
                    reason,
                    STAGE,
                    key=key,
                    source_topic=self.topic,
                    partition=partition,
                    offset=offset,
                    on_delivery=self._on_delivery,
                )
                return
            except BufferError:
                self.producer.poll(0.05)

    def _store_offsets(self, next_offsets: Mapping[int, int]) -> None:
        for partition, offset in next_offsets.items():
            try:
                self.consumer.store_offsets(offsets=[TopicPartition(self.topic, partition, offset)])
            except KafkaException as exc:
                # The partition was revoked while the batch ran; its new owner replays it (idempotently).
                logger.info("offset %d of partition %d not stored: %s", offset, partition, exc)

    def _account(self, batch: DecodedBatch, result: ApplyResult, seconds: float) -> None:
        s = self.stats
        counted = len(batch.events) - result.duplicates
        late = sum(1 for e in batch.events if e.is_late and e.first)
        s.batches += 1
        s.records += batch.records
        s.counted += counted
        s.duplicates += result.duplicates
        s.dead_letters += len(batch.dead_letters)
        s.late += late
        labels = self._labels
        metrics.RECORDS.labels(**labels).inc(batch.records)
        metrics.EVENTS.labels(outcome="counted", **labels).inc(counted)
        metrics.EVENTS.labels(outcome="duplicate", **labels).inc(result.duplicates)
        metrics.DUPLICATES.labels(**labels).inc(result.duplicates)
        metrics.DEAD_LETTERS.labels(**labels).inc(len(batch.dead_letters))
        metrics.LATE.labels(**labels).inc(late)
        metrics.BATCH_SECONDS.labels(**labels).observe(seconds)
        metrics.BATCH_SIZE.labels(**labels).observe(batch.records)
        lag: dict[str, int] = {}
        for partition, next_offset in batch.next_offsets.items():
            try:
                _low, high = self.consumer.get_watermark_offsets(
                    TopicPartition(self.topic, partition), cached=True
                )
            except KafkaException:
                continue
            if high is None or high < 0:
                continue
            behind = max(0, high - next_offset)
            lag[f"{self.topic}:{partition}"] = behind
            metrics.LAG.labels(self.group, self.topic, str(partition)).set(behind)
        self._in_live_thread(self.live.set_lag, lag)

    def _after_batch(self, batch: DecodedBatch, result: ApplyResult) -> None:
        """Live updates and user click hooks, in the live thread (batch order), so that this thread
        does not wait for their Redis replies queued behind the Lua calls."""
        self._in_live_thread(self._live_updates, batch.events, result.applied_clicks)

    def _in_live_thread(self, job: Callable[..., object], *args: Any) -> None:
        """Run ``job`` in the live thread; its failures are logged (live updates never stop counting)."""

        def logged() -> None:
            try:
                job(*args)
            except Exception:
                logger.exception("live update %r failed", job)

        self._live_thread.submit(logged)

    def _live_updates(
        self, events: list[CountedEvent], applied_clicks: dict[str, list[CountedEvent]]
    ) -> None:
        self.live.record(events)
        self.live.maybe_publish()
        if not applied_clicks:
            return
        clicks = user_clicks(applied_clicks)
        for hook in self.user_click_hooks:
            try:
                hook(clicks)
            except Exception:
                logger.exception("user click hook %r failed", hook)

    def close(self) -> None:
        """Commit what was stored, leave the group, flush the producer."""
        try:
            self._commit()
            self.consumer.close()
        finally:
            self._redis.shutdown()
            self._live_thread.shutdown(wait=True)
            self.producer.flush(FLUSH_TIMEOUT_S)
            if self._owns_router:
                self.router.close()
        logger.info("consumer closed: %s", self.stats)

    def __enter__(self) -> RealtimeConsumer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
