"""Event contract v1: each bad field gets its own message, extras survive, the schema file is current."""

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
    KNOWN_BUTTONS,
    MAX_EVENT_BYTES,
    SCHEMA_PATH,
    EventV1,
    decode_and_validate,
    event_to_dict,
    event_to_json_bytes,
    export_json_schema,
    render_json_schema,
    validate_event,
)


def click(**overrides: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "event_id": str(uuid.uuid4()),
        "event_type": "click",
        "event_time": "2024-05-01T12:30:00.250+02:00",
        "user_id": "u00001",
        "session_id": "s-1",
        "video_id": "v0001",
        "button_id": "skip_intro",
        "playback_position_s": 42.5,
    }
    event.update(overrides)
    return {k: v for k, v in event.items() if v is not ...}


def test_valid_click_normalises_time_to_utc() -> None:
    outcome = validate_event(click())
    assert outcome.ok and outcome.errors == []
    assert outcome.event is not None
    assert outcome.event.event_time == datetime(2024, 5, 1, 10, 30, 0, 250000, tzinfo=UTC)
    assert outcome.event.event_time.utcoffset() is not None


@pytest.mark.parametrize("event_type", ["impression", "conversion"])
def test_non_clicks_need_no_button_or_position(event_type: str) -> None:
    outcome = validate_event(click(event_type=event_type, button_id=..., playback_position_s=...))
    assert outcome.ok, outcome.errors


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"event_id": "not-a-uuid"}, "event_id: not a UUID"),
        ({"event_id": ...}, "event_id: required"),
        ({"event_type": "hover"}, "event_type: must be one of click, impression, conversion"),
        ({"event_time": "yesterday"}, "event_time: not an RFC 3339 timestamp"),
        ({"event_time": 1714560000}, "event_time: not an RFC 3339 timestamp"),
        ({"event_time": "1714560000"}, "event_time: not an RFC 3339 timestamp"),
        ({"event_time": "2024-05-01T12:30:00"}, "event_time: not an RFC 3339 timestamp"),
        ({"event_time": "2024-02-30T12:30:00Z"}, "event_time: not an RFC 3339 timestamp"),
        ({"user_id": ""}, "user_id: must not be empty"),
        ({"user_id": 17}, "user_id: must be a string"),
        ({"session_id": "x" * 129}, "session_id: longer than 128 characters"),
        ({"video_id": None}, "video_id: must be a string"),
        ({"button_id": ...}, "button_id: required for click events"),
        ({"button_id": "Play Now"}, "button_id: must match [a-z0-9_]{1,64}"),
        ({"playback_position_s": ...}, "playback_position_s: required for click events"),
        ({"playback_position_s": -1}, "playback_position_s: must be >= 0"),
        ({"playback_position_s": "12"}, "playback_position_s: must be a number"),
        ({"playback_position_s": True}, "playback_position_s: must be a number"),
        ({"rec_slot": -1}, "rec_slot: must be >= 0"),
        ({"rec_slot": "2"}, "rec_slot: must be an integer"),
        ({"properties": [1, 2]}, "properties: must be an object"),
        ({"properties": {str(i): i for i in range(33)}}, "properties: at most 32 keys"),
        ({"properties": {"blob": "x" * 5000}}, "properties: larger than 4096 bytes"),
        ({"received_at": "soon"}, "received_at: not an RFC 3339 timestamp"),
    ],
)
def test_each_bad_field_gets_its_message(overrides: dict[str, Any], expected: str) -> None:
    outcome = validate_event(click(**overrides))
    assert outcome.event is None
    assert outcome.errors == [expected]


def test_several_bad_fields_get_one_message_each() -> None:
    outcome = validate_event(click(event_time="soon", button_id=..., playback_position_s=..., user_id=""))
    assert sorted(outcome.errors) == [
        "button_id: required for click events",
        "event_time: not an RFC 3339 timestamp",
        "playback_position_s: required for click events",
        "user_id: must not be empty",
    ]


@pytest.mark.parametrize("obj", [[1, 2], "event", 3, None])
def test_non_objects_are_rejected(obj: object) -> None:
    assert validate_event(obj).errors == ["event: not a JSON object"]


def test_oversized_events_are_rejected_before_parsing() -> None:
    big = click(padding="x" * MAX_EVENT_BYTES)
    assert validate_event(big).errors == [f"event: larger than {MAX_EVENT_BYTES} bytes"]
    assert decode_and_validate(orjson.dumps(big)).errors == [f"event: larger than {MAX_EVENT_BYTES} bytes"]


@pytest.mark.parametrize("raw", [b'{"event_id": ', b"\xff\xfe", b"", b"{'single': 'quotes'}"])
def test_malformed_json_is_reported(raw: bytes) -> None:
    outcome = decode_and_validate(raw)
    assert outcome.event is None
    assert len(outcome.errors) == 1 and outcome.errors[0].startswith("event: malformed JSON (")


def test_unknown_buttons_are_allowed() -> None:
    assert "pip_mode" not in KNOWN_BUTTONS
    assert validate_event(click(button_id="pip_mode")).ok


def test_event_id_is_lowercased_for_dedupe() -> None:
    event_id = str(uuid.uuid4())
    outcome = validate_event(click(event_id=event_id.upper()))
    assert outcome.event is not None and outcome.event.event_id == event_id


def test_unknown_extras_are_kept_and_round_trip() -> None:
    extras = {"experiment": {"arm": "b", "ids": [1, 2]}, "ab_bucket": 7, "note": None}
    sent = click(**extras, surface="rec_row", rec_slot=2)
    first = decode_and_validate(orjson.dumps(sent))
    assert first.event is not None
    assert first.event.extra == extras

    payload = event_to_json_bytes(first.event)
    decoded = orjson.loads(payload)
    assert decoded["event_time"] == "2024-05-01T10:30:00.250000Z"
    assert decoded["experiment"] == sent["experiment"] and decoded["note"] is None
    assert "model_version" not in decoded  # absent optional fields stay absent

    second = decode_and_validate(payload)
    assert second.event == first.event


@pytest.mark.parametrize(
    "sent",
    [
        click(),
        click(surface="rec_row", rec_slot=2, model_version="als-v1", properties={"a": {"b": [1, None]}}),
        click(event_type="impression", button_id=..., playback_position_s=..., device=None, zeta=1, a="x"),
        click(event_type="conversion", conversion_type="subscribe", received_at="2024-05-01T10:30:01Z"),
    ],
)
def test_event_to_dict_equals_model_dump_without_absent_optionals(sent: dict[str, Any]) -> None:
    event = validate_event(sent).event
    assert event is not None
    model = EventV1.model_validate(sent)
    optional = {name for name, info in EventV1.model_fields.items() if not info.is_required()}
    dumped = {k: v for k, v in model.model_dump().items() if not (k in optional and v is None)}
    built = event_to_dict(event)
    assert built == dumped and list(built) == list(dumped)
    if event.properties is not None:
        built["properties"]["added"] = 1
        assert "added" not in event.properties  # a copy, as model_dump gives


def test_received_at_is_optional_and_stamped_in_utc() -> None:
    outcome = validate_event(click(received_at="2024-05-01T10:30:01Z"))
    assert outcome.event is not None
    assert outcome.event.received_at == datetime(2024, 5, 1, 10, 30, 1, tzinfo=UTC)
    stamped = msgspec.structs.replace(outcome.event, received_at=datetime(2024, 5, 1, 10, 31, tzinfo=UTC))
    assert orjson.loads(event_to_json_bytes(stamped))["received_at"] == "2024-05-01T10:31:00Z"


def test_model_enforces_click_fields_when_built_directly() -> None:
    with pytest.raises(ValueError, match="click events require"):
        EventV1.model_validate({k: v for k, v in click().items() if k != "button_id"})


def test_committed_schema_file_equals_the_models_export() -> None:
    assert SCHEMA_PATH.read_text() == render_json_schema()
    assert json.loads(SCHEMA_PATH.read_text()) == export_json_schema()


def test_schema_describes_the_contract() -> None:
    schema = export_json_schema()
    required = {"event_id", "event_type", "event_time", "user_id", "session_id", "video_id"}
    assert set(schema["required"]) == required
    assert schema["additionalProperties"] is True
    assert schema["then"]["required"] == ["button_id", "playback_position_s"]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)
contract_keys = st.sampled_from([*EventV1.model_fields, "extra_field"])
event_like = st.dictionaries(contract_keys, json_values, max_size=12)
mutated_clicks = st.builds(lambda updates: {**click(), **updates}, event_like)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(json_values, event_like, mutated_clicks))
def test_validate_event_never_raises(obj: object) -> None:
    outcome = validate_event(obj)
    assert (outcome.event is None) == bool(outcome.errors)
    assert all(": " in message for message in outcome.errors)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200) | st.builds(lambda v: json.dumps(v).encode(), json_values | event_like))
def test_decode_and_validate_never_raises(raw: bytes) -> None:
    outcome = decode_and_validate(raw)
    assert (outcome.event is None) == bool(outcome.errors)
