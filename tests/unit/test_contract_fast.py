"""The msgspec fast path (streaming.event) against the pydantic model alone: same verdicts, same values.

``decode_and_validate`` and ``validate_event`` accept an event from the fast path only when it passes
every rule; everything else goes to the model. These tests generate events near every rule's edges
(patterns, lengths, numbers, timestamps, properties, extras, JSON oddities) and require the public
functions to answer exactly what the model alone answers: the same errors, or the same event with
the same encoded bytes.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import msgspec
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streaming.contract import (
    MAX_PROPERTIES_BYTES,
    ValidationOutcome,
    decode_and_validate,
    event_to_dict,
    validate_event,
    validate_with_model,
)
from streaming.event import Event, decode_valid, encode_event


def reference(obj: object) -> ValidationOutcome:
    """The contract as it was before the fast path: the model on the decoded object."""
    if not isinstance(obj, dict):
        return ValidationOutcome(None, ["event: not a JSON object"])
    try:
        return validate_with_model(obj)
    except Exception as exc:
        return ValidationOutcome(None, [f"event: invalid ({type(exc).__name__})"])


def reference_decode(raw: bytes) -> ValidationOutcome:
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return ValidationOutcome(None, [f"event: malformed JSON ({exc})"])
    return reference(obj)


def assert_same(got: ValidationOutcome, want: ValidationOutcome) -> None:
    assert got.errors == want.errors
    assert (got.event is None) == (want.event is None)
    if got.event is not None and want.event is not None:
        assert got.event == want.event
        assert type(got.event.playback_position_s) is type(want.event.playback_position_s)
        assert got.event.event_time.utcoffset() == want.event.event_time.utcoffset()
        assert encoded(got.event) == encoded(want.event)
        assert event_to_dict(got.event) == event_to_dict(want.event)


def encoded(event: Event) -> bytes | str:
    """The JSON bytes, or the error's type: Python objects may hold integers JSON encoders refuse."""
    try:
        return encode_event(event)
    except TypeError as exc:
        return type(exc).__name__


def two(low: int, high: int) -> st.SearchStrategy[str]:
    return st.integers(low, high).map(lambda n: f"{n:02d}")


def fraction_digits(n: int) -> st.SearchStrategy[str]:
    return st.text("0123456789", min_size=n, max_size=n).map(lambda f: "." + f)


timestamps = st.builds(
    lambda y, mo, d, sep, h, mi, s, frac, tz: f"{y}-{mo}-{d}{sep}{h}:{mi}:{s}{frac}{tz}",
    st.sampled_from(["0000", "0001", "1970", "2024", "9999", "٢٠٢٤"]),
    two(0, 13),
    two(0, 32),
    st.sampled_from(["T", "t", " ", "x"]),
    two(0, 25),
    two(0, 61),
    two(0, 61),
    st.one_of(st.just(""), st.integers(1, 10).flatmap(fraction_digits)),
    st.one_of(
        st.sampled_from(["Z", "z", "", "+00:00", "-00:00", "+0100"]),
        st.builds(lambda sign, hh, mm: f"{sign}{hh}:{mm}", st.sampled_from("+-"), two(0, 25), two(0, 61)),
    ),
)
identifiers = st.one_of(
    st.sampled_from(["", "u1", "x" * 128, "x" * 129, "😀" * 128, "😀" * 129, "a\n", " "]),
    st.text(max_size=8),
    st.integers(),
    st.none(),
)
uuids = st.one_of(
    st.uuids().map(str),
    st.uuids().map(lambda u: str(u).upper()),
    st.uuids().map(lambda u: str(u) + "\n"),
    st.uuids().map(lambda u: str(u).replace("-", "")),
    st.uuids().map(lambda u: "{" + str(u) + "}"),
    st.text(max_size=40),
)
buttons = st.one_of(
    st.sampled_from(["play", "rec_tile", "", "a" * 64, "a" * 65, "Play", "play\n", "ply-x", "é"]),
    st.text("abz09_A-\n", max_size=66),
    st.none(),
    st.integers(0, 3),
)
numbers = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(-(2**70), 2**70),
    st.sampled_from([0, -0.0, 0.0, -1, 1e308, 2**63, 2**64, True, False, "1"]),
)
json_leaves = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**66), 2**66), st.floats(), st.text(max_size=10)
)
json_values = st.recursive(
    json_leaves,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)
properties = st.one_of(
    st.dictionaries(st.text(max_size=6), json_values, max_size=34),
    st.integers(3900, 4200).map(lambda n: {"blob": "x" * n}),
    st.builds(lambda n: {f"k{i}": i for i in range(n)}, st.integers(30, 34)),
    json_values,
)
FIELD_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "event_id": uuids,
    "event_type": st.sampled_from(["click", "impression", "conversion", "Click", "", None, 1]),
    "event_time": st.one_of(timestamps, st.integers(0, 2**31), st.none()),
    "user_id": identifiers,
    "session_id": identifiers,
    "video_id": identifiers,
    "button_id": buttons,
    "playback_position_s": numbers,
    "surface": identifiers,
    "rec_slot": st.one_of(
        st.sampled_from([-1, 0, 10_000, 10_001, 1.0, True, 2**64, "2"]), st.integers(-5, 20)
    ),
    "model_version": identifiers,
    "conversion_type": identifiers,
    "device": identifiers,
    "app_version": identifiers,
    "properties": properties,
    "received_at": st.one_of(timestamps, st.none()),
    "extra_field": json_values,
}


def base_event(kind: str) -> dict[str, Any]:
    event: dict[str, Any] = {
        "event_id": str(uuid.uuid4()),
        "event_type": kind,
        "event_time": "2024-05-01T12:30:00.250Z",
        "user_id": "u00001",
        "session_id": "s-1",
        "video_id": "v0001",
    }
    if kind == "click":
        event.update(button_id="play", playback_position_s=1.5)
    return event


changes = st.dictionaries(st.sampled_from(list(FIELD_VALUES)), st.none(), max_size=4).flatmap(
    lambda keys: st.fixed_dictionaries({k: FIELD_VALUES[k] for k in keys})
)
removals = st.lists(st.sampled_from(list(FIELD_VALUES)), max_size=2)


def mutated(kind: str, updates: dict[str, Any], removed: list[str]) -> dict[str, Any]:
    return {k: v for k, v in {**base_event(kind), **updates}.items() if k not in removed}


events = st.builds(
    mutated,
    st.sampled_from(["click", "impression", "conversion"]),
    changes,
    removals,
)


def _json(obj: Any) -> bytes:
    # json (not orjson) can write integers beyond 64 bits, lone surrogates as escapes, and NaN.
    return json.dumps(obj).encode()


raw_forms = st.one_of(
    events.map(_json),
    events.map(lambda e: _json(e) + b"\n"),
    events.map(lambda e: b"\xef\xbb\xbf" + _json(e)),
    events.map(lambda e: _json(e)[:-1] + b',"event_type":"conversion"}'),
    events.map(lambda e: _json(e)[:-1] + b',"user_id":"\\ud800"}'),
    events.map(lambda e: _json(e)[:-1] + b',"device":"\xff"}'),
    events.map(lambda e: _json(e)[:-1] + b',"rec_slot":1e400}'),
    events.map(lambda e: _json(e)[:-1] + b',"playback_position_s":NaN}'),
    events.map(lambda e: _json(e)[:-1] + b',"properties":{"deep":' + b"[" * 1100 + b"]" * 1100 + b"}}"),
    st.binary(max_size=60),
)


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw_forms)
def test_decode_and_validate_answers_as_the_model(raw: bytes) -> None:
    assert_same(decode_and_validate(raw), reference_decode(raw))


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events)
def test_validate_event_answers_as_the_model(obj: dict[str, Any]) -> None:
    assert_same(validate_event(obj), reference(obj))


@pytest.mark.parametrize(
    "value",
    [float("nan"), float("inf"), -float("inf")],
)
def test_non_finite_positions_from_python_objects_are_the_models_call(value: float) -> None:
    obj = {**base_event("click"), "playback_position_s": value}
    assert_same(validate_event(obj), reference(obj))
    assert not validate_event(obj).ok


def test_the_fast_path_takes_the_simulators_events() -> None:
    """Without this, every event could silently take the model's path and nothing here would notice."""
    sent = {
        **base_event("click"),
        "surface": "home",
        "rec_slot": 3,
        "model_version": "als-v1",
        "device": "tv",
        "app_version": "4.1.0",
        "properties": {"tile_index": 0},
        "received_at": "2024-05-01T12:30:01+02:00",
    }
    event = decode_valid(orjson.dumps(sent))
    assert isinstance(event, Event)
    assert event.received_at == datetime(2024, 5, 1, 10, 30, 1, tzinfo=UTC)
    assert decode_valid(orjson.dumps({**sent, "experiment": "b"})) is None  # extras: the model's path
    assert decode_and_validate(orjson.dumps({**sent, "experiment": "b"})).event == msgspec.structs.replace(
        event, extra={"experiment": "b"}
    )


def test_enrichment_fields_follow_the_event() -> None:
    event = decode_and_validate(orjson.dumps(base_event("click"))).event
    assert event is not None
    more = {"user_country": "DE", "is_late": False, "received_at": datetime(2024, 5, 1, tzinfo=UTC)}
    encoded = encode_event(event, more)
    expected = {**event_to_dict(event), **more}
    assert orjson.loads(encoded) == orjson.loads(orjson.dumps(expected, option=orjson.OPT_UTC_Z))
    assert list(orjson.loads(encoded)) == list(expected)
    stamped = msgspec.structs.replace(event, received_at=datetime(2024, 5, 1, 1, tzinfo=UTC))
    assert orjson.loads(encode_event(stamped, more))["received_at"] == "2024-05-01T00:00:00Z"  # more wins
    with_extra = msgspec.structs.replace(event, extra={"is_late": "x", "k": 1})
    order = list(orjson.loads(encode_event(with_extra, more)))
    assert order[-4:] == ["is_late", "k", "user_country", "received_at"]


def test_properties_size_limit_is_the_models() -> None:
    for n in range(MAX_PROPERTIES_BYTES - 16, MAX_PROPERTIES_BYTES + 4):
        raw = orjson.dumps({**base_event("impression"), "properties": {"b": "x" * n}})
        assert_same(decode_and_validate(raw), reference_decode(raw))
