"""Awaiting Kafka's delivery reports from asyncio: one future per request, one poll thread per producer.

librdkafka reports deliveries only from ``poll()``/``flush()``. A single background thread polls the
producer (``ProducerPoller``); each request counts its own records in a ``DeliveryBatch``, whose future
is resolved on the event loop once every record of that request was confirmed or refused. The request
handler awaits that future, so the HTTP answer is sent only after Kafka acknowledged every record
(acks=all, idempotent producer) or after it is known that at least one was not.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

logger = logging.getLogger(__name__)


class DeliveryBatch:
    """The delivery reports of one request's records; thread-safe (reports arrive on the poll thread)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._lock = threading.Lock()
        self._reported = 0
        self._expected: int | None = None
        self.error: str | None = None  # the first delivery error, if any
        self.future: asyncio.Future[None] = loop.create_future()

    def on_delivery(self, error: Any, _message: Any) -> None:
        """The producer's ``on_delivery`` callback for every record of this request."""
        with self._lock:
            self._reported += 1
            if error is not None and self.error is None:
                self.error = str(error)
            done = self._expected is not None and self._reported >= self._expected
        if done:
            self._loop.call_soon_threadsafe(self._resolve)

    def seal(self, expected: int) -> None:
        """No more records will be produced: resolve once ``expected`` reports arrived (maybe already)."""
        with self._lock:
            self._expected = expected
            done = self._reported >= expected
        if done:
            self._loop.call_soon_threadsafe(self._resolve)

    def _resolve(self) -> None:
        if not self.future.done():
            self.future.set_result(None)


class ProducerPoller:
    """Serves a producer's delivery callbacks from a background thread until stopped."""

    def __init__(self, producer: Any, interval_s: float = 0.05) -> None:
        self._producer = producer
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="kafka-producer-poll", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._producer.poll(self._interval_s)
            except Exception:  # a callback bug must not stop every future delivery report
                logger.exception("producer poll failed")

    def stop(self, flush_timeout_s: float = 5.0) -> int:
        """Stop polling and flush what is queued; returns the number of records still undelivered."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        remaining = int(self._producer.flush(flush_timeout_s))
        if remaining:
            logger.warning("%d records still undelivered at shutdown", remaining)
        return remaining
