"""Send recorded or simulated traffic: read NDJSON, pace it, write it to Kafka or through the collector.

Backfills write straight to Kafka with each record's timestamp set to its event_time, so the hourly
export puts history in the hour it happened; live traffic keeps the broker's current time, as the
collector would. Malformed payloads are produced too (without a key) so the dead-letter path sees them.
Writing straight to Kafka skips the collector, so ``write_to_kafka`` applies the collector's event
transform itself (``transform``: the user_id pseudonymisation, ``streaming.pseudonymize.ingest_transform``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final, Protocol, TypeVar

import orjson
from confluent_kafka import KafkaError, Message, Producer

from streaming.contract import decode_and_validate
from streaming.event import Event
from streaming.ingest import EventTransform
from streaming.simulation.truth import epoch_ms, read_ndjson_lines

logger = logging.getLogger(__name__)

T = TypeVar("T")

PRODUCER_DEFAULTS: Final[dict[str, Any]] = {
    "enable.idempotence": True,
    "acks": "all",
    "linger.ms": 20,
    "compression.type": "lz4",
}
_POLL_EVERY: Final = 1000
_MAX_ERRORS_KEPT: Final = 10


class KafkaRecordLike(Protocol):
    """What ``write_to_kafka`` needs from a record (``ReplayRecord`` and ``SimulatedRecord`` both fit)."""

    @property
    def payload(self) -> bytes: ...

    @property
    def key(self) -> bytes | None: ...

    @property
    def timestamp_ms(self) -> int | None: ...


class CollectorRecordLike(Protocol):
    @property
    def payload(self) -> bytes: ...

    @property
    def valid(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class ReplayRecord:
    """One NDJSON line: the payload exactly as recorded plus what sending it needs."""

    payload: bytes
    event_time: datetime | None  # None when the line is not a valid event
    key: bytes | None = None  # the user_id of valid events
    timestamp_ms: int | None = None  # backfill timestamp: event_time, or the previous event's for bad lines
    event: Event | None = None

    @property
    def valid(self) -> bool:
        return self.event is not None


def read_ndjson(path: Path | str) -> Iterator[ReplayRecord]:
    """Records of an NDJSON file in order; bad lines come through as records with ``event=None``."""
    previous_ms: int | None = None
    for payload in read_ndjson_lines(Path(path)):
        event = decode_and_validate(payload).event
        if event is None:
            yield ReplayRecord(payload, None, None, previous_ms, None)
            continue
        previous_ms = epoch_ms(event.event_time)
        yield ReplayRecord(payload, event.event_time, event.user_id.encode(), previous_ms, event)


def throttle(
    records: Iterable[T],
    rate: float,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[T]:
    """Release records at ``rate`` per second (0 = unthrottled), waiting *before* pulling the next one
    so lazily generated records get stamped at the moment they are sent."""
    if rate <= 0:
        yield from records
        return
    iterator = iter(records)
    started = clock()
    index = 0
    while True:
        wait = started + index / rate - clock()
        if wait > 0:
            sleep(wait)
        try:
            record = next(iterator)
        except StopIteration:
            return
        index += 1
        yield record


@dataclass
class DeliveryReport:
    """What happened to the records handed to a sink."""

    produced: int = 0
    delivered: int = 0
    failed: int = 0
    skipped: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.failed == 0 and self.produced == self.delivered + self.skipped


def producer_settings(producer_config: Mapping[str, Any]) -> dict[str, Any]:
    """Caller settings over the defaults; idempotence and acks=all cannot be switched off."""
    merged = {**PRODUCER_DEFAULTS, **producer_config}
    if merged["enable.idempotence"] is not True or str(merged["acks"]) not in ("all", "-1"):
        logger.warning(
            "write_to_kafka always produces idempotently with acks=all; overriding %s", producer_config
        )
        merged["enable.idempotence"] = True
        merged["acks"] = "all"
    return merged


def write_to_kafka(
    records: Iterable[KafkaRecordLike],
    producer_config: Mapping[str, Any],
    topic: str,
    timestamp_from_event_time: bool,
    *,
    flush_timeout_s: float = 60.0,
    transform: EventTransform | None = None,
) -> DeliveryReport:
    """Produce every record to ``topic``, keyed by user_id (malformed ones without key).

    With ``timestamp_from_event_time`` (backfills) each record carries its event_time as the Kafka
    timestamp; otherwise the producer stamps the current time. ``transform`` is applied to every valid
    event (the keyed records) as the collector applies it, and the key follows the transformed user_id;
    malformed payloads go as they are, like the collector's dead letters.
    """
    report = DeliveryReport()

    def on_delivery(error: KafkaError | None, _message: Message) -> None:
        if error is None:
            report.delivered += 1
            return
        report.failed += 1
        if len(report.errors) < _MAX_ERRORS_KEPT:
            report.errors.append(str(error))

    producer = Producer(producer_settings(producer_config))
    for record in records:
        timestamp = (record.timestamp_ms or 0) if timestamp_from_event_time else 0
        value, key = record.payload, record.key
        if transform is not None and key is not None:
            event = transform(orjson.loads(value))
            value, key = orjson.dumps(event), str(event["user_id"]).encode()
        while True:
            try:
                producer.produce(topic, value=value, key=key, timestamp=timestamp, on_delivery=on_delivery)
                break
            except BufferError:  # local queue full: let deliveries drain, then retry
                producer.poll(0.1)
        report.produced += 1
        if report.produced % _POLL_EVERY == 0:
            producer.poll(0)
    remaining = producer.flush(flush_timeout_s)
    if remaining:
        report.failed += remaining
        report.errors.append(f"{remaining} records still queued after {flush_timeout_s}s flush")
    if report.failed:
        logger.error("kafka delivery to %s: %d failed; first errors: %s", topic, report.failed, report.errors)
    return report


class CollectorUnavailableError(RuntimeError):
    """The Python SDK (``streaming.sdk.ClickPulseClient``) is not installed in this checkout."""


def write_to_collector(
    records: Iterable[CollectorRecordLike],
    *,
    endpoint: str,
    write_key: str,
    batch_size: int = 500,
    flush_interval_s: float = 0.5,
) -> DeliveryReport:
    """Send through the collector with the Python SDK; malformed payloads go raw if the SDK can."""
    try:
        from streaming.sdk import ClickPulseClient
    except ModuleNotFoundError as exc:
        if exc.name not in ("streaming.sdk", "streaming"):
            raise
        raise CollectorUnavailableError(
            "sending through the collector needs the Python SDK (streaming/sdk.py, ClickPulseClient), "
            "which is not in this checkout yet; use --to kafka"
        ) from exc
    report = DeliveryReport()
    client = ClickPulseClient(endpoint, write_key, batch_size, flush_interval_s)
    send_raw = getattr(client, "send_raw", None)
    try:
        for record in records:
            if record.valid:
                client.track(orjson.loads(record.payload))
            elif send_raw is not None:
                send_raw(record.payload)
            else:
                report.skipped += 1
                report.produced += 1
                continue
            report.produced += 1
            report.delivered += 1  # handed to the SDK, which batches and retries on its own
    finally:
        client.close()
    if report.skipped:
        logger.warning("SDK has no send_raw: %d malformed payloads were not sent", report.skipped)
    return report
