"""streaming.multiplexed_redis against real redis-servers: the stack's (ACL mode, admin login) and a
private one this module starts and stops, on asyncio's and uvloop's event loops."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import uvloop
from redis.exceptions import AuthenticationError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from clickpulse.stack import redis_server
from clickpulse.stack.processes import stop
from streaming.multiplexed_redis import (
    MultiplexedRedis,
    ReadScript,
    RedisPyReads,
    async_reads,
    encode_command,
    flat_pairs,
)

LOOPS: dict[str, Callable[[Coroutine[Any, Any, Any]], Any]] = {"asyncio": asyncio.run, "uvloop": uvloop.run}


@pytest.fixture(params=sorted(LOOPS))
def run(request: pytest.FixtureRequest) -> Callable[[Coroutine[Any, Any, Any]], Any]:
    return LOOPS[request.param]


def _spare_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def private_server(tmp_path: Path) -> Iterator[tuple[str, Callable[[], None], Callable[[], None]]]:
    """A redis-server of this test's own, with functions that stop it and start it again (same port)."""
    port = _spare_port()
    url = f"redis://127.0.0.1:{port}/0"

    def start() -> None:
        proc = redis_server.start_instance(tmp_path, "mux", "127.0.0.1", port, "64mb")
        redis_server.wait_ready(url, 20, proc.log_file if proc else None)

    def halt() -> None:
        stop(tmp_path, "mux", timeout_s=10)

    start()
    try:
        yield url, halt, start
    finally:
        halt()


def test_commands_are_encoded_as_resp_bulk_strings() -> None:
    assert encode_command(("GET", "k")) == b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"
    assert encode_command(("SET", "é", b"\x00\xff", 12, 1.5)) == (
        b"*5\r\n$3\r\nSET\r\n$2\r\n\xc3\xa9\r\n$2\r\n\x00\xff\r\n$2\r\n12\r\n$3\r\n1.5\r\n"
    )
    for bad in (None, True, ["x"]):
        with pytest.raises(TypeError, match="unsupported Redis argument"):
            encode_command(("SET", "k", bad))


def test_a_round_answers_what_redis_py_answers(redis_url: str, run: Callable[..., Any]) -> None:
    """Mixed read commands on the stack's Redis (admin login from the URL): the same values as redis-py's
    sync client, in the order sent."""
    sync = redis.Redis.from_url(redis_url, decode_responses=True)
    base = f"test-mux-{uuid.uuid4().hex[:8]}"
    sync.set(f"{base}:s", "héllo")
    sync.rpush(f"{base}:l", *[f"v{i}" for i in range(7)])
    sync.hset(f"{base}:h", mapping={"clicks": 3, "impressions": 40})
    sync.zadd(f"{base}:z", {f"m{i}": i * 1.5 for i in range(12)})
    commands: list[tuple[Any, ...]] = [
        ("GET", f"{base}:s"),
        ("MGET", f"{base}:s", f"{base}:missing"),
        ("LRANGE", f"{base}:l", 0, -1),
        ("HGETALL", f"{base}:h"),
        ("ZREVRANGE", f"{base}:z", 0, 4, "WITHSCORES"),
        ("GET", f"{base}:missing"),
    ]

    async def both() -> tuple[list[Any], list[Any]]:
        mux = MultiplexedRedis.from_url(redis_url)
        wrapped = RedisPyReads(redis.asyncio.Redis.from_url(redis_url, decode_responses=True))
        try:
            return await mux.execute(commands), await wrapped.execute(commands)
        finally:
            await mux.aclose()
            await wrapped.aclose()

    try:
        mine, theirs = run(both())
        top = sync.zrevrange(f"{base}:z", 0, 4, withscores=True)
        assert mine[0] == "héllo" and mine[1] == ["héllo", None] and mine[5] is None
        assert mine[2] == sync.lrange(f"{base}:l", 0, -1)
        assert flat_pairs(mine[3]) == flat_pairs(theirs[3]) == sync.hgetall(f"{base}:h")
        assert [(mine[4][i], float(mine[4][i + 1])) for i in range(0, 10, 2)] == top
        assert [mine[i] for i in (0, 1, 2, 5)] == [theirs[i] for i in (0, 1, 2, 5)]
    finally:
        sync.delete(*(f"{base}:{s}" for s in "slhz"))
        sync.close()


def test_concurrent_requests_share_one_connection_and_get_their_own_replies(
    redis_url: str, run: Callable[..., Any]
) -> None:
    sync = redis.Redis.from_url(redis_url, decode_responses=True)
    base = f"test-mux-{uuid.uuid4().hex[:8]}"
    values = {f"{base}:{i}": uuid.uuid4().hex for i in range(300)}
    sync.mset(values)
    keys = list(values)

    async def main() -> tuple[list[list[Any]], int]:
        mux = MultiplexedRedis.from_url(redis_url)
        try:

            async def one(i: int) -> list[Any]:
                await asyncio.sleep(0)
                return await mux.execute([("GET", keys[i]), ("GET", keys[-1 - i]), ("STRLEN", keys[i])])

            replies = await asyncio.gather(*(one(i) for i in range(len(keys))))
            name = f"mux-{uuid.uuid4().hex[:6]}"
            await mux.execute([("CLIENT", "SETNAME", name)])
            listed = await asyncio.to_thread(sync.client_list)
            return list(replies), sum(1 for c in listed if c["name"] == name)
        finally:
            await mux.aclose()

    try:
        replies, connections = run(main())
        assert connections == 1
        assert replies == [[values[keys[i]], values[keys[-1 - i]], 32] for i in range(len(keys))]
    finally:
        sync.delete(*keys)
        sync.close()


def test_an_error_reply_raises_its_class_and_the_connection_stays_in_step(
    redis_url: str, run: Callable[..., Any]
) -> None:
    sync = redis.Redis.from_url(redis_url, decode_responses=True)
    key = f"test-mux-{uuid.uuid4().hex[:8]}"
    sync.set(key, "plain")

    async def main() -> tuple[str, Any]:
        mux = MultiplexedRedis.from_url(redis_url)
        try:
            with pytest.raises(ResponseError) as caught:
                await mux.execute([("GET", key), ("LRANGE", key, 0, -1), ("GET", key)])
            return str(caught.value), await mux.execute([("GET", key)])
        finally:
            await mux.aclose()

    try:
        message, after = run(main())
        assert message.startswith("WRONGTYPE") or "wrong kind" in message
        assert after == ["plain"]
    finally:
        sync.delete(key)
        sync.close()


def test_a_script_unknown_to_the_server_is_loaded_and_run(redis_url: str, run: Callable[..., Any]) -> None:
    """A source no server has seen (a unique comment): EVALSHA answers NOSCRIPT, the script loads, reruns."""
    source = f"-- {uuid.uuid4().hex}\nreturn {{KEYS[1], ARGV[1], tonumber(ARGV[2]) * 2}}"
    script = ReadScript(source)

    async def main() -> tuple[Any, Any]:
        mux = MultiplexedRedis.from_url(redis_url)
        try:
            first = await script(mux, ["k1"], ["a", 21])
            return first, await script(mux, ["k2"], ["b", 1])
        finally:
            await mux.aclose()

    first, second = run(main())
    assert first == ["k1", "a", 42] and second == ["k2", "b", 2]


def test_wrong_credentials_fail_with_redis_py_s_error(redis_url: str, run: Callable[..., Any]) -> None:
    parsed = redis.connection.parse_url(redis_url)
    if parsed.get("password") is None:  # the stack opted out of ACL mode: an open Redis takes no login
        bad = redis_url.replace("redis://", "redis://nobody:wrong@", 1)
    else:
        bad = redis_url.replace(f":{parsed['password']}@", ":wrong-password@", 1)

    async def main() -> None:
        mux = MultiplexedRedis.from_url(bad)
        try:
            await mux.execute([("PING",)])
        finally:
            await mux.aclose()

    with pytest.raises(AuthenticationError):
        run(main())


def test_a_lost_server_fails_the_round_and_the_next_round_reconnects(
    private_server: tuple[str, Callable[[], None], Callable[[], None]], run: Callable[..., Any]
) -> None:
    url, halt, start = private_server
    redis.Redis.from_url(url).set("k", "v1")

    async def main() -> list[Any]:
        mux = MultiplexedRedis.from_url(url)
        seen: list[Any] = [await mux.execute([("GET", "k")])]
        await asyncio.to_thread(halt)
        with pytest.raises(RedisConnectionError):
            await mux.execute([("GET", "k")])
        with pytest.raises(RedisConnectionError, match="cannot connect"):
            await mux.execute([("GET", "k")])
        await asyncio.to_thread(start)
        await asyncio.to_thread(lambda: redis.Redis.from_url(url).set("k", "v2"))
        seen.append(await mux.execute([("GET", "k")]))
        await mux.aclose()
        return seen

    assert run(main()) == [["v1"], ["v2"]]


def test_a_round_that_gets_no_answer_times_out_and_the_next_round_works(
    private_server: tuple[str, Callable[[], None], Callable[[], None]], run: Callable[..., Any]
) -> None:
    """BLPOP on an empty list holds the connection for 2 s; the client gives up after 0.2 s, drops the
    connection (its replies would arrive out of step) and the next round connects again."""
    url, _halt, _start = private_server

    async def main() -> tuple[float, list[Any]]:
        mux = MultiplexedRedis.from_url(url, timeout_s=0.2)
        began = asyncio.get_running_loop().time()
        with pytest.raises(RedisTimeoutError):
            await mux.execute([("BLPOP", "empty", 2)])
        waited = asyncio.get_running_loop().time() - began
        after = await mux.execute([("PING",), ("ECHO", "ok")])
        await mux.aclose()
        return waited, after

    waited, after = run(main())
    assert 0.15 < waited < 1.5
    assert after == ["PONG", "ok"]


def test_a_late_round_times_out_by_its_own_deadline(
    private_server: tuple[str, Callable[[], None], Callable[[], None]], run: Callable[..., Any]
) -> None:
    """One watchdog serves the connection: a round sent after others were answered still fails
    ``timeout_s`` after it was sent (not after the watchdog's first check), and rounds answered in time
    are not failed by it."""
    url, _halt, _start = private_server

    async def main() -> tuple[float, list[Any]]:
        loop = asyncio.get_running_loop()
        mux = MultiplexedRedis.from_url(url, timeout_s=0.4)
        answered = [await mux.execute([("PING",)])]  # arms the watchdog at t0 + 0.4
        await asyncio.sleep(0.25)
        answered.append(await mux.execute([("ECHO", "in time")]))
        began = loop.time()
        with pytest.raises(RedisTimeoutError):
            await mux.execute([("BLPOP", "empty", 2)])  # due at began + 0.4, after the first check
        waited = loop.time() - began
        await mux.aclose()
        return waited, answered

    waited, answered = run(main())
    assert answered == [["PONG"], ["in time"]]
    assert 0.35 < waited < 1.5


def test_standalone_redis_urls_get_the_multiplexed_client_and_others_redis_py() -> None:
    async def kinds() -> list[type]:
        clients = [
            async_reads("redis://127.0.0.1:6379/0", cluster=False),
            async_reads("rediss://127.0.0.1:6380/0", cluster=False),
            async_reads("redis://127.0.0.1:7000/0", cluster=True),
        ]
        for client in clients:
            await client.aclose()
        return [type(c) for c in clients]

    assert asyncio.run(kinds()) == [MultiplexedRedis, RedisPyReads, RedisPyReads]
    with pytest.raises(ValueError, match="redis:// URLs only"):
        MultiplexedRedis.from_url("unix:///tmp/redis.sock")
