"""Event v1 as the hot paths hold it: the contract's limits, the ``Event`` struct and a one-pass decoder.

Every event that enters ClickPulse is validated (collector, bridge, consumer, replay), so validation is
the largest Python cost per event. ``streaming.contract`` is the public validator; it tries the fast
path here first: msgspec parses and type-checks the JSON in C into ``_Wire`` (each declared field with
its constraint, unknown fields refused) and the few rules msgspec cannot state follow in Python. Any
"no" from this path (an invalid event, an extra field, a rarer timestamp form) is not final: the
pydantic model in ``streaming.contract`` then decides, so the accept/reject decisions and the error
messages are always the model's. ``tests/unit/test_contract_fast.py`` checks on generated input that
both paths give the same verdicts and the same values.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Annotated, Any, Final, Literal

import msgspec
import orjson

MAX_EVENT_BYTES: Final = 32 * 1024
MAX_REQUEST_BYTES: Final = 500 * 1024
MAX_ID_LENGTH: Final = 128
MAX_PROPERTIES_KEYS: Final = 32
MAX_PROPERTIES_BYTES: Final = 4 * 1024
MAX_REC_SLOT: Final = 10_000
EVENT_TYPES: Final = ("click", "impression", "conversion")
CLICK_REQUIRED_FIELDS: Final = ("button_id", "playback_position_s")
# Unanchored: pydantic anchors them with ^ $ (Rust regex: $ is the end of text), the fast path
# matches them with ``fullmatch`` (in Python's re, $ would also match before a final newline).
UUID_PATTERN: Final = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
BUTTON_PATTERN: Final = r"[a-z0-9_]{1,64}"

# The common RFC 3339 form: upper-case T and Z, at most microseconds, ASCII digits. Other forms the
# contract accepts (t, z, a space, 7-9 fraction digits) take the model's path.
_FAST_TIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?(?:Z|[+-][0-9]{2}:[0-9]{2})\Z"
)


class Event(msgspec.Struct, frozen=True, omit_defaults=True, gc=False):
    """A valid event: declared fields in contract order (times in UTC), then any unknown fields sent.

    ``extra`` holds the unknown fields (``None`` when there are none); everything else is as the
    contract defines it. Encoded with msgspec, absent optional fields are left out.
    """

    event_id: str
    event_type: str
    event_time: datetime
    user_id: str
    session_id: str
    video_id: str
    button_id: str | None = None
    playback_position_s: float | None = None
    surface: str | None = None
    rec_slot: int | None = None
    model_version: str | None = None
    conversion_type: str | None = None
    device: str | None = None
    app_version: str | None = None
    properties: dict[str, Any] | None = None
    received_at: datetime | None = None
    extra: dict[str, Any] | None = None


_Identifier = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_ID_LENGTH)]


class _Wire(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """The JSON as sent, type-checked by msgspec; times stay text for the checks in ``_event``, and the
    two patterns are checked there too (as msgspec ``pattern`` constraints they took 0.9 µs per event,
    with ``fullmatch`` in ``_event`` 0.45)."""

    event_id: str  # UUID_PATTERN, checked in _event
    event_type: Literal["click", "impression", "conversion"]
    event_time: str
    user_id: _Identifier
    session_id: _Identifier
    video_id: _Identifier
    button_id: str | None = None  # BUTTON_PATTERN, checked in _event
    playback_position_s: Annotated[float, msgspec.Meta(ge=0)] | None = None
    surface: _Identifier | None = None
    rec_slot: Annotated[int, msgspec.Meta(ge=0, le=MAX_REC_SLOT)] | None = None
    model_version: _Identifier | None = None
    conversion_type: _Identifier | None = None
    device: _Identifier | None = None
    app_version: _Identifier | None = None
    properties: Annotated[dict[str, Any], msgspec.Meta(max_length=MAX_PROPERTIES_KEYS)] | None = None
    received_at: str | None = None


_DECODER: Final = msgspec.json.Decoder(_Wire)
_UUID: Final = re.compile(UUID_PATTERN).fullmatch
_BUTTON: Final = re.compile(BUTTON_PATTERN).fullmatch
_ENCODER: Final = msgspec.json.Encoder()


def _utc(text: str) -> datetime | None:
    if not _FAST_TIME.match(text):
        return None
    try:
        moment = datetime.fromisoformat(text)
        return moment if moment.tzinfo is UTC else moment.astimezone(UTC)
    except (ValueError, OverflowError):
        return None


def _event(wire: _Wire) -> Event | None:
    """The rules msgspec cannot state (or states more slowly); None sends the event to the model."""
    position = wire.playback_position_s
    button = wire.button_id
    if wire.event_type == "click" and (button is None or position is None):
        return None
    if _UUID(wire.event_id) is None or (button is not None and _BUTTON(button) is None):
        return None
    if position is not None and not math.isfinite(position):
        return None
    event_time = _utc(wire.event_time)
    if event_time is None:
        return None
    received_at = None
    if wire.received_at is not None:
        received_at = _utc(wire.received_at)
        if received_at is None:
            return None
    properties = wire.properties
    if properties is not None:
        try:
            if len(orjson.dumps(properties)) > MAX_PROPERTIES_BYTES:
                return None
        except (TypeError, orjson.JSONEncodeError):
            return None
    return Event(
        wire.event_id.lower(),
        wire.event_type,
        event_time,
        wire.user_id,
        wire.session_id,
        wire.video_id,
        wire.button_id,
        position,
        wire.surface,
        wire.rec_slot,
        wire.model_version,
        wire.conversion_type,
        wire.device,
        wire.app_version,
        properties,
        received_at,
    )


def decode_valid(raw: bytes | bytearray | memoryview | str) -> Event | None:
    """The event when ``raw`` (at most ``MAX_EVENT_BYTES``) is a valid event without unknown fields in
    the common form; None when the model has to decide."""
    try:
        return _event(_DECODER.decode(raw))
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        return None


def convert_valid(obj: dict[Any, Any]) -> Event | None:
    """``decode_valid`` for an already decoded JSON object."""
    try:
        return _event(msgspec.convert(obj, _Wire))
    except (msgspec.ValidationError, RecursionError):
        return None


_DECLARED: Final = tuple(name for name in Event.__struct_fields__ if name != "extra")
_DECLARED_SET: Final = frozenset(_DECLARED)
_REQUIRED: Final = frozenset(_DECLARED[: len(_DECLARED) + 1 - len(Event.__struct_defaults__)])


def _sets_a_field(event: Event, more: dict[str, Any] | None) -> bool:
    """Whether ``more`` names a field the event has a value for."""
    if not more or _DECLARED_SET.isdisjoint(more):
        return False
    return any(getattr(event, name) is not None for name in _DECLARED_SET.intersection(more))


def encode_event(event: Event, more: dict[str, Any] | None = None) -> bytes:
    """Compact JSON of the event (absent optionals left out, ``Z`` times) followed by ``more``'s fields.

    Without unknown fields the struct is encoded by msgspec and ``more`` appended to the object;
    otherwise (or when ``more`` names a field the event has) the dict of ``event_to_dict`` is updated
    with ``more``: declared fields, extras, then ``more``, a name already present replaced in place.
    """
    if event.extra is None and not _sets_a_field(event, more):
        body = _ENCODER.encode(event)
        if not more:
            return body
        return body[:-1] + b"," + orjson.dumps(more, option=orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC)[1:]
    data = event_to_dict(event)
    if more:
        data.update(more)
    return orjson.dumps(data, option=orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC)


def event_to_dict(event: Event) -> dict[str, Any]:
    """The event as JSON-ready values: absent optional fields left out, then the unknown fields as sent
    (``properties`` is a copy, so the caller may change the dict)."""
    data: dict[str, Any] = {}
    for name in _DECLARED:
        value = getattr(event, name)
        if value is not None or name in _REQUIRED:
            data[name] = value
    if event.extra:
        data.update(event.extra)
    properties = data.get("properties")
    if properties is not None:
        data["properties"] = dict(properties)
    return data


def utc_text(moment: datetime) -> str:
    """RFC 3339 text of an aware datetime in UTC with ``Z`` (microseconds when not zero), as ``encode_event``
    writes times: ``isoformat()`` with ``+00:00`` replaced, in a third of its time."""
    return orjson.dumps(moment, option=orjson.OPT_UTC_Z)[1:-1].decode()
