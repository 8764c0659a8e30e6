"""One connection to a standalone Redis on which commands are written at once and read back later.

Redis answers a connection's commands in the order it received them, and keeps executing what it has
read while the replies wait in its output buffer. So the consumer can write a batch's Lua calls the
moment it has planned them and read their replies only when it needs them: Redis always has the
next round queued instead of waiting for this process between rounds (``StreamedRedisQueue``).

A connection error drops the connection: every reply written before it is lost, and reading one
raises ``ConnectionError``. The next write connects again (with the client's URL, credentials,
database and timeouts).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import redis
from redis.connection import ConnectionInterface
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError


@dataclass(frozen=True, slots=True)
class Written:
    """Commands written to one connection of a stream: read back with ``ReplyStream.read``."""

    connection: int  # which connection of the stream (a reconnect starts a new one)
    count: int


class ReplyStream:
    """Write now, read later, in order. Not thread-safe: one thread writes and reads."""

    def __init__(self, client: redis.Redis | redis.RedisCluster) -> None:
        if isinstance(client, redis.RedisCluster):
            raise TypeError("ReplyStream needs a standalone Redis client")
        self._pool = client.connection_pool
        self._connection: ConnectionInterface | None = None
        self._generation = 0

    def write(self, commands: list[tuple[Any, ...]]) -> Written:
        connection = self._connection
        if connection is None:
            connection = self._pool.make_connection()
            self._connection = connection
            self._generation += 1
        try:
            # No health check: its PING would be answered among the replies not read yet.
            connection.send_packed_command(connection.pack_commands(commands), check_health=False)
        except BaseException:
            self.drop()
            raise
        return Written(self._generation, len(commands))

    def read(self, written: Written) -> list[Any]:
        """The replies of ``written`` (error replies as ``ResponseError`` objects). Every earlier
        ``Written`` of the stream must have been read before."""
        connection = self._connection
        if connection is None or written.connection != self._generation:
            raise RedisConnectionError("the Redis connection was lost before these replies were read")
        replies: list[Any] = []
        try:
            for _ in range(written.count):
                try:
                    replies.append(connection.read_response())
                except ResponseError as exc:
                    replies.append(exc)
        except BaseException:
            self.drop()
            raise
        return replies

    def drop(self) -> None:
        """Close the connection (the replies not read yet are lost)."""
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.disconnect()
