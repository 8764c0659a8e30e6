"""Python SDK: send events to the ClickPulse collector from a backend or a script.

``track()`` only enqueues; a background thread sends NDJSON batches (gzip by default) of up to
``batch_size`` events, or whatever is queued once the oldest event waited ``flush_interval_s``, and never
more than the collector's 500 KB request limit. Delivery is at-least-once: a batch is retried with
exponential backoff and full jitter on 5xx, 408, 429 and network errors (waiting at least the
``Retry-After`` the collector sends, up to 60 s) until the collector acknowledges it, and the collector
acknowledges only what Kafka confirmed. A retried batch may be written twice; events carry a client
``event_id`` so downstream dedupes them. Other 4xx answers are not retried: the refused events are
reported to ``on_rejected`` and counted in ``stats``.

Backpressure: the queue holds at most ``max_queue`` events. When it is full ``track()`` blocks for up to
``enqueue_timeout_s`` and then raises ``QueueFullError``: events are never dropped silently. Queued
events are flushed at ``close()``, on leaving the ``with`` block, and at interpreter exit (atexit).

    click = {"event_type": "click", "user_id": "u1", "session_id": "s1", "video_id": "v1"}
    with ClickPulseClient("http://127.0.0.1:8001", "dev-write-key") as client:
        client.track({**click, "button_id": "play", "playback_position_s": 0.0})
"""

from __future__ import annotations

import atexit
import gzip as gzip_codec
import logging
import random
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Final

import httpx
import orjson

from streaming.contract import MAX_REQUEST_BYTES

logger = logging.getLogger(__name__)

__all__ = ["ClickPulseClient", "QueueFullError", "RejectedEvent"]

EVENTS_PATH: Final = "/v1/events"
USER_AGENT: Final = "clickpulse-python/0.1"
_RETRYABLE_4XX: Final = frozenset({408, 429})
_EXIT_TIMEOUT_S: Final = 10.0
_MAX_RETRY_AFTER_S: Final = 60.0  # a server asking for longer is waited on for this long, then retried


class QueueFullError(RuntimeError):
    """The send queue stayed full for ``enqueue_timeout_s``: the collector is down or too slow."""


@dataclass(frozen=True, slots=True)
class RejectedEvent:
    """An event the collector refused: ``status`` is 200 for a per-event rejection (the event is in
    the dead-letter topic) or the 4xx status that refused its whole request."""

    payload: bytes
    error: str
    status: int


class ClickPulseClient:
    """Batching, retrying, thread-safe event sender. One instance per process is enough."""

    def __init__(
        self,
        endpoint: str,
        write_key: str,
        batch_size: int = 100,
        flush_interval_s: float = 1.0,
        max_queue: int = 10_000,
        max_retries: int = 8,
        backoff_base_s: float = 0.2,
        backoff_max_s: float = 10.0,
        gzip: bool = True,
        timeout_s: float = 10.0,
        *,
        enqueue_timeout_s: float = 5.0,
        on_rejected: Callable[[list[RejectedEvent]], None] | None = None,
        on_failed: Callable[[list[bytes], str], None] | None = None,
    ) -> None:
        """``endpoint`` is the collector's base URL or its full ``.../v1/events`` URL.

        ``on_rejected`` gets events the collector refused (never retried); ``on_failed`` gets events
        given up after ``max_retries`` retries or still queued when ``close()`` timed out. Both run on
        the sender thread.
        """
        if batch_size < 1 or max_queue < 1 or max_retries < 0:
            raise ValueError("batch_size and max_queue must be >= 1 and max_retries >= 0")
        self.url = _events_url(endpoint)
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self.max_queue = max_queue
        self.max_retries = max_retries
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.gzip = gzip
        self.enqueue_timeout_s = enqueue_timeout_s
        self.on_rejected = on_rejected
        self.on_failed = on_failed

        self._request_timeout_s = timeout_s
        self._http = httpx.Client(
            timeout=timeout_s,
            headers={"Authorization": f"Bearer {write_key}", "User-Agent": USER_AGENT},
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
        )
        self._cond = threading.Condition()
        self._queue: deque[tuple[bytes, float]] = deque()
        self._enqueued = 0  # events ever queued
        self._taken = 0  # events ever taken into a batch
        self._done = 0  # events with a final outcome: accepted, rejected or failed
        self._flush_upto = 0  # events up to this count are sent without waiting for the interval
        self._closing = False
        self._closed = False
        self._abort = threading.Event()  # close() timed out: stop retrying
        self._stats = {"sent": 0, "accepted": 0, "rejected": 0, "retries": 0, "failed": 0, "requests": 0}
        self._thread = threading.Thread(target=self._run, name="clickpulse-sdk-sender", daemon=True)
        self._thread.start()
        atexit.register(self._close_at_exit)

    # -- producing side -------------------------------------------------------------------------

    def track(self, event: dict[str, Any], timeout: float | None = None) -> str:
        """Queue one event; fills ``event_id`` (uuid4) and ``event_time`` (now) when missing.

        Returns the event_id. Blocks while the queue is full, then raises ``QueueFullError``.
        """
        record = dict(event)
        if not record.get("event_id"):
            record["event_id"] = str(uuid.uuid4())
        if not record.get("event_time"):
            record["event_time"] = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        self._enqueue(orjson.dumps(record), timeout)
        return str(record["event_id"])

    def send_raw(self, payload: bytes, timeout: float | None = None) -> None:
        """Queue bytes as one event exactly as given (one NDJSON line), valid or not: for tests and the
        simulator's malformed events. The collector rejects a bad one into the dead-letter topic."""
        if not isinstance(payload, bytes | bytearray):
            raise TypeError("send_raw takes bytes")
        if b"\n" in payload:
            raise ValueError("a raw event must not contain a newline (it is sent as one NDJSON line)")
        self._enqueue(bytes(payload), timeout)

    def _enqueue(self, payload: bytes, timeout: float | None) -> None:
        if len(payload) + 1 > MAX_REQUEST_BYTES:
            raise ValueError(f"{len(payload)} bytes can never fit a {MAX_REQUEST_BYTES}-byte request")
        wait_s = self.enqueue_timeout_s if timeout is None else timeout
        with self._cond:
            if self._closed:
                raise RuntimeError("the client is closed")
            if len(self._queue) >= self.max_queue:
                deadline = time.monotonic() + wait_s
                while len(self._queue) >= self.max_queue:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0 or self._closing:
                        raise QueueFullError(
                            f"{len(self._queue)} events queued (max_queue={self.max_queue}) for {wait_s}s; "
                            f"is the collector at {self.url} reachable?"
                        )
                    self._cond.wait(remaining)
            self._queue.append((payload, time.monotonic()))
            self._enqueued += 1
            if len(self._queue) >= self.batch_size or len(self._queue) == 1:
                self._cond.notify_all()

    def flush(self, timeout: float | None = None) -> bool:
        """Send everything queued so far now; True once all of it got a final answer from the collector
        (accepted or rejected), False on timeout or if some of it was given up (``failed``)."""
        with self._cond:
            target = self._enqueued
            failed_before = self._stats["failed"]
            self._flush_upto = max(self._flush_upto, target)
            self._cond.notify_all()
            done = self._cond.wait_for(lambda: self._done >= target, timeout)
            return done and self._stats["failed"] == failed_before

    def close(self, timeout: float | None = None) -> None:
        """Flush (waiting up to ``timeout`` seconds, forever if None), stop the sender, release the
        connection. Events still unsent after the timeout are counted as failed and passed to
        ``on_failed``. Idempotent."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
        atexit.unregister(self._close_at_exit)
        flushed = self.flush(timeout)
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        if not flushed:
            self._abort.set()
        self._thread.join(timeout=None if flushed else self._request_timeout_s + 1)
        self._http.close()
        leftover = self._drain_queue()
        if leftover:
            self._give_up(leftover, "client closed before these events were sent")

    def _close_at_exit(self) -> None:
        try:
            self.close(timeout=_EXIT_TIMEOUT_S)
        except Exception:
            logger.exception("flushing ClickPulse events at exit failed")

    def __enter__(self) -> ClickPulseClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @property
    def stats(self) -> dict[str, int]:
        """sent (events answered by the collector) = accepted + rejected; failed = given up; retries =
        retried requests; requests = HTTP requests made; queued = waiting now."""
        with self._cond:
            return {**self._stats, "queued": len(self._queue)}

    # -- sending side ---------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            if self._abort.is_set():
                self._give_up(batch, "client closed before these events were sent")
                continue
            try:
                self._deliver(batch)
            except Exception:  # a callback or a bug must not kill the sender and strand the queue
                logger.exception("sending a batch of %d events failed", len(batch))
                self._give_up(batch, "unexpected error in the sender")
                continue

    def _next_batch(self) -> list[bytes] | None:
        with self._cond:
            while True:
                if self._queue:
                    due = self._queue[0][1] + self.flush_interval_s
                    if (
                        len(self._queue) >= self.batch_size
                        or self._taken < self._flush_upto
                        or self._closing
                        or time.monotonic() >= due
                    ):
                        return self._take_batch()
                    self._cond.wait(max(0.0, due - time.monotonic()))
                elif self._closing:
                    return None
                else:
                    self._cond.wait()

    def _take_batch(self) -> list[bytes]:
        batch: list[bytes] = []
        size = 0
        while self._queue and len(batch) < self.batch_size:
            payload = self._queue[0][0]
            if batch and size + len(payload) + 1 > MAX_REQUEST_BYTES:
                break
            self._queue.popleft()
            batch.append(payload)
            size += len(payload) + 1
        self._taken += len(batch)
        self._cond.notify_all()  # room for blocked track() calls
        return batch

    def _deliver(self, batch: list[bytes]) -> None:
        """Send one batch until it gets a final answer; splits it if the collector says 413."""
        body = b"\n".join(batch) + b"\n"
        headers = {"Content-Type": "application/x-ndjson"}
        if self.gzip:
            body = gzip_codec.compress(body, compresslevel=5)
            headers["Content-Encoding"] = "gzip"
        attempt = 0
        while True:
            retry_after: float | None = None
            self._count("requests", 1)
            try:
                response = self._http.post(self.url, content=body, headers=headers)
            except httpx.HTTPError as exc:
                reason = f"{type(exc).__name__}: {exc}"
            else:
                status = response.status_code
                if status == 200:
                    self._accepted(batch, response)
                    return
                reason = f"HTTP {status}: {_error_text(response)}"
                if status == 413 and len(batch) > 1:
                    half = len(batch) // 2
                    self._deliver(batch[:half])
                    self._deliver(batch[half:])
                    return
                if status < 500 and status not in _RETRYABLE_4XX:
                    self._refused(batch, status, reason)
                    return
                retry_after = _retry_after_s(response)
            if attempt >= self.max_retries or self._abort.is_set():
                self._give_up(batch, f"gave up after {attempt + 1} attempts: {reason}")
                return
            delay = random.uniform(0, min(self.backoff_max_s, self.backoff_base_s * 2**attempt))
            if retry_after is not None:
                delay = max(delay, min(retry_after, _MAX_RETRY_AFTER_S))
            attempt += 1
            self._count("retries", 1)
            logger.info("collector unavailable (%s); retry %d in %.2fs", reason, attempt, delay)
            if self._abort.wait(delay):
                self._give_up(batch, f"client closed while retrying: {reason}")
                return

    def _accepted(self, batch: list[bytes], response: httpx.Response) -> None:
        try:
            answer = response.json()
            accepted = int(answer["accepted"])
            rejected = [(int(r["index"]), str(r["error"])) for r in answer["rejected"]]
        except (ValueError, KeyError, TypeError):
            logger.error("unexpected collector answer: %.200r", response.text)
            accepted, rejected = len(batch), []
        refused = [RejectedEvent(batch[i], error, 200) for i, error in rejected if 0 <= i < len(batch)]
        with self._cond:
            self._stats["sent"] += len(batch)
            self._stats["accepted"] += accepted
            self._stats["rejected"] += len(refused)
        if refused:
            first = refused[0].error
            logger.warning("collector rejected %d of %d events; first: %s", len(refused), len(batch), first)
            self._report(refused)
        self._finish(len(batch))

    def _refused(self, batch: list[bytes], status: int, reason: str) -> None:
        logger.error("collector refused a batch of %d events, not retrying: %s", len(batch), reason)
        with self._cond:
            self._stats["sent"] += len(batch)
            self._stats["rejected"] += len(batch)
        self._report([RejectedEvent(p, reason, status) for p in batch])
        self._finish(len(batch))

    def _give_up(self, batch: list[bytes], reason: str) -> None:
        logger.error("%d events not delivered: %s", len(batch), reason)
        with self._cond:
            self._stats["failed"] += len(batch)
        if self.on_failed is not None:
            try:
                self.on_failed(batch, reason)
            except Exception:
                logger.exception("on_failed callback failed")
        self._finish(len(batch))

    def _report(self, refused: list[RejectedEvent]) -> None:
        if self.on_rejected is not None:
            try:
                self.on_rejected(refused)
            except Exception:
                logger.exception("on_rejected callback failed")

    def _finish(self, events: int) -> None:
        with self._cond:
            self._done += events
            self._cond.notify_all()

    def _count(self, name: str, value: int) -> None:
        with self._cond:
            self._stats[name] += value

    def _drain_queue(self) -> list[bytes]:
        with self._cond:
            leftover = [payload for payload, _ in self._queue]
            self._queue.clear()
            self._taken += len(leftover)
            self._cond.notify_all()
            return leftover


def _events_url(endpoint: str) -> str:
    url = endpoint.rstrip("/")
    return url if url.endswith(EVENTS_PATH) else url + EVENTS_PATH


def _retry_after_s(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "").strip()
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None  # an HTTP date: fall back to the client's own backoff


def _error_text(response: httpx.Response) -> str:
    try:
        return str(response.json().get("error", response.text[:200]))
    except ValueError:
        return response.text[:200]
