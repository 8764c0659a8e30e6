"""The collector: ``POST /v1/events`` validates events and writes them to Kafka, answering per event.

Acknowledgement: a 200 is sent only after Kafka confirmed every record of that request (valid events
on clicks.raw and dead letters on clicks.dlq), through an idempotent producer with acks=all. If any
record of the request is not confirmed (Kafka down, local queue full, delivery timeout) the answer is
503 with ``Retry-After`` and nothing in the request counts as acknowledged: the client re-sends the
whole batch unchanged. Records of it that did reach Kafka are then duplicated, which is safe because
every event carries a client ``event_id`` and the consumer and the warehouse dedupe by it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Final

import orjson
from fastapi import FastAPI, Request, Response
from fastapi.middleware.cors import CORSMiddleware
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from clickpulse.settings import Settings, get_settings
from streaming.collector.auth import QUERY_PARAMETER, is_write_key, presented_key, redact_access_log
from streaming.collector.body import BodyEncodingError, BodyTooLargeError, read_capped_body
from streaming.collector.delivery import DeliveryBatch, ProducerPoller
from streaming.collector.metrics import CollectorMetrics
from streaming.contract import MAX_REQUEST_BYTES
from streaming.ingest import (
    EventTransform,
    IngestRoute,
    RoutingResult,
    dead_letter_payload,
    now_ms,
    route_payload,
)
from streaming.kafka_io import check_credentials, client_config, producer_config
from streaming.payload import PayloadError, TooManyEventsError, parse_payload
from streaming.pseudonymize import ingest_transform

logger = logging.getLogger(__name__)

STAGE: Final = "collector"
EVENTS_PATH: Final = "/v1/events"
_CREDENTIALS_CHECK_S: Final = 5.0  # at start: a refused login fails the start, an absent Kafka does not
_DELIVERY_SLACK_S: Final = 5.0  # librdkafka reports a timeout itself; this only guards against a lost report
_QUEUE_POLL_S: Final = 0.01
_RETRY_HINT: Final = (
    "nothing in this request was acknowledged: re-send the whole batch after Retry-After seconds "
    "(events already written are deduplicated by event_id)"
)


def collector_producer_config(settings: Settings) -> dict[str, Any]:
    """The shared idempotent producer, with a delivery timeout short enough for an HTTP answer."""
    return producer_config(
        settings,
        **{
            "client.id": "clickpulse-collector",
            "message.timeout.ms": int(settings.collector_delivery_timeout_s * 1000),
        },
    )


class Collector:
    """Request handling and its state; ``create_app`` wires it into FastAPI."""

    def __init__(
        self,
        settings: Settings,
        producer: Any,
        transform: EventTransform | None,
        queue_capacity: int,
    ) -> None:
        self.settings = settings
        self.producer = producer
        self.route = IngestRoute(producer, settings.topic_raw, settings.topic_dlq, STAGE, transform)
        self.write_keys = settings.write_key_set
        self.queue_capacity = queue_capacity
        self.metrics = CollectorMetrics(producer)
        self.poller = ProducerPoller(producer)
        self.retry_after = str(settings.collector_retry_after_s)
        self.await_timeout_s = settings.collector_delivery_timeout_s + _DELIVERY_SLACK_S

    async def post_events(self, request: Request) -> Response:
        received_at_ms = now_ms()
        response = _error(500, "internal error")
        try:
            response = await self._ingest(request, received_at_ms)
        finally:
            self.metrics.requests.labels(str(response.status_code)).inc()
        return response

    async def _ingest(self, request: Request, received_at_ms: int) -> Response:
        key = presented_key(request.headers.get("authorization"), request.query_params.get(QUERY_PARAMETER))
        if not is_write_key(key, self.write_keys):
            return _error(401, "missing or invalid write key", {"WWW-Authenticate": "Bearer"})
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_REQUEST_BYTES:
            return _error(413, f"request body larger than {MAX_REQUEST_BYTES} bytes")
        try:
            body = await read_capped_body(
                request.stream(), request.headers.get("content-encoding"), MAX_REQUEST_BYTES
            )
        except BodyTooLargeError as exc:
            return _error(413, str(exc))
        except BodyEncodingError as exc:
            if exc.status != 400:
                return _error(exc.status, str(exc))
            return await self._reject_body(raw=exc.raw, reason=str(exc))
        self.metrics.request_bytes.observe(len(body))
        try:
            payload = parse_payload(body, request.headers.get("content-type"))
        except TooManyEventsError as exc:
            return _error(413, str(exc))
        except PayloadError as exc:
            return await self._reject_body(raw=body, reason=str(exc))

        if not await self._wait_for_room(len(payload)):
            return self._unavailable("queue_full", "the Kafka producer queue is full")
        batch = DeliveryBatch(asyncio.get_running_loop())
        began = time.perf_counter()
        try:
            result = route_payload(payload, self.route, received_at_ms, batch.on_delivery)
        except BufferError:
            return self._unavailable("queue_full", "the Kafka producer queue is full")
        batch.seal(result.produced)
        failure = await self._await_delivery(batch)
        if failure is not None:
            return failure
        self.metrics.produce_latency.observe(time.perf_counter() - began)
        return self._answer(result)

    async def _reject_body(self, raw: bytes, reason: str) -> Response:
        """A body that is not events at all: 400, and the whole body goes to the DLQ first."""
        if raw:
            batch = DeliveryBatch(asyncio.get_running_loop())
            try:
                batch.seal(dead_letter_payload(raw, reason, self.route, batch.on_delivery))
            except BufferError:
                return self._unavailable("queue_full", "the Kafka producer queue is full")
            failure = await self._await_delivery(batch)
            if failure is not None:
                return failure
        self.metrics.events.labels("rejected").inc()
        return _error(400, reason)

    async def _wait_for_room(self, records: int) -> bool:
        """Wait briefly for room in the producer's queue so a burst does not fail half-way through."""
        deadline = time.monotonic() + self.settings.collector_queue_full_wait_s
        while len(self.producer) + records > self.queue_capacity:
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(_QUEUE_POLL_S)
        return True

    async def _await_delivery(self, batch: DeliveryBatch) -> Response | None:
        try:
            await asyncio.wait_for(batch.future, self.await_timeout_s)
        except TimeoutError:
            return self._unavailable("delivery_timeout", "Kafka did not confirm delivery in time")
        if batch.error is not None:
            logger.warning("delivery failed: %s", batch.error)
            return self._unavailable("delivery_failed", f"Kafka did not accept the events ({batch.error})")
        return None

    def _unavailable(self, cause: str, message: str) -> Response:
        self.metrics.unavailable.labels(cause).inc()
        return _json(503, {"error": message, "retry": _RETRY_HINT}, {"Retry-After": self.retry_after})

    def _answer(self, result: RoutingResult) -> Response:
        self.metrics.events.labels("accepted").inc(result.accepted)
        self.metrics.events.labels("rejected").inc(len(result.rejected))
        self.metrics.batch_size.observe(result.sent)
        return _json(200, {"accepted": result.accepted, "rejected": [r.as_dict() for r in result.rejected]})

    async def healthz(self) -> Response:
        """200 when Kafka answers a metadata request and both topics exist; 503 otherwise."""
        try:
            metadata = await asyncio.to_thread(self.producer.list_topics, timeout=2.0)
        except Exception as exc:
            return _json(503, {"status": "unavailable", "kafka": "down", "error": str(exc)})
        topics = {self.settings.topic_raw, self.settings.topic_dlq}
        missing = sorted(topics - set(metadata.topics))
        if missing:
            return _json(503, {"status": "unavailable", "kafka": "up", "missing_topics": missing})
        return _json(200, {"status": "ok", "kafka": "up", "producer_queue": len(self.producer)})

    def metrics_page(self) -> Response:
        return Response(generate_latest(self.metrics.registry), media_type=CONTENT_TYPE_LATEST)


def _json(status: int, content: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(content), status_code=status, headers=headers, media_type="application/json")


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return _json(status, {"error": message}, headers)


_EVENTS_DOC: Final[dict[str, Any]] = {
    "requestBody": {
        "required": True,
        "description": (
            'A JSON array of events, {"events": [...]}, or NDJSON (one event per line); optionally gzip '
            "(Content-Encoding: gzip). At most 500 KB, also after decompression; 32 KB per event."
        ),
        "content": {
            "application/json": {"schema": {"type": "array", "items": {"type": "object"}}},
            "application/x-ndjson": {"schema": {"type": "string"}},
        },
    },
    "parameters": [
        {
            "name": QUERY_PARAMETER,
            "in": "query",
            "required": False,
            "description": "The write key, for navigator.sendBeacon (which cannot set headers).",
            "schema": {"type": "string"},
        }
    ],
}


def create_app(
    settings: Settings | None = None,
    producer: Any = None,
    *,
    transform: EventTransform | None = None,
) -> FastAPI:
    """The collector as an ASGI app; ``producer`` defaults to an idempotent confluent-kafka producer.

    ``transform`` is applied to each valid event before it is produced, followed by the ``user_id``
    pseudonymisation when ``CLICKPULSE_PSEUDONYMIZE_KEY`` is set (``streaming.pseudonymize``).
    """
    settings = settings or get_settings()
    transform = ingest_transform(settings, transform)
    config = collector_producer_config(settings)
    own_producer = producer is None
    if producer is None:
        from confluent_kafka import Producer

        producer = Producer(config)
    collector = Collector(settings, producer, transform, int(config["queue.buffering.max.messages"]))

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if own_producer:  # wrong TLS/SASL settings stop the start; Kafka being down does not (503s)
            await asyncio.to_thread(check_credentials, client_config(settings), _CREDENTIALS_CHECK_S)
        collector.poller.start()
        logger.info(
            "collector writing to %s (raw %s, dlq %s)",
            settings.kafka_bootstrap_servers,
            settings.topic_raw,
            settings.topic_dlq,
        )
        try:
            yield
        finally:
            await asyncio.to_thread(collector.poller.stop)

    app = FastAPI(title="ClickPulse collector", version="1", lifespan=lifespan)
    app.state.collector = collector
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.collector_cors_origin_list,
        allow_methods=["POST", "GET", "OPTIONS"],
        allow_headers=["Authorization", "Content-Type", "Content-Encoding"],
        expose_headers=["Retry-After"],
        max_age=600,
    )
    app.add_api_route(
        EVENTS_PATH,
        collector.post_events,
        methods=["POST"],
        summary="Ingest a batch of events",
        openapi_extra=_EVENTS_DOC,
    )
    app.add_api_route("/healthz", collector.healthz, methods=["GET"], summary="Kafka reachable?")
    app.add_api_route("/metrics", collector.metrics_page, methods=["GET"], summary="Prometheus metrics")
    redact_access_log()
    return app


def create_app_from_env() -> FastAPI:
    """uvicorn factory (``--factory``): settings from the environment, one producer per worker."""
    return create_app(get_settings())
