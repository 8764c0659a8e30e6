"""The consumer's ordered Redis queue: jobs run one at a time in submission order, none runs after one
failed until ``reset``, and ``wait_idle`` returns only once everything submitted has run or been refused."""

from __future__ import annotations

import functools
import threading

import pytest
import redis

from streaming.consumer.redis_queue import OrderedRedisQueue, SkippedAfterFailure


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
