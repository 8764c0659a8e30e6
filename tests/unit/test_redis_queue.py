"""The consumer's Redis queues. The threaded one: jobs run one at a time in submission order, none runs
after one failed until ``reset``, and ``wait_idle`` returns only once everything submitted has run or been
refused. The streamed one: rounds are written when submitted and read back in submission order, and
after a failure no new round is written until ``reset``."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

import pytest
import redis

from streaming.consumer.redis_queue import OrderedRedisQueue, Round, SkippedAfterFailure, StreamedRedisQueue


def test_jobs_run_in_order_one_at_a_time() -> None:
    queue = OrderedRedisQueue()
    ran: list[int] = []
    running = threading.Semaphore(1)

    def job(i: int) -> int:
        assert running.acquire(blocking=False), "two jobs ran at once"
        ran.append(i)
        running.release()
        return i * i

    futures = [queue.submit(functools.partial(job, i)) for i in range(200)]
    assert [f.result() for f in futures] == [i * i for i in range(200)]
    assert ran == list(range(200))
    queue.shutdown()


def test_nothing_runs_after_a_failure_until_reset() -> None:
    queue = OrderedRedisQueue()
    gate = threading.Event()
    ran: list[str] = []

    def fail() -> None:
        gate.wait(5)
        ran.append("fail")
        raise redis.ConnectionError("down")

    first = queue.submit(fail)
    later = [queue.submit(functools.partial(ran.append, f"later{n}")) for n in range(3)]
    gate.set()
    with pytest.raises(redis.ConnectionError):
        first.result()
    for future in later:
        with pytest.raises(SkippedAfterFailure):
            future.result()
    assert queue.failed and ran == ["fail"]
    queue.wait_idle()
    with pytest.raises(SkippedAfterFailure):
        queue.submit(lambda: ran.append("still refused")).result()
    queue.reset()
    assert not queue.failed
    assert queue.submit(lambda: ran.append("after reset")).result() is None
    assert ran == ["fail", "after reset"]
    queue.shutdown()


class _ScriptedWriter:
    """Stands in for StateWriter's send/collect: each round's replies (or error) are set per round."""

    def __init__(self, outcomes: dict[int, BaseException]) -> None:
        self.outcomes = outcomes
        self.sent: list[int] = []
        self.collected: list[int] = []
        self.dropped = 0

    def send(self, calls: list[Any], reads: list[Any]) -> list[Any]:
        self.sent.append(calls[0])
        return [calls[0]]

    def collect(self, parts: list[Any], size: int) -> list[Any]:
        n = parts[0]
        self.collected.append(n)
        if n in self.outcomes:
            raise self.outcomes[n]
        return [n * 10]

    def drop_streams(self) -> None:
        self.dropped += 1


def _round(n: int, finished: list[int]) -> Callable[[], Round[int]]:
    def finish(replies: list[Any]) -> int:
        finished.append(n)
        return int(replies[0])

    return lambda: Round([n], [], finish)  # type: ignore[list-item]


def test_streamed_rounds_are_written_at_once_and_read_in_order() -> None:
    writer = _ScriptedWriter({})
    queue = StreamedRedisQueue(writer)  # type: ignore[arg-type]
    finished: list[int] = []
    tickets = [queue.submit_round(_round(n, finished)) for n in range(1, 6)]
    assert writer.sent == [1, 2, 3, 4, 5] and writer.collected == []  # nothing read yet
    assert tickets[2].result() == 30  # reading round 3 first reads rounds 1 and 2
    assert writer.collected == [1, 2, 3] and finished == [1, 2, 3]
    assert tickets[0].result() == 10 and writer.collected == [1, 2, 3]
    queue.wait_idle()
    assert writer.collected == [1, 2, 3, 4, 5] and [t.result() for t in tickets] == [10, 20, 30, 40, 50]
    queue.shutdown()
    assert writer.dropped == 1


def test_streamed_rounds_refuse_new_work_after_a_failure_until_reset() -> None:
    writer = _ScriptedWriter({2: redis.ResponseError("GAP partition 0")})
    queue = StreamedRedisQueue(writer)  # type: ignore[arg-type]
    finished: list[int] = []
    written = [queue.submit_round(_round(n, finished)) for n in (1, 2, 3)]
    assert written[0].result() == 10 and not queue.failed
    with pytest.raises(redis.ResponseError, match="GAP"):
        written[1].result()
    assert queue.failed
    # Round 3 was written before the failure was known: it is still read, with its own outcome.
    assert written[2].result() == 30
    refused = queue.submit_round(_round(4, finished))
    with pytest.raises(SkippedAfterFailure):
        refused.result()
    assert writer.sent == [1, 2, 3] and finished == [1, 3]
    queue.reset()
    assert not queue.failed and queue.submit_round(_round(5, finished)).result() == 50
    queue.shutdown()


def test_a_round_that_cannot_be_written_fails_and_stops_the_queue() -> None:
    class Unwritable(_ScriptedWriter):
        def send(self, calls: list[Any], reads: list[Any]) -> list[Any]:
            raise redis.ConnectionError("Connection refused")

    queue = StreamedRedisQueue(Unwritable({}))  # type: ignore[arg-type]
    ticket = queue.submit_round(_round(1, []))
    with pytest.raises(redis.ConnectionError):
        ticket.result()
    assert queue.failed
    queue.shutdown()
