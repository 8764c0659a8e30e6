"""Event contract v1: the one definition of a valid click, impression or conversion event.

The collector, the Redis bridge and the consumer all validate with the functions here, so a payload is
accepted or rejected with the same messages wherever it enters. ``EventV1`` (pydantic) states the
contract: it exports the JSON Schema and it decides every event the fast path in ``streaming.event``
(msgspec, one C pass, about a quarter of the model's cost) does not accept outright, so rejections and
their messages always come from the model. Valid events come back as ``streaming.event.Event``
structs either way. ``validate_event`` never raises: bad input becomes error messages that end up in
the collector's response or in a dead letter's headers.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Final, Literal

import orjson
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)
from pydantic_core import PydanticCustomError

from streaming.event import (
    BUTTON_PATTERN,
    CLICK_REQUIRED_FIELDS,
    EVENT_TYPES,
    MAX_EVENT_BYTES,
    MAX_ID_LENGTH,
    MAX_PROPERTIES_BYTES,
    MAX_PROPERTIES_KEYS,
    MAX_REC_SLOT,
    MAX_REQUEST_BYTES,
    UUID_PATTERN,
    Event,
    convert_valid,
    decode_valid,
    encode_event,
)
from streaming.event import (
    event_to_dict as event_to_dict,  # re-exported: part of the contract's API
)

logger = logging.getLogger(__name__)

CONTRACT_VERSION: Final = 1
KNOWN_BUTTONS: Final = (
    "play",
    "pause",
    "seek_forward",
    "seek_back",
    "like",
    "share",
    "add_to_list",
    "skip_intro",
    "next_episode",
    "subtitles",
    "quality",
    "fullscreen",
    "ad_click",
    "rec_tile",
)
SCHEMA_PATH: Final = Path(__file__).resolve().parent / "schema" / "event_v1.schema.json"
SCHEMA_ID: Final = "https://clickpulse.dev/schemas/event_v1.schema.json"

_UUID_PATTERN = f"^{UUID_PATTERN}$"
_BUTTON_PATTERN = f"^{BUTTON_PATTERN}$"
# pydantic's lax datetime parser also takes unix numbers and numeric strings; RFC 3339 does not.
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:[Zz]|[+-]\d{2}:\d{2})\Z")
_CONTRACT_ERROR = "contract"


def _rfc3339_only(value: object) -> object:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and _RFC3339.match(value):
        return value
    raise PydanticCustomError(_CONTRACT_ERROR, "not an RFC 3339 timestamp")


def _to_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


def _small_map(value: dict[str, Any]) -> dict[str, Any]:
    try:
        size = len(orjson.dumps(value))
    except (TypeError, orjson.JSONEncodeError):
        raise PydanticCustomError(_CONTRACT_ERROR, "must be JSON-serialisable") from None
    if size > MAX_PROPERTIES_BYTES:
        raise PydanticCustomError(_CONTRACT_ERROR, f"larger than {MAX_PROPERTIES_BYTES} bytes")
    return value


Rfc3339Utc = Annotated[AwareDatetime, BeforeValidator(_rfc3339_only), AfterValidator(_to_utc)]
Identifier = Annotated[str, StringConstraints(min_length=1, max_length=MAX_ID_LENGTH)]
EventId = Annotated[str, StringConstraints(pattern=_UUID_PATTERN, to_lower=True)]
ButtonId = Annotated[str, StringConstraints(pattern=_BUTTON_PATTERN)]
Properties = Annotated[dict[str, Any], Field(max_length=MAX_PROPERTIES_KEYS), AfterValidator(_small_map)]


class EventV1(BaseModel):
    """A player or backend event as accepted by the collector; unknown fields are kept as extras."""

    model_config = ConfigDict(
        extra="allow",
        title="ClickPulse Event v1",
        json_schema_extra={"description": "A click, impression or conversion event sent by a player SDK."},
    )

    event_id: EventId = Field(description="Client-generated UUID; the dedupe key.")
    event_type: Literal["click", "impression", "conversion"]
    event_time: Rfc3339Utc = Field(description="When it happened on the client (RFC 3339, stored in UTC).")
    user_id: Identifier
    session_id: Identifier
    video_id: Identifier
    button_id: ButtonId | None = Field(
        None, description="Required for clicks. An open set; known buttons: " + ", ".join(KNOWN_BUTTONS) + "."
    )
    playback_position_s: float | None = Field(
        None, ge=0, strict=True, allow_inf_nan=False, description="Required for clicks."
    )
    surface: Identifier | None = None
    rec_slot: int | None = Field(None, ge=0, le=MAX_REC_SLOT, strict=True)
    model_version: Identifier | None = None
    conversion_type: Identifier | None = None
    device: Identifier | None = None
    app_version: Identifier | None = None
    properties: Properties | None = None
    received_at: Rfc3339Utc | None = Field(None, description="Stamped by the collector, server time.")

    @model_validator(mode="after")
    def _clicks_carry_button_and_position(self) -> EventV1:
        if self.event_type == "click":
            missing = [name for name in CLICK_REQUIRED_FIELDS if getattr(self, name) is None]
            if missing:
                raise PydanticCustomError(
                    "click_fields_missing", "click events require {missing}", {"missing": missing}
                )
        return self


_DECLARED_FIELDS: Final = tuple(EventV1.model_fields)


def event_from_model(model: EventV1) -> Event:
    """The struct of a validated model: the same values, unknown fields under ``extra``."""
    values = {name: getattr(model, name) for name in _DECLARED_FIELDS}
    return Event(**values, extra=model.__pydantic_extra__ or None)


@dataclass(slots=True)
class ValidationOutcome:
    """Either a valid event or one message per bad field (``"field: what is wrong"``)."""

    event: Event | None
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.event is not None


_FIELD_MESSAGES: Final[dict[tuple[str, str], str]] = {
    ("event_id", "string_pattern_mismatch"): "not a UUID",
    ("button_id", "string_pattern_mismatch"): "must match [a-z0-9_]{1,64}",
    ("event_type", "literal_error"): "must be one of " + ", ".join(EVENT_TYPES),
}
_TYPE_MESSAGES: Final[dict[str, str]] = {
    "missing": "required",
    "string_type": "must be a string",
    "string_too_short": "must not be empty",
    "string_too_long": "longer than {max_length} characters",
    "string_pattern_mismatch": "must match {pattern}",
    "int_type": "must be an integer",
    "float_type": "must be a number",
    "finite_number": "must be a finite number",
    "greater_than_equal": "must be >= {ge:g}",
    "less_than_equal": "must be <= {le:g}",
    "dict_type": "must be an object",
    "too_long": "at most {max_length} keys",
    "invalid_key": "keys must be strings",
}
_TIME_FIELDS: Final = frozenset({"event_time", "received_at"})


def _error_message(error: Mapping[str, Any]) -> tuple[str, str]:
    loc = error.get("loc") or ()
    name = str(loc[0]) if loc else "event"
    kind = str(error.get("type", ""))
    if name in _TIME_FIELDS and kind != "missing":
        return name, "not an RFC 3339 timestamp"
    if kind == _CONTRACT_ERROR:
        return name, str(error.get("msg", "invalid"))
    template = _FIELD_MESSAGES.get((name, kind)) or _TYPE_MESSAGES.get(kind)
    if template is None:
        return name, str(error.get("msg", "invalid")).lower()
    try:
        return name, template.format(**(error.get("ctx") or {}))
    except (KeyError, IndexError):
        return name, template


def _messages(exc: ValidationError, obj: Mapping[Any, Any]) -> list[str]:
    """One message per field, in field order, plus the click requirements pydantic could not reach."""
    by_field: dict[str, str] = {}
    for error in exc.errors(include_url=False, include_input=False):
        if error["type"] == "click_fields_missing":
            for name in (error.get("ctx") or {}).get("missing", ()):
                by_field.setdefault(name, "required for click events")
            continue
        name, message = _error_message(error)
        by_field.setdefault(name, message)
    # A field error stops the model validator, so check the click requirements here as well.
    if obj.get("event_type") == "click":
        for name in CLICK_REQUIRED_FIELDS:
            if obj.get(name) is None:
                by_field.setdefault(name, "required for click events")
    return [f"{name}: {message}" for name, message in by_field.items()]


def _serialised_size(obj: dict[Any, Any]) -> int | None:
    try:
        return len(orjson.dumps(obj))
    except (TypeError, orjson.JSONEncodeError):
        pass
    try:  # the stdlib copes with what orjson refuses but JSON allows, such as integers beyond 64 bits
        return len(json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode())
    except (TypeError, ValueError, RecursionError):
        return None


def validate_event(obj: object, *, size_bytes: int | None = None) -> ValidationOutcome:
    """Validate one decoded event; never raises. ``size_bytes`` skips re-serialising for the size check."""
    if isinstance(obj, Event):
        return ValidationOutcome(obj)
    if isinstance(obj, EventV1):
        return ValidationOutcome(event_from_model(obj))
    if not isinstance(obj, dict):
        return ValidationOutcome(None, ["event: not a JSON object"])
    try:
        if size_bytes is None:
            size_bytes = _serialised_size(obj)
            if size_bytes is None:
                return ValidationOutcome(None, ["event: not JSON-serialisable"])
        if size_bytes > MAX_EVENT_BYTES:
            return ValidationOutcome(None, [f"event: larger than {MAX_EVENT_BYTES} bytes"])
        event = convert_valid(obj)
        if event is not None:
            return ValidationOutcome(event)
        return validate_with_model(obj)
    except Exception as exc:  # the contract's promise: a bad event is an error message, never a crash
        logger.debug("unexpected failure validating an event", exc_info=True)
        return ValidationOutcome(None, [f"event: invalid ({type(exc).__name__})"])


def validate_with_model(obj: dict[Any, Any]) -> ValidationOutcome:
    """The model's verdict alone (no size check, no fast path): every rejection and every event the fast
    path leaves to it; the reference the fast path is tested against."""
    try:
        return ValidationOutcome(event_from_model(EventV1.model_validate(obj)))
    except ValidationError as exc:
        return ValidationOutcome(None, _messages(exc, obj))


def decode_and_validate(raw: bytes | bytearray | memoryview | str) -> ValidationOutcome:
    """Decode one JSON payload (as it arrives from HTTP or Kafka) and validate it; never raises."""
    size = len(raw.encode()) if isinstance(raw, str) else len(raw)
    if size > MAX_EVENT_BYTES:
        return ValidationOutcome(None, [f"event: larger than {MAX_EVENT_BYTES} bytes"])
    event = decode_valid(raw)
    if event is not None:
        return ValidationOutcome(event)
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return ValidationOutcome(None, [f"event: malformed JSON ({exc})"])
    except Exception as exc:
        return ValidationOutcome(None, [f"event: malformed JSON ({type(exc).__name__})"])
    if not isinstance(obj, dict):
        return ValidationOutcome(None, ["event: not a JSON object"])
    try:
        return validate_with_model(obj)
    except Exception as exc:  # as in validate_event
        logger.debug("unexpected failure validating an event", exc_info=True)
        return ValidationOutcome(None, [f"event: invalid ({type(exc).__name__})"])


def event_to_json_bytes(event: Event | Mapping[str, Any]) -> bytes:
    """Serialise an event (struct or already-shaped dict) to compact JSON with ``Z`` timestamps."""
    if isinstance(event, Event):
        return encode_event(event)
    return orjson.dumps(event, option=orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC)


def export_json_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of Event v1, for SDK authors and outside validators."""
    schema = EventV1.model_json_schema(mode="validation")
    click_fields = {"button_id": {"type": "string"}, "playback_position_s": {"type": "number"}}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        **schema,
        "if": {"properties": {"event_type": {"const": "click"}}, "required": ["event_type"]},
        "then": {"required": list(CLICK_REQUIRED_FIELDS), "properties": click_fields},
        "x-clickpulse": {
            "contract_version": CONTRACT_VERSION,
            "max_event_bytes": MAX_EVENT_BYTES,
            "max_request_bytes": MAX_REQUEST_BYTES,
        },
    }


def render_json_schema() -> str:
    """The schema file's exact text, so the committed file can be compared byte for byte."""
    return json.dumps(export_json_schema(), indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    """``python -m streaming.contract [--check]``: write the schema file, or fail if it is stale."""
    args = sys.argv[1:] if argv is None else argv
    text = render_json_schema()
    if "--check" in args:
        current = SCHEMA_PATH.read_text() if SCHEMA_PATH.exists() else ""
        if current != text:
            print(f"{SCHEMA_PATH} is stale; run: python -m streaming.contract", file=sys.stderr)
            return 1
        return 0
    SCHEMA_PATH.parent.mkdir(parents=True, exist_ok=True)
    SCHEMA_PATH.write_text(text)
    print(f"wrote {SCHEMA_PATH}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
