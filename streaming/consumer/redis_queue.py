"""The consumer's Redis work queue: one thread runs the submitted jobs one at a time, in order, and
stops running any after one failed.

The consumer keeps Redis busy by queueing a batch's phase one before the previous batch's phase two
returned. Exactly-once needs every call of a watermark role to be applied only after all earlier
calls of that role were (a later call would move the watermark past offsets an earlier failed call
never counted). One thread in submission order gives the order; refusing every job after a failure
(``SkippedAfterFailure``) until the consumer retried all of its batches in flight and called
``reset`` gives the rest.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

import redis

T = TypeVar("T")


class SkippedAfterFailure(redis.RedisError):
    """Not run: an earlier job of the queue failed and the consumer has not retried its batches yet."""


class OrderedRedisQueue:
    """Jobs run in submission order on one thread; after a failure every later job is refused."""

    def __init__(self, thread_name: str = "redis-writer") -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=thread_name)
        self._failed = False

    @property
    def failed(self) -> bool:
        return self._failed

    def submit(self, job: Callable[[], T]) -> Future[T]:
        return self._executor.submit(self._run, job)

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
