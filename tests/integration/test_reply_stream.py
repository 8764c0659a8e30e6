"""``ReplyStream`` on the stack's real Redis: commands written at once are answered in order, error
replies come back as objects among the others, and a lost connection fails what was not read and
reconnects on the next write."""

from __future__ import annotations

import uuid

import pytest
import redis

from clickpulse.settings import Settings
from streaming.consumer.reply_stream import ReplyStream
from streaming.redis_conn import connect


def test_replies_come_back_in_order_with_error_replies_in_place(settings: Settings) -> None:
    client = connect(settings.redis_url)
    key = f"test-stream-{uuid.uuid4().hex}"
    stream = ReplyStream(client)
    try:
        first = stream.write([("SET", key, "a"), ("APPEND", key, "b")])
        second = stream.write([("INCR", key), ("GET", key), ("STRLEN", key)])
        third = stream.write([("DEL", key)])
        assert stream.read(first) == ["OK", 2]
        replies = stream.read(second)
        assert isinstance(replies[0], redis.ResponseError) and "not an integer" in str(replies[0])
        assert replies[1:] == ["ab", 2]
        assert stream.read(third) == [1]
    finally:
        stream.drop()
        client.delete(key)
        client.close()


def test_a_lost_connection_fails_what_was_not_read_and_the_next_write_reconnects(settings: Settings) -> None:
    client = connect(settings.redis_url)
    stream = ReplyStream(client)
    try:
        before = stream.write([("CLIENT", "ID")])
        (connection_id,) = stream.read(before)
        assert client.client_kill_filter(_id=connection_id) == 1
        with pytest.raises(redis.ConnectionError):  # from the write or from the read
            stream.read(stream.write([("PING",)]))
        with pytest.raises(redis.ConnectionError, match="lost before"):
            stream.read(before)  # written to the connection that is gone
        (new_id,) = stream.read(stream.write([("CLIENT", "ID")]))
        assert new_id != connection_id
    finally:
        stream.drop()
        client.close()
