"""An in-memory stand-in for confluent_kafka.Producer, for request-shape tests that need no broker."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any


@dataclass
class ProducedRecord:
    topic: str
    value: bytes
    key: bytes | None
    headers: dict[str, bytes]
    timestamp: int | None


class _Metadata:
    def __init__(self, topics: set[str]) -> None:
        self.topics = dict.fromkeys(topics)


class FakeProducer:
    """Records every produce(); poll() reports each record delivered (or ``fail_with``)."""

    def __init__(self, topics: set[str] | None = None, fail_with: Any = None) -> None:
        self.records: list[ProducedRecord] = []
        self.topics = topics or set()
        self.fail_with = fail_with
        self._pending: list[tuple[Any, ProducedRecord]] = []
        self._lock = threading.Lock()

    def produce(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        headers: list[tuple[str, bytes]] | None = None,
        on_delivery: Any = None,
        timestamp: int | None = None,
        **_: Any,
    ) -> None:
        record = ProducedRecord(topic, value or b"", key, dict(headers or []), timestamp)
        with self._lock:
            self.records.append(record)
            self._pending.append((on_delivery, record))

    def poll(self, timeout: float = 0) -> int:
        with self._lock:
            pending, self._pending = self._pending, []
        for callback, record in pending:
            if callback is not None:
                callback(self.fail_with, record)
        if not pending and timeout:
            threading.Event().wait(min(timeout, 0.01))
        return len(pending)

    def flush(self, timeout: float = 0) -> int:
        self.poll(0)
        return 0

    def list_topics(self, timeout: float = 0) -> _Metadata:
        return _Metadata(self.topics)

    def __len__(self) -> int:
        with self._lock:
            return len(self._pending)
