"""Payload shapes, element byte ranges, capped gzip decoding and write-key checks (no services)."""

from __future__ import annotations

import gzip
import json
import zlib
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streaming.api_keys import RedactQueryKeyFilter
from streaming.collector.auth import is_write_key, presented_key
from streaming.collector.body import BodyEncodingError, BodyTooLargeError, CappedDecompressor
from streaming.payload import (
    MAX_EVENTS_PER_PAYLOAD,
    PayloadError,
    TooManyEventsError,
    element_spans,
    parse_payload,
)


@pytest.mark.parametrize(
    ("body", "content_type", "shape", "count"),
    [
        (b'[{"a": 1}, {"b": 2}]', "application/json", "array", 2),
        (b'  {"events": [{"a": 1}, 3, "x"]}\n', None, "wrapped", 3),
        (b'{"a": 1}\n\n{"b": 2}\r\n{broken\n', None, "ndjson", 3),
        (b'{"a": 1}', "text/plain;charset=UTF-8", "ndjson", 1),  # a single event (sendBeacon)
        (b'{\n  "a": 1\n}', "application/json", "ndjson", 1),  # pretty-printed single event
        (b'[{"a": 1}]\n[2]', "application/x-ndjson", "ndjson", 2),  # content type wins over sniffing
        (b"\xef\xbb\xbf[]", None, "array", 0),
    ],
)
def test_shapes(body: bytes, content_type: str | None, shape: str, count: int) -> None:
    payload = parse_payload(body, content_type)
    assert (payload.shape, len(payload)) == (shape, count)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "empty"),
        (b"  \n ", "empty"),
        (b"hello", "not JSON"),
        (b"[1, 2", "malformed JSON array"),
        (b'{"events": {"a": 1}}', '"events" must be an array'),
    ],
)
def test_unreadable_payloads(body: bytes, message: str) -> None:
    with pytest.raises(PayloadError, match=message):
        parse_payload(body)


def test_too_many_entries() -> None:
    with pytest.raises(TooManyEventsError):
        parse_payload(b"1\n" * (MAX_EVENTS_PER_PAYLOAD + 1), "application/x-ndjson")


def test_ndjson_originals_are_the_lines_as_sent() -> None:
    payload = parse_payload(b' {"a": 1} \n\n{oops\n[1]\n', "application/x-ndjson")
    assert [payload.original(i) for i in range(len(payload))] == [b'{"a": 1}', b"{oops", b"[1]"]


def test_array_originals_keep_whitespace_inside_elements() -> None:
    body = b'[ {"a": "x,]}\\"" ,\n "b": [1, {"c": 2}]} ,\t42,"s",null ]'
    payload = parse_payload(body)
    assert [payload.original(i) for i in range(len(payload))] == [
        b'{"a": "x,]}\\"" ,\n "b": [1, {"c": 2}]}',
        b"42",
        b'"s"',
        b"null",
    ]


def test_wrapped_originals_skip_other_keys() -> None:
    body = b'{"meta": {"events": [0]}, "note": "events", "events": [ {"k": [1,2]} , 7 ], "tail": [9]}'
    payload = parse_payload(body)
    assert [payload.original(i) for i in range(len(payload))] == [b'{"k": [1,2]}', b"7"]


_json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**53), 2**53),
    st.text(alphabet=st.sampled_from('ab,[]{}:"\\ \n\tü'), max_size=8),
)
_json_values = st.recursive(
    _json_leaf,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=4), children, max_size=3)
    ),
    max_leaves=10,
)
_spaces = st.text(alphabet=st.sampled_from(" \n\t\r"), max_size=3)


@settings(max_examples=200, deadline=None)
@given(
    items=st.lists(_json_values, max_size=6),
    indent=st.sampled_from([None, 1, 2]),
    gaps=st.lists(_spaces, min_size=14, max_size=14),
    wrapped=st.booleans(),
)
def test_element_spans_match_what_was_sent(
    items: list[Any], indent: int | None, gaps: list[str], wrapped: bool
) -> None:
    texts = [json.dumps(item, indent=indent, ensure_ascii=False) for item in items]
    inner = "[" + gaps[0] + ",".join(f"{gaps[i + 1]}{t}{gaps[i + 7]}" for i, t in enumerate(texts)) + "]"
    body = (f'{{"x": [1, {{"events": 2}}], "events":{gaps[13]}{inner}}}' if wrapped else inner).encode()
    payload = parse_payload(body, "application/json")
    assert len(payload) == len(items)
    assert [payload.original(i) for i in range(len(items))] == [t.encode() for t in texts]
    assert [orjson.loads(body[a:b]) for a, b in element_spans(body, wrapped=wrapped)] == payload.items


def test_gzip_bomb_stops_at_the_limit() -> None:
    bomb = gzip.compress(b"\0" * (50 * 1024 * 1024), compresslevel=9)
    decoder = CappedDecompressor(500 * 1024)
    with pytest.raises(BodyTooLargeError):
        for start in range(0, len(bomb), 4096):
            decoder.feed(bomb[start : start + 4096])
    assert len(bomb) < 100 * 1024


def test_gzip_members_deflate_and_truncation() -> None:
    decoder = CappedDecompressor(1000)
    decoder.feed(gzip.compress(b"[1,") + gzip.compress(b"2]"))
    assert decoder.finish() == b"[1,2]"

    decoder = CappedDecompressor(1000)
    decoder.feed(zlib.compress(b"[3]"))
    assert decoder.finish() == b"[3]"

    decoder = CappedDecompressor(1000)
    decoder.feed(gzip.compress(b"[1, 2, 3]")[:-6])
    with pytest.raises(BodyEncodingError, match="truncated"):
        decoder.finish()

    with pytest.raises(BodyEncodingError, match="not valid gzip"):
        CappedDecompressor(1000).feed(b"definitely not gzip")


def test_write_keys() -> None:
    keys = frozenset({"wk-1", "wk-2"})
    assert presented_key("Bearer wk-1", None) == "wk-1"
    assert presented_key("bearer  wk-2 ", None) == "wk-2"
    assert presented_key("Basic d2s=", "wk-1") is None  # a header that is not Bearer is not bypassed
    assert presented_key(None, "wk-1") == "wk-1"
    assert presented_key(None, "") is None
    assert is_write_key("wk-2", keys)
    assert not is_write_key("wk-3", keys)
    assert not is_write_key(None, keys)
    assert not is_write_key("", frozenset({""}))


def test_access_log_redacts_query_keys() -> None:
    import logging

    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        "",
        0,
        '%s - "%s %s"',
        ("1.2.3.4", "POST", "/v1/events?write_key=s3cret&x=1"),
        None,
    )
    RedactQueryKeyFilter("write_key").filter(record)
    assert "s3cret" not in record.getMessage()
    assert "write_key=[redacted]&x=1" in record.getMessage()
    # the API's read key parameter: ``key=`` itself, not the tail of ``write_key=``
    record.args = ("1.2.3.4", "GET", "/v1/live?key=rk-1&write_key=wk-1")
    RedactQueryKeyFilter("key").filter(record)
    assert "rk-1" not in record.getMessage() and "write_key=wk-1" in record.getMessage()
