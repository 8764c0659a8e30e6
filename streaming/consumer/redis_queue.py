"""The consumer's Redis work queues: rounds of Lua calls run in the order they were submitted, and
none runs after one failed.

The consumer keeps Redis busy by queueing a batch's phase one before the previous batch's phase two
returned. Exactly-once needs every call of a watermark role to be applied only after all earlier
calls of that role were (a later call would move the watermark past offsets an earlier failed call
never counted). Refusing every round after a failure (``SkippedAfterFailure``) until the consumer
retried all of its batches in flight and called ``reset`` gives the rest.

Two queues, one interface (``submit_round``, ``failed``, ``wait_idle``, ``reset``, ``shutdown``):

- ``StreamedRedisQueue`` (standalone Redis, the default): a round's commands are written to one
  connection per Redis when it is submitted (``ReplyStream``) and its replies are read, in order, when
  its result is asked for. Redis runs the next round while this process works, with no thread. Calls
  written behind one that fails are refused by the scripts themselves (the ``after`` condition,
  common.lua), so none of them moves a watermark past the failed one.
- ``OrderedRedisQueue`` (Redis Cluster, whose client cannot split writing from reading): one thread
  runs each round as one pipeline per node and waits for its replies before the next.
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

import redis

if TYPE_CHECKING:
    from streaming.consumer.state import LuaCall, Read, SentPart, StateWriter

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


class SkippedAfterFailure(redis.RedisError):
    """Not run: an earlier job of the queue failed and the consumer has not retried its batches yet."""


@dataclass(slots=True)
class Round(Generic[T]):
    """Lua calls and plain reads sent together (one pipeline per Redis), and what their replies
    (the calls', then the reads', in order) mean to the consumer."""

    calls: list[LuaCall]
    reads: list[Read]
    finish: Callable[[list[Any]], T]


class Pending(Protocol[T_co]):
    def result(self) -> T_co: ...


class OrderedRedisQueue:
    """Jobs run in submission order on one thread; after a failure every later job is refused."""

    def __init__(self, writer: StateWriter | None = None, thread_name: str = "redis-writer") -> None:
        self._writer = writer
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=thread_name)
        self._failed = False

    @property
    def failed(self) -> bool:
        return self._failed

    def submit(self, job: Callable[[], T]) -> Future[T]:
        return self._executor.submit(self._run, job)

    def submit_round(self, prepare: Callable[[], Round[T]]) -> Future[T]:
        """Run ``prepare()``'s round in the thread: one pipeline per client, then its ``finish``."""
        writer = self._writer
        assert writer is not None, "submit_round needs the queue's StateWriter"

        def job() -> T:
            work = prepare()
            return work.finish(writer.execute(work.calls, work.reads))

        return self.submit(job)

    def _run(self, job: Callable[[], T]) -> T:
        if self._failed:
            raise SkippedAfterFailure("not run: an earlier Redis job of this consumer failed")
        try:
            return job()
        except BaseException:
            self._failed = True
            raise

    def wait_idle(self) -> None:
        """Return once every job submitted so far has run or been refused."""
        self._executor.submit(lambda: None).result()

    def reset(self) -> None:
        """Run jobs again; only once the batches of every failed or refused job have been retried."""
        self.wait_idle()
        self._failed = False

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True)


class Ticket(Generic[T]):
    """A round written to Redis; ``result()`` reads the replies of every earlier round first."""

    __slots__ = ("_queue", "done", "error", "parts", "value", "work")

    def __init__(self, queue: StreamedRedisQueue, work: Round[T] | None) -> None:
        self._queue = queue
        self.work = work
        self.parts: list[SentPart] = []
        self.done = False
        self.value: T | None = None
        self.error: BaseException | None = None

    def result(self) -> T:
        while not self.done:
            self._queue.complete_oldest()
        if self.error is not None:
            raise self.error
        return self.value  # type: ignore[return-value]


class StreamedRedisQueue:
    """Rounds written at once, replies read in submission order (standalone Redis; this thread only)."""

    def __init__(self, writer: StateWriter) -> None:
        self._writer = writer
        self._pending: collections.deque[Ticket[Any]] = collections.deque()
        self._failed = False

    @property
    def failed(self) -> bool:
        return self._failed

    def submit_round(self, prepare: Callable[[], Round[T]]) -> Ticket[T]:
        ticket: Ticket[T] = Ticket(self, None)
        if self._failed:
            ticket.error = SkippedAfterFailure("not run: an earlier Redis round of this consumer failed")
            ticket.done = True
            return ticket
        try:
            work = ticket.work = prepare()
            ticket.parts = self._writer.send(work.calls, work.reads)
        except BaseException as exc:
            self._failed = True
            ticket.error, ticket.done = exc, True
            return ticket
        self._pending.append(ticket)
        return ticket

    def complete_oldest(self) -> None:
        """Read the replies of the oldest round written and run its ``finish``."""
        ticket = self._pending.popleft()
        work = ticket.work
        assert work is not None
        try:
            replies = self._writer.collect(ticket.parts, len(work.calls) + len(work.reads))
            ticket.value = work.finish(replies)
        except BaseException as exc:
            self._failed = True
            ticket.error = exc
        ticket.done = True

    def wait_idle(self) -> None:
        """Read the replies of every round written so far."""
        while self._pending:
            self.complete_oldest()

    def reset(self) -> None:
        self.wait_idle()
        self._failed = False

    def shutdown(self) -> None:
        self.wait_idle()
        self._writer.drop_streams()
