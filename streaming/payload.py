"""Event batches as they arrive over HTTP or Redis Pub/Sub: a JSON array, ``{"events": [...]}`` or NDJSON.

A payload is split into entries, one per event the client sent, so the collector can answer for every
index (accepted + rejected == sent) and dead-letter a bad event with the bytes the client sent for it.
NDJSON lines are kept as bytes; JSON arrays are decoded in one ``orjson.loads`` and each element's
original bytes are found only when one of them has to be dead-lettered (most requests are all valid).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from streaming.contract import ValidationOutcome, decode_and_validate, validate_event

logger = logging.getLogger(__name__)

NDJSON_MEDIA_TYPES: Final = frozenset(
    {"application/x-ndjson", "application/ndjson", "application/jsonl", "application/x-jsonlines"}
)
MAX_EVENTS_PER_PAYLOAD: Final = 10_000
"""A 500 KB request holds at most ~3,000 real events; more entries than this is abuse (one dead letter
per junk line would amplify a small request into thousands of Kafka records)."""

_WHITESPACE: Final = b" \t\r\n"
_BOM: Final = b"\xef\xbb\xbf"
_EVENTS_KEY: Final = "events"
# Strings (with escapes) and structural characters: everything needed to find element boundaries.
_TOKENS: Final = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{},]', re.DOTALL)


class PayloadError(ValueError):
    """The payload as a whole cannot be read as events (answered with 400 and dead-lettered whole)."""


class TooManyEventsError(ValueError):
    """More entries than ``MAX_EVENTS_PER_PAYLOAD`` (answered with 413)."""


@dataclass(slots=True)
class Payload:
    """The entries of one payload, in the order sent. Exactly one of ``lines`` and ``items`` is set."""

    body: bytes
    shape: str  # "ndjson", "array" or "wrapped"
    lines: list[bytes] | None = None
    items: list[Any] | None = None
    _spans: list[tuple[int, int]] | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.lines) if self.lines is not None else len(self.items or ())

    def validate(self, index: int) -> tuple[ValidationOutcome, dict[str, Any] | None]:
        """Contract v1 verdict for one entry, and the event as the client sent it when it is valid."""
        if self.lines is not None:
            line = self.lines[index]
            outcome = decode_and_validate(line)
            # decode_and_validate returns the normalised model; the record keeps the client's own JSON.
            return outcome, (orjson.loads(line) if outcome.ok else None)
        item = (self.items or [])[index]
        outcome = validate_event(item)
        return outcome, (item if outcome.ok else None)

    def original(self, index: int) -> bytes:
        """The bytes the client sent for one entry (for dead letters)."""
        if self.lines is not None:
            return self.lines[index]
        if self._spans is None:
            self._spans = element_spans(self.body, wrapped=self.shape == "wrapped")
            if len(self._spans) != len(self):
                logger.warning("element scan found %d of %d entries", len(self._spans), len(self))
        if len(self._spans) == len(self):
            start, end = self._spans[index]
            return self.body[start:end]
        return orjson.dumps((self.items or [])[index])  # not reached for JSON orjson accepted


def parse_payload(body: bytes, content_type: str | None = None) -> Payload:
    """Split a request body or Pub/Sub message into entries; raises ``PayloadError`` if it has none.

    NDJSON is chosen by content type (``application/x-ndjson`` and friends) or by sniffing: a body that
    starts with ``[`` is a JSON array; one that starts with ``{`` is ``{"events": [...]}``, a single
    event, or NDJSON when it does not parse as one document. Blank NDJSON lines are not entries.
    """
    stripped = body.removeprefix(_BOM).strip(_WHITESPACE)
    if not stripped:
        raise PayloadError("empty body")
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type in NDJSON_MEDIA_TYPES:
        return _ndjson(stripped)
    first = stripped[:1]
    if first == b"[":
        try:
            value = orjson.loads(stripped)
        except orjson.JSONDecodeError as exc:
            raise PayloadError(f"malformed JSON array ({exc})") from None
        return _checked(Payload(stripped, "array", items=value))
    if first == b"{":
        try:
            value = orjson.loads(stripped)
        except orjson.JSONDecodeError:
            return _ndjson(stripped)
        if _EVENTS_KEY not in value:
            return Payload(stripped, "ndjson", lines=[stripped])
        events = value[_EVENTS_KEY]
        if not isinstance(events, list):
            raise PayloadError('"events" must be an array of events')
        return _checked(Payload(stripped, "wrapped", items=events))
    raise PayloadError('not JSON: expected a JSON array, an {"events": [...]} object or NDJSON lines')


def _ndjson(body: bytes) -> Payload:
    lines = [line for line in (raw.strip(_WHITESPACE) for raw in body.split(b"\n")) if line]
    return _checked(Payload(body, "ndjson", lines=lines))


def _checked(payload: Payload) -> Payload:
    if len(payload) > MAX_EVENTS_PER_PAYLOAD:
        raise TooManyEventsError(f"more than {MAX_EVENTS_PER_PAYLOAD} events in one request")
    return payload


def element_spans(body: bytes, *, wrapped: bool) -> list[tuple[int, int]]:
    """Byte ranges of the elements of the top-level array (or of the ``events`` array when wrapped).

    ``body`` must be JSON that parsed. Only strings and structural characters are visited, so the
    regular expression skips string contents in C; a duplicated ``events`` key keeps the last, like
    the decoder.
    """
    spans: list[tuple[int, int]] = []
    target_depth = 1 if not wrapped else 2
    depth = 0
    in_target = False
    start = 0
    last_key: bytes = b""
    for match in _TOKENS.finditer(body):
        char = body[match.start()]
        if char == 0x22:  # a string: at depth 1 of the wrapper it may be the key before the array
            if depth == 1:
                last_key = match.group()
            continue
        if char in (0x5B, 0x7B):  # [ {
            depth += 1
            if char == 0x5B and depth == target_depth and (not wrapped or _is_events_key(last_key)):
                in_target, start, spans = True, match.end(), []
            continue
        if char in (0x5D, 0x7D):  # ] }
            if in_target and depth == target_depth:
                _close_span(body, start, match.start(), spans)
                in_target = False
            depth -= 1
            continue
        if in_target and depth == target_depth:  # a comma between elements
            _close_span(body, start, match.start(), spans)
            start = match.end()
    return spans


def _is_events_key(token: bytes) -> bool:
    try:
        return bool(orjson.loads(token) == _EVENTS_KEY)
    except orjson.JSONDecodeError:
        return False


def _close_span(body: bytes, start: int, end: int, spans: list[tuple[int, int]]) -> None:
    while start < end and body[start] in _WHITESPACE:
        start += 1
    while end > start and body[end - 1] in _WHITESPACE:
        end -= 1
    if end > start:
        spans.append((start, end))
