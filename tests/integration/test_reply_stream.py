"""``ReplyStream`` on the stack's real Redis: commands written at once are answered in order, error
replies come back as objects among the others, and a lost connection fails what was not read and
reconnects on the next write."""

from __future__ import annotations

import uuid

import pytest
import redis

from clickpulse.settings import Settings
from streaming.consumer.reply_stream import ReplyStream
from streaming.consumer.state import StateWriter
from streaming.keyspace import Keyspace
from streaming.redis_conn import Family, RedisRouter, connect


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


def test_a_connection_lost_mid_round_drops_the_other_streams_too(settings: Settings) -> None:
    """A round spread over two Redis clients: when one connection is lost while the round's replies
    are read, the other stream's unread replies must not be taken for the next round's."""
    db1 = settings.redis_url.rsplit("/", 1)[0] + "/1"
    routed = settings.model_copy(
        update={"redis_url_profiles": db1, "redis_prefix": f"t{uuid.uuid4().hex[:8]}"}
    )
    router = RedisRouter.from_settings(routed)
    writer = StateWriter(router, Keyspace.from_settings(routed), routed, routed.topic_raw)
    live, profiles = router.client(Family.LIVE), router.client(Family.PROFILES)
    assert live is not profiles
    try:
        parts = writer.send([], [(live, ("CLIENT", "ID")), (profiles, ("ECHO", "first round"))])
        (live_id, echoed) = writer.collect(parts, 2)
        assert echoed == "first round"
        # The live stream's connection kills itself: Redis answers the kill, closes the connection and
        # never answers the PING; the profiles stream's reply to this round stays unread.
        kill = ("CLIENT", "KILL", "ID", live_id, "SKIPME", "no")
        parts = writer.send([], [(live, kill), (live, ("PING",)), (profiles, ("ECHO", "second round"))])
        with pytest.raises(redis.ConnectionError):
            writer.collect(parts, 3)
        parts = writer.send([], [(profiles, ("ECHO", "third round"))])
        assert writer.collect(parts, 1) == ["third round"]
    finally:
        writer.drop_streams()
        router.close()
