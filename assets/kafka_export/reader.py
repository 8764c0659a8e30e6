"""Reading exactly an offset range from Kafka: offsets_for_times lookup and a batched, bounded read.

The consumer is assigned partitions at explicit offsets (no group subscription, nothing committed):
the export is a pure function of the topic's content, so reruns read the same records.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from datetime import datetime

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from assets.kafka_export.offsets import OffsetRange, Watermarks, plan_ranges
from assets.kafka_export.records import KafkaRecord

logger = logging.getLogger(__name__)


class ExportStalledError(RuntimeError):
    """The broker stopped delivering records that the watermarks say exist."""


def _millis(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def topic_partitions(consumer: Consumer, topic: str, timeout_s: float) -> list[int]:
    metadata = consumer.list_topics(topic, timeout=timeout_s)
    described = metadata.topics.get(topic)
    if described is None or described.error is not None:
        reason = "unknown topic" if described is None else described.error
        raise KafkaException(f"cannot describe topic {topic!r}: {reason}")
    return sorted(described.partitions)


def lookup_ranges(
    consumer: Consumer, topic: str, start: datetime, end: datetime, *, timeout_s: float = 10.0
) -> list[OffsetRange]:
    """Per partition, the offsets [first with timestamp >= start, first with timestamp >= end)."""
    partitions = topic_partitions(consumer, topic, timeout_s)
    watermarks = {}
    for partition in partitions:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=timeout_s)
        watermarks[partition] = Watermarks(low=low, high=high)
    answers = {}
    for moment in (start, end):
        query = [TopicPartition(topic, p, _millis(moment)) for p in partitions]
        found = consumer.offsets_for_times(query, timeout=timeout_s)
        for tp in found:
            if tp.error is not None:
                raise KafkaException(tp.error)
        answers[moment] = {tp.partition: tp.offset for tp in found}
    return plan_ranges(answers[start], answers[end], watermarks)


def read_ranges(
    consumer: Consumer,
    topic: str,
    ranges: Sequence[OffsetRange],
    *,
    batch_size: int,
    stall_timeout_s: float = 30.0,
) -> Iterator[list[KafkaRecord]]:
    """Yield lists of records until every range is read; nothing outside the ranges is returned.

    Offsets inside a range can be missing (compaction, transaction markers), so a partition is done
    when a record at or beyond its end arrives or the consumer's position passed the end.
    """
    remaining = {r.partition: r.end for r in ranges if r.count > 0}
    if not remaining:
        return
    starts = {r.partition: r.start for r in ranges if r.count > 0}
    consumer.assign([TopicPartition(topic, p, starts[p]) for p in sorted(remaining)])
    last_progress = time.monotonic()
    try:
        while remaining:
            messages = consumer.consume(num_messages=batch_size, timeout=0.5)
            batch: list[KafkaRecord] = []
            finished: list[int] = []
            for message in messages:
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        continue
                    raise KafkaException(error)
                partition, offset = message.partition(), message.offset()
                if partition is None or offset is None:
                    continue
                end = remaining.get(partition)
                if end is None:
                    continue
                if offset >= end:
                    finished.append(partition)
                    continue
                batch.append((message.value(), partition, offset, message.timestamp()[1]))
                if offset + 1 >= end:
                    finished.append(partition)
            if not messages:
                finished.extend(_passed_end(consumer, topic, remaining))
            for partition in set(finished):
                if remaining.pop(partition, None) is not None:
                    consumer.incremental_unassign([TopicPartition(topic, partition)])
            if batch or finished:
                last_progress = time.monotonic()
                if batch:
                    yield batch
            elif time.monotonic() - last_progress > stall_timeout_s:
                raise ExportStalledError(
                    f"no records from {topic} for {stall_timeout_s:.0f}s while partitions "
                    f"{sorted(remaining)} still expect offsets up to {remaining}"
                )
    finally:
        consumer.unassign()


def _passed_end(consumer: Consumer, topic: str, remaining: dict[int, int]) -> list[int]:
    positions = consumer.position([TopicPartition(topic, p) for p in remaining])
    return [tp.partition for tp in positions if tp.offset >= 0 and tp.offset >= remaining[tp.partition]]
