"""Redis Pub/Sub → Kafka bridge, for backends that already speak Redis: ``PUBLISH ingest:events <json>``.

Each message is one event, a JSON array of events, ``{"events": [...]}`` or NDJSON, and goes through
exactly what the HTTP collector runs (``streaming.ingest.route_payload``): contract v1 validation,
``received_at`` stamping, valid events to clicks.raw keyed by user_id, invalid ones to clicks.dlq with
their original bytes (stage=bridge). A message that is not events at all is dead-lettered whole.

This path is at-most-once: Redis Pub/Sub keeps nothing, so messages published while the bridge is down,
reconnecting or too slow to keep up (Redis drops a subscriber past its output-buffer limit) are lost,
and the publisher is never told. Use HTTP (the SDKs and the collector) when every event must arrive.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Final

import redis

from clickpulse.settings import Settings, get_settings
from streaming.ingest import EventTransform, IngestRoute, dead_letter_payload, now_ms, route_payload
from streaming.kafka_io import check_credentials, client_config, producer_config
from streaming.payload import PayloadError, TooManyEventsError, parse_payload
from streaming.pseudonymize import ingest_transform
from streaming.redis_conn import LOGIN_HINT, RedisUnavailableError
from streaming.redis_roles import Role, redact_url, refused_login, role_url

logger = logging.getLogger(__name__)

STAGE: Final = "bridge"
_LISTEN_TIMEOUT_S: Final = 0.1
_RECONNECT_DELAY_S: Final = 1.0
_QUEUE_FULL_POLL_S: Final = 0.1


class RedisBridge:
    """Subscribes to one channel and forwards every message to Kafka until ``stop()``."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        producer: Any = None,
        redis_client: redis.Redis | None = None,
        channel: str | None = None,
        transform: EventTransform | None = None,
    ) -> None:
        self.settings = settings or get_settings()
        if producer is None:
            from confluent_kafka import Producer

            producer = Producer(producer_config(self.settings, **{"client.id": "clickpulse-bridge"}))
        self.producer = producer
        self.redis = redis_client or redis.Redis.from_url(role_url(self.settings, Role.BRIDGE))
        self.channel = channel or self.settings.bridge_channel
        self.route = IngestRoute(
            _WaitingProducer(producer),
            self.settings.topic_raw,
            self.settings.topic_dlq,
            STAGE,
            ingest_transform(self.settings, transform),
        )
        self.ready = threading.Event()  # set once the subscription is confirmed
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.stats = {"messages": 0, "accepted": 0, "rejected": 0, "delivered": 0, "delivery_failed": 0}

    def start(self) -> RedisBridge:
        """Run in a background thread; wait on ``ready`` before publishing anything that must arrive."""
        self._thread = threading.Thread(target=self.run, name="clickpulse-bridge", daemon=True)
        self._thread.start()
        return self

    def request_stop(self) -> None:
        """Ask ``run()`` to return (safe from a signal handler)."""
        self._stop.set()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop and join the thread started by ``start()``; queued records are flushed first."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout_s)
            self._thread = None

    def run(self) -> None:
        """Listen until ``stop()``; reconnects (losing what was published meanwhile) if Redis goes away."""
        try:
            while not self._stop.is_set():
                pubsub = self.redis.pubsub()
                try:
                    pubsub.subscribe(self.channel)
                    self._listen(pubsub)
                except redis.RedisError as exc:
                    self.ready.clear()
                    if refused_login(exc):  # retrying cannot help: stop with the reason
                        where = redact_url(role_url(self.settings, Role.BRIDGE))
                        raise RedisUnavailableError(
                            f"Redis at {where} refused the bridge's login ({exc}); {LOGIN_HINT}"
                        ) from exc
                    logger.warning("redis pub/sub connection lost (%s); resubscribing", exc)
                    self._stop.wait(_RECONNECT_DELAY_S)
                finally:
                    pubsub.close()
        finally:
            remaining = self.producer.flush(10)
            if remaining:
                logger.error("%d bridged records not delivered at shutdown", remaining)

    def _listen(self, pubsub: Any) -> None:
        while not self._stop.is_set():
            message = pubsub.get_message(timeout=_LISTEN_TIMEOUT_S)
            self.producer.poll(0)
            if message is None:
                continue
            if message["type"] == "subscribe":
                logger.info("bridge subscribed to redis channel %s", self.channel)
                self.ready.set()
            elif message["type"] == "message":
                self.handle(message["data"])

    def handle(self, data: bytes | str) -> None:
        """Validate and forward one Pub/Sub message (does not wait for Kafka's confirmation)."""
        body = data.encode() if isinstance(data, str) else bytes(data)
        received_at_ms = now_ms()
        with self._lock:
            self.stats["messages"] += 1
        self._route(body, received_at_ms)

    def _route(self, body: bytes, received_at_ms: int) -> None:
        try:
            payload = parse_payload(body)
        except (PayloadError, TooManyEventsError) as exc:
            logger.warning("bridge message is not events: %s", exc)
            dead_letter_payload(body, str(exc), self.route, self._on_delivery)
            self._count(rejected=1)
            return
        result = route_payload(payload, self.route, received_at_ms, self._on_delivery)
        self._count(accepted=result.accepted, rejected=len(result.rejected))

    def _on_delivery(self, error: Any, _message: Any) -> None:
        if error is None:
            self._count(delivered=1)
        else:
            logger.error("bridged record not delivered: %s", error)
            self._count(delivery_failed=1)

    def _count(self, **increments: int) -> None:
        with self._lock:
            for name, value in increments.items():
                self.stats[name] += value


class _WaitingProducer:
    """``produce()`` that waits for room in a full local queue instead of raising ``BufferError``: the
    bridge is a single loop with nothing better to do, and a retry of a half-routed message would
    duplicate its first records."""

    def __init__(self, producer: Any) -> None:
        self._producer = producer

    def produce(self, *args: Any, **kwargs: Any) -> None:
        while True:
            try:
                self._producer.produce(*args, **kwargs)
                return
            except BufferError:
                self._producer.poll(_QUEUE_FULL_POLL_S)


def run_bridge(settings: Settings | None = None, channel: str | None = None) -> None:
    """Run the bridge in the foreground until SIGINT/SIGTERM."""
    import signal

    settings = settings or get_settings()
    check_credentials(client_config(settings))  # a refused login stops here, with what to fix
    bridge = RedisBridge(settings, channel=channel)

    def _stop(_signum: int, _frame: Any) -> None:
        bridge.request_stop()

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    topics = f"{bridge.settings.topic_raw} / {bridge.settings.topic_dlq}"
    logger.info("bridging redis channel %s to %s", bridge.channel, topics)
    bridge.run()
