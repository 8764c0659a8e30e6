"""Dead letters: the original bytes, kept as they arrived, with headers that say why and from where."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

logger = logging.getLogger(__name__)

HEADER_ERROR = "clickpulse.error"
HEADER_STAGE = "clickpulse.stage"
HEADER_SOURCE_TOPIC = "clickpulse.source.topic"
HEADER_SOURCE_PARTITION = "clickpulse.source.partition"
HEADER_SOURCE_OFFSET = "clickpulse.source.offset"
HEADER_FAILED_AT = "clickpulse.failed_at"
MAX_REASON_BYTES = 4096


def dead_letter_headers(
    reason: str,
    stage: str,
    source_topic: str | None = None,
    partition: int | None = None,
    offset: int | None = None,
) -> list[tuple[str, bytes]]:
    """Headers for a dead letter; ``stage`` names the component that rejected it."""
    headers = [
        (HEADER_ERROR, reason.encode("utf-8", "replace")[:MAX_REASON_BYTES]),
        (HEADER_STAGE, stage.encode()),
        (HEADER_FAILED_AT, datetime.now(UTC).isoformat().encode()),
    ]
    if source_topic is not None:
        headers.append((HEADER_SOURCE_TOPIC, source_topic.encode()))
    if partition is not None:
        headers.append((HEADER_SOURCE_PARTITION, str(partition).encode()))
    if offset is not None:
        headers.append((HEADER_SOURCE_OFFSET, str(offset).encode()))
    return headers


KafkaHeaders = list[tuple[str, str | bytes | None]] | dict[str, str | bytes | None] | None


def read_headers(headers: KafkaHeaders) -> dict[str, str]:
    """Decode the headers ``Message.headers()`` returns (a dead letter's), for tests, tools and the API."""
    pairs = headers.items() if isinstance(headers, dict) else headers or []
    return {k: v.decode("utf-8", "replace") if isinstance(v, bytes) else v for k, v in pairs if v is not None}


def send_dead_letter(
    producer: Any,
    topic: str,
    payload: bytes,
    reason: str,
    stage: str,
    key: bytes | None = None,
    source_topic: str | None = None,
    partition: int | None = None,
    offset: int | None = None,
    on_delivery: Any = None,
) -> None:
    """Produce one dead letter; awaiting delivery is the caller's job."""
    producer.produce(
        topic,
        value=payload,
        key=key,
        headers=dead_letter_headers(reason, stage, source_topic, partition, offset),
        on_delivery=on_delivery,
    )
