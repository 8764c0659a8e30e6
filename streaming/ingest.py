"""The one way an event enters Kafka: validate, stamp ``received_at``, route to clicks.raw or clicks.dlq.

The HTTP collector and the Redis Pub/Sub bridge both call ``route_payload`` (and ``dead_letter_payload``
for a payload that is not events at all), so an event is accepted or rejected, stamped and keyed the same
way whichever door it came through. Producing is asynchronous: these functions only enqueue records, and
the caller decides how to await the delivery reports passed to ``on_delivery``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import orjson

from streaming.dlq import send_dead_letter
from streaming.payload import Payload

logger = logging.getLogger(__name__)

EventTransform = Callable[[dict[str, Any]], dict[str, Any]]
"""Applied to each valid event before it is produced: the seam for user_id pseudonymisation (HMAC).
It receives the event as the client sent it and returns the event to write; the Kafka key is the
returned event's ``user_id``."""

DeliveryCallback = Callable[[Any, Any], None]

RECEIVED_AT: Final = "received_at"
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class IngestRoute:
    """Where events go and who sends them there."""

    producer: Any  # confluent_kafka.Producer or anything with the same produce()
    topic_raw: str
    topic_dlq: str
    stage: str  # "collector" or "bridge": the dead letters' stage header
    transform: EventTransform | None = None


@dataclass(frozen=True, slots=True)
class Rejection:
    index: int
    error: str

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "error": self.error}


@dataclass(slots=True)
class RoutingResult:
    """What happened to each entry; ``produced`` is how many delivery reports to expect."""

    accepted: int = 0
    rejected: list[Rejection] = field(default_factory=list)
    produced: int = 0

    @property
    def sent(self) -> int:
        return self.accepted + len(self.rejected)


def now_ms() -> int:
    return int(datetime.now(UTC).timestamp() * 1000)


def rfc3339_ms(epoch_ms: int) -> str:
    """``2024-05-01T12:00:00.123Z``: the same millisecond the Kafka record timestamp carries."""
    stamp = _EPOCH + timedelta(milliseconds=epoch_ms)
    return stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def raw_record(event: dict[str, Any], received_at: str) -> tuple[bytes, bytes]:
    """The ``clicks.raw`` record of a valid event as the collector and the bridge write it: key
    ``user_id``, value the event's JSON with ``received_at`` set (replacing any client value)."""
    event[RECEIVED_AT] = received_at
    return str(event["user_id"]).encode(), orjson.dumps(event)


def route_payload(
    payload: Payload,
    route: IngestRoute,
    received_at_ms: int,
    on_delivery: DeliveryCallback | None = None,
) -> RoutingResult:
    """Validate every entry against contract v1 and enqueue it on the raw topic or the DLQ.

    A valid event becomes the client's JSON plus ``received_at`` (server receive time, RFC 3339; any
    client value is replaced), keyed by ``user_id``, with ``received_at_ms`` as the record timestamp.
    An invalid one is dead-lettered with its original bytes and a reason header. Raises ``BufferError``
    when the producer's local queue is full; records enqueued before that are not taken back.
    """
    result = RoutingResult()
    received_at = rfc3339_ms(received_at_ms)
    producer = route.producer
    for index in range(len(payload)):
        outcome, event = payload.validate(index)
        error = "; ".join(outcome.errors)
        if event is not None:
            try:
                if route.transform is not None:
                    event = route.transform(event)
                key, value = raw_record(event, received_at)
            except Exception as exc:  # a failing transform rejects the event, it never fails the batch
                logger.exception("transform failed for entry %d", index)
                error = f"event: could not be prepared for Kafka ({type(exc).__name__})"
            else:
                producer.produce(
                    route.topic_raw, value=value, key=key, timestamp=received_at_ms, on_delivery=on_delivery
                )
                result.produced += 1
                result.accepted += 1
                continue
        send_dead_letter(
            producer, route.topic_dlq, payload.original(index), error, route.stage, on_delivery=on_delivery
        )
        result.produced += 1
        result.rejected.append(Rejection(index, error))
    return result


def dead_letter_payload(
    body: bytes, reason: str, route: IngestRoute, on_delivery: DeliveryCallback | None = None
) -> int:
    """Dead-letter a whole payload that is not events at all; returns the number of records enqueued."""
    send_dead_letter(route.producer, route.topic_dlq, body, reason, route.stage, on_delivery=on_delivery)
    return 1
