"""Property-based fuzzing of the real collector app with a real Kafka producer, on topics private to the test.

Hypothesis builds requests from entries it knows (valid events, broken events, arbitrary JSON, junk
lines) in every shape the collector reads (JSON array, ``{"events": [...]}``, NDJSON), plus bodies of
arbitrary bytes, under random content types and encodings (none, gzip, zlib, corrupt gzip, unsupported).
For every request: no 5xx but 503; a 200 accounts for every entry sent (accepted + rejected == sent).
Over the whole run: clicks.raw holds exactly the accepted events, and clicks.dlq exactly the rejected
entries' bytes and the bodies refused whole, each with the collector's headers.
"""

from __future__ import annotations

import gzip
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clickpulse.settings import Settings
from streaming.collector import create_app
from streaming.dlq import HEADER_ERROR, HEADER_STAGE, read_headers
from tests.support.ingest import WRITE_KEY, collector_settings, payload, read_topic, serve

NDJSON_TYPES = ["application/x-ndjson", "application/jsonl"]
OTHER_TYPES = [None, "application/json", "text/plain;charset=UTF-8", "application/octet-stream", "x/y; z"]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
valid_events = st.fixed_dictionaries(
    {
        "event_id": st.uuids(version=4).map(str),
        "event_type": st.just("click"),
        "event_time": st.just("2026-01-01T12:00:00.000Z"),
        "user_id": st.text(min_size=1, max_size=40),
        "session_id": st.text(min_size=1, max_size=10),
        "video_id": st.text(min_size=1, max_size=10),
        "button_id": st.sampled_from(["play", "pause", "like"]),
        "playback_position_s": st.floats(min_value=0, max_value=1e5, allow_nan=False),
    }
)
broken_events = st.builds(
    lambda event, name, value, drop: (
        {k: v for k, v in event.items() if k != name} if drop else {**event, name: value}
    ),
    valid_events,
    st.sampled_from(["event_id", "event_type", "event_time", "user_id", "button_id", "playback_position_s"]),
    json_values,
    st.booleans(),
)
json_entries = st.one_of(valid_events, broken_events, json_values).map(orjson.dumps)
# A junk line never holds a newline, and never starts with a UTF-8 BOM (a body's leading BOM is dropped).
junk_lines = st.binary(min_size=1, max_size=60).filter(
    lambda b: b"\n" not in b and not b.startswith(b"\xef\xbb\xbf")
)


@dataclass(frozen=True)
class Request:
    """A request body before encoding, and what the test knows about its entries."""

    plain: bytes
    content_type: str | None
    entries: list[bytes] | None  # None: arbitrary bytes, the entries are not known in advance
    encoding: str


@st.composite
def requests(draw: st.DrawFn) -> Request:
    encoding = draw(st.sampled_from(["identity", "identity", "gzip", "zlib", "corrupt-gzip", "br"]))
    shape = draw(st.sampled_from(["array", "wrapped", "ndjson", "bytes", "text"]))
    if shape in ("bytes", "text"):
        plain = draw(st.binary(max_size=300)) if shape == "bytes" else draw(st.text(max_size=100)).encode()
        return Request(plain, draw(st.sampled_from(OTHER_TYPES + NDJSON_TYPES)), None, encoding)
    if shape == "ndjson":
        lines = draw(st.lists(json_entries | junk_lines, max_size=8))
        separator = draw(st.sampled_from([b"\n", b"\r\n", b"\n\n"]))
        entries = [line.strip(b" \t\r\n") for line in lines if line.strip(b" \t\r\n")]
        return Request(separator.join(lines), draw(st.sampled_from(NDJSON_TYPES)), entries, encoding)
    entries = draw(st.lists(json_entries, max_size=8))
    array = b"[" + draw(st.sampled_from([b",", b", ", b" ,\n"])).join(entries) + b"]"
    plain = array if shape == "array" else b'{"events": ' + array + b"}"
    return Request(plain, draw(st.sampled_from([None, "application/json", "text/plain"])), entries, encoding)


def encode(request: Request) -> tuple[bytes, dict[str, str]]:
    headers = {"Authorization": f"Bearer {WRITE_KEY}"}
    if request.content_type is not None:
        headers["Content-Type"] = request.content_type
    body = request.plain
    if request.encoding == "gzip":
        body = gzip.compress(body)
    elif request.encoding == "zlib":
        body = zlib.compress(body)
    elif request.encoding == "corrupt-gzip":
        body = gzip.compress(body)[:10] + b"\x00garbage"
    if request.encoding not in ("identity",):
        headers["Content-Encoding"] = {"zlib": "deflate", "corrupt-gzip": "gzip"}.get(
            request.encoding, request.encoding
        )
    return body, headers


@dataclass
class Ledger:
    """What Kafka must hold after the run, from the responses and the entries the test built."""

    accepted: int = 0
    dead_letters: Counter[bytes] = field(default_factory=Counter)
    unknown_dead_letters: int = 0
    statuses: Counter[int] = field(default_factory=Counter)


@pytest.fixture
def collector(kafka_bootstrap: str, new_topic: Callable[..., str]) -> Iterator[tuple[str, Settings]]:
    own = collector_settings(kafka_bootstrap, new_topic("fuzz-raw"), new_topic("fuzz-dlq", partitions=1))
    with serve(create_app(own)) as url:
        yield url, own


def test_collector_accounts_for_every_entry_of_arbitrary_requests(collector: tuple[str, Settings]) -> None:
    url, own = collector
    ledger = Ledger()
    http = httpx.Client(base_url=url, timeout=30)

    @settings(
        max_examples=80,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        database=None,
    )
    @given(requests())
    def check(request: Request) -> None:
        body, headers = encode(request)
        response = http.post("/v1/events", content=body, headers=headers)
        status = response.status_code
        ledger.statuses[status] += 1
        assert status < 500 or status == 503, response.text
        assert status in (200, 400, 413, 415, 503), response.text
        if status == 200:
            answer = response.json()
            rejected = answer["rejected"]
            indexes = [r["index"] for r in rejected]
            assert len(set(indexes)) == len(indexes) and all(r["error"] for r in rejected)
            ledger.accepted += answer["accepted"]
            if request.entries is None:
                ledger.unknown_dead_letters += len(rejected)
            else:
                assert answer["accepted"] + len(rejected) == len(request.entries)
                assert all(0 <= i < len(request.entries) for i in indexes)
                ledger.dead_letters.update(request.entries[i] for i in indexes)
        elif status == 400:
            whole = body if request.encoding == "corrupt-gzip" else request.plain
            if whole:
                ledger.dead_letters[whole] += 1
        elif status == 415:
            assert request.encoding == "br"

    try:
        check()
    finally:
        http.close()

    assert ledger.statuses[503] == 0, "Kafka was up: nothing should have been refused for an outage"
    assert ledger.statuses[200] and ledger.statuses[400] and ledger.accepted and ledger.dead_letters
    expected_dlq = sum(ledger.dead_letters.values()) + ledger.unknown_dead_letters
    raw = read_topic(own.kafka_bootstrap_servers, own.topic_raw, ledger.accepted)
    assert len(raw) == ledger.accepted
    assert all(r.key() and orjson.loads(payload(r))["received_at"] for r in raw)
    dead = read_topic(own.kafka_bootstrap_servers, own.topic_dlq, expected_dlq)
    assert len(dead) == expected_dlq
    for letter in dead:
        headers = read_headers(letter.headers())
        assert headers[HEADER_STAGE] == "collector" and headers[HEADER_ERROR]
    assert not ledger.dead_letters - Counter(payload(d) for d in dead), "a rejected entry is missing"
