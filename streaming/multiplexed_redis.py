"""One multiplexed, pipelined Redis connection per server for the API's hot read paths.

The stats and recommendations routes need one or two round trips each. Through redis-py's asyncio
client a round trip cost the API 120-250 µs of CPU (connection pool check-out and check-in, a timeout
task per read, response callbacks), as much as a whole constant HTTP answer. Here every request of the
process shares one connection: a round's commands are encoded and written at once, the round waits on
one future, and a hiredis reader hands the replies out in order (Redis answers a connection in order).
The same round costs 35-60 µs (README "How it reads Redis"), and the rounds of all the requests one turn
of the event loop serves leave in one write.

Scope: standalone Redis (``redis://`` URLs, as the stack, the tests and a single managed instance use),
read commands and the read-only scripts of the API. A Cluster, TLS (``rediss://``) or a unix socket
keep redis-py's asyncio clients (``AsyncReads`` wraps them with the same ``execute`` method), so the
readers have one code path.

Errors raise redis-py's exception classes (``ConnectionError``, ``TimeoutError``, ``ResponseError`` and
its subclasses such as ``NoScriptError``), which the API already maps to 503 with ``Retry-After``. A
lost connection fails every command waiting on it; the next round connects again.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
from collections.abc import Sequence
from typing import Any, Final, Protocol

import hiredis
from redis._parsers.base import BaseParser
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.connection import parse_url
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

Command = tuple[Any, ...]
DEFAULT_TIMEOUT_S: Final = 5.0
CONNECT_TIMEOUT_S: Final = 2.0


def encode_command(args: Command) -> bytes:
    """A command as a RESP array of bulk strings."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        if isinstance(arg, str):
            data = arg.encode()
        elif isinstance(arg, bytes):
            data = arg
        elif isinstance(arg, (int, float)) and not isinstance(arg, bool):
            data = repr(arg).encode()
        else:
            raise TypeError(f"unsupported Redis argument type {type(arg).__name__}: {arg!r}")
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


class _Pending:
    """A round waiting for its replies: one future for all of them, resolved with the list."""

    __slots__ = ("count", "deadline", "future", "replies")

    def __init__(self, future: asyncio.Future[list[Any]], count: int, deadline: float) -> None:
        self.future = future
        self.count = count
        self.deadline = deadline
        self.replies: list[Any] = []


class _Protocol(asyncio.Protocol):
    """Feeds what Redis sends to a hiredis reader and resolves the waiting rounds in order.

    One watchdog timer per connection (not one per round) fails the connection when the oldest round
    waits longer than ``timeout_s``."""

    def __init__(self, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.reader = hiredis.Reader(encoding="utf-8", replyError=ResponseError)
        self.waiting: collections.deque[_Pending] = collections.deque()
        self.transport: Any = None  # asyncio's Transport or uvloop's (which does not subclass it)
        self.closed = False
        self.outgoing: list[bytes] = []  # rounds written during this turn of the event loop
        self.timeout_s = timeout_s
        self._watchdog: asyncio.TimerHandle | None = None

    def send(self, data: bytes, count: int, loop: asyncio.AbstractEventLoop) -> asyncio.Future[list[Any]]:
        """Queue a round of ``count`` commands; the future gets their replies. The rounds of one
        event-loop turn leave in one write (one system call for all the requests being served)."""
        future: asyncio.Future[list[Any]] = loop.create_future()
        self.waiting.append(_Pending(future, count, loop.time() + self.timeout_s))
        if self._watchdog is None:
            self._watchdog = loop.call_later(self.timeout_s, self._check, loop)
        if not self.outgoing:
            loop.call_soon(self._flush)
        self.outgoing.append(data)
        return future

    def _check(self, loop: asyncio.AbstractEventLoop) -> None:
        self._watchdog = None
        if not self.waiting or self.closed:
            return
        overdue = loop.time() - self.waiting[0].deadline
        if overdue >= 0:
            self.fail(RedisTimeoutError(f"Redis did not answer within {self.timeout_s:g} s"))
        else:
            self._watchdog = loop.call_later(-overdue, self._check, loop)

    def _flush(self) -> None:
        data = b"".join(self.outgoing)
        self.outgoing = []
        if not self.closed and self.transport is not None:
            self.transport.write(data)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        reader = self.reader
        reader.feed(data)
        waiting = self.waiting
        while True:
            reply = reader.gets()
            if reply is False:
                return
            if not waiting:  # nobody asked: the stream is out of step, start over
                self.fail(RedisConnectionError("Redis sent a reply nobody waited for"))
                return
            pending = waiting[0]
            pending.replies.append(reply)
            if len(pending.replies) == pending.count:
                waiting.popleft()
                if not pending.future.done():  # a cancelled request still consumes its replies
                    pending.future.set_result(pending.replies)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail_waiting(RedisConnectionError(f"connection to Redis lost: {exc or 'closed'}"))

    def fail(self, exc: Exception) -> None:
        """Fail every waiting command and drop the connection (its replies would be out of step)."""
        self.closed = True
        self._fail_waiting(exc)
        if self.transport is not None:
            self.transport.abort()

    def _fail_waiting(self, exc: Exception) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        while self.waiting:
            future = self.waiting.popleft().future
            if not future.done():
                future.set_exception(exc)
                future.exception()  # retrieved: no warning when the request was cancelled


def _raised(reply: Any) -> Any:
    """An error reply as redis-py's exception class (``NOSCRIPT`` → ``NoScriptError``, ...)."""
    if isinstance(reply, ResponseError):
        raise BaseParser.parse_error(str(reply))
    return reply


class MultiplexedRedis:
    """``await execute([(cmd, *args), ...])`` → the replies, in order; one connection per instance."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        db: int = 0,
        username: str | None = None,
        password: str | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        self.host, self.port, self.db = host, port, db
        self.username, self.password = username, password
        self.timeout_s = timeout_s
        self._protocol: _Protocol | None = None
        self._connecting: asyncio.Lock | None = None

    @classmethod
    def from_url(cls, url: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> MultiplexedRedis:
        """A client for a ``redis://`` URL (host, port, db, user and password as redis-py reads them)."""
        if not url.startswith("redis://"):
            raise ValueError(f"MultiplexedRedis takes redis:// URLs only, not {url.split('://')[0]}://")
        parts = parse_url(url)
        return cls(
            parts.get("host", "localhost"),
            int(parts.get("port", 6379)),
            db=int(parts.get("db", 0) or 0),
            username=parts.get("username"),
            password=parts.get("password"),
            timeout_s=timeout_s,
        )

    async def _connection(self) -> _Protocol:
        protocol = self._protocol
        if protocol is not None and not protocol.closed:
            return protocol
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            if self._protocol is not None and not self._protocol.closed:
                return self._protocol
            self._protocol = await self._connect()
            return self._protocol

    async def _connect(self) -> _Protocol:
        loop = asyncio.get_running_loop()
        try:
            _transport, protocol = await asyncio.wait_for(
                loop.create_connection(lambda: _Protocol(self.timeout_s), self.host, self.port),
                CONNECT_TIMEOUT_S,
            )
        except (OSError, TimeoutError) as exc:  # builtin TimeoutError: wait_for's
            raise RedisConnectionError(f"cannot connect to Redis at {self.host}:{self.port}: {exc}") from exc
        hello: list[Command] = []
        if self.password is not None:
            hello.append(("AUTH", self.username or "default", self.password))
        if self.db:
            hello.append(("SELECT", self.db))
        if hello:
            try:
                await self._send(protocol, hello)
            except Exception:
                protocol.fail(RedisConnectionError("Redis refused the login"))
                raise
        return protocol

    async def _send(self, protocol: _Protocol, commands: Sequence[Command]) -> list[Any]:
        data = b"".join([encode_command(c) for c in commands])
        replies = await protocol.send(data, len(commands), asyncio.get_running_loop())
        return [_raised(reply) for reply in replies]

    async def execute(self, commands: Sequence[Command]) -> list[Any]:
        """Send the commands in one write; their replies in order. The first error reply raises."""
        if not commands:
            return []
        return await self._send(await self._connection(), commands)

    async def load_script(self, source: str) -> None:
        await self.execute([("SCRIPT", "LOAD", source)])

    async def aclose(self) -> None:
        protocol, self._protocol = self._protocol, None
        if protocol is not None and protocol.transport is not None:
            protocol.closed = True
            protocol.transport.close()


class AsyncReads(Protocol):
    """What the API's readers need from an asyncio Redis client: one round of raw commands."""

    async def execute(self, commands: Sequence[Command]) -> list[Any]: ...

    async def load_script(self, source: str) -> None: ...

    async def aclose(self) -> None: ...


class RedisPyReads:
    """redis-py's asyncio client (standalone or Cluster) behind ``AsyncReads``: one pipeline a round.

    Replies are redis-py's for raw commands: ``HGETALL`` a dict rather than a flat list, the rest alike;
    ``flat_pairs`` reads both."""

    def __init__(self, client: Redis | RedisCluster) -> None:
        self.client = client

    async def execute(self, commands: Sequence[Command]) -> list[Any]:
        pipe = self.client.pipeline(transaction=False)
        for command in commands:
            pipe.execute_command(*command)
        return list(await pipe.execute())

    async def load_script(self, source: str) -> None:
        await self.client.script_load(source)  # a Cluster loads it on every primary

    async def aclose(self) -> None:
        await self.client.aclose()


def async_reads(url: str, cluster: bool) -> AsyncReads:
    """The fastest client that serves ``url``: multiplexed for standalone ``redis://``, else redis-py."""
    if not cluster and url.startswith("redis://"):
        return MultiplexedRedis.from_url(url)
    kind = RedisCluster if cluster else Redis
    return RedisPyReads(kind.from_url(url, decode_responses=True, socket_connect_timeout=CONNECT_TIMEOUT_S))


def as_async_reads(client: AsyncReads | Redis | RedisCluster) -> AsyncReads:
    """A redis-py asyncio client wrapped; an ``AsyncReads`` as it is."""
    if isinstance(client, (Redis, RedisCluster)):
        return RedisPyReads(client)
    return client


def flat_pairs(reply: Any) -> dict[str, str]:
    """A hash reply (flat ``[field, value, ...]`` or redis-py's dict) as a dict of strings."""
    if not reply:
        return {}
    if isinstance(reply, dict):
        return {str(k): str(v) for k, v in reply.items()}
    return {str(reply[i]): str(reply[i + 1]) for i in range(0, len(reply), 2)}


class ReadScript:
    """A Lua script called by SHA; loaded again when the server does not know it (restart, flush)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()

    async def __call__(self, client: AsyncReads, keys: Sequence[str], args: Sequence[Any]) -> Any:
        command = ("EVALSHA", self.sha, len(keys), *keys, *args)
        try:
            return (await client.execute([command]))[0]
        except NoScriptError:
            await client.load_script(self.source)
            return (await client.execute([command]))[0]
