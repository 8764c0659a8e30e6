"""Payloads that break the contract in the ways real clients do, to exercise rejections and the DLQ.

Each kind starts from a well-formed event and breaks exactly one thing, so a test can check that the
collector and consumer reject it with the message for that one field. Payloads never contain a raw
newline, so they can sit on one line of an NDJSON file next to the valid events.
"""

from __future__ import annotations

import logging
import random
import string
from collections.abc import Callable
from typing import Any, Final

import orjson

from streaming.contract import MAX_EVENT_BYTES

logger = logging.getLogger(__name__)

REQUIRED_FIELDS: Final = ("event_id", "event_type", "event_time", "user_id", "session_id", "video_id")

Breaker = Callable[[random.Random, dict[str, Any]], bytes]


def _dumps(event: object) -> bytes:
    return orjson.dumps(event)


def _truncated_json(rng: random.Random, event: dict[str, Any]) -> bytes:
    whole = _dumps(event)
    return whole[: rng.randrange(1, len(whole) - 1)]  # a proper prefix of an object never parses


def _not_json(rng: random.Random, event: dict[str, Any]) -> bytes:
    noise = "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(rng.randint(5, 40)))
    forms = (
        f"event_type=click&user_id={event['user_id']}&x={noise}",
        f"<event type='click'>{noise}</event>",
        f"{{'event_type': 'click', 'user_id': '{event['user_id']}'}}",
        noise + " {",
    )
    return rng.choice(forms).encode()


def _not_an_object(rng: random.Random, event: dict[str, Any]) -> bytes:
    return _dumps(rng.choice(([event], "click", 42, None)))


def _missing_field(rng: random.Random, event: dict[str, Any]) -> bytes:
    broken = dict(event)
    del broken[rng.choice(REQUIRED_FIELDS)]
    return _dumps(broken)


def _wrong_type(rng: random.Random, event: dict[str, Any]) -> bytes:
    broken = dict(event)
    name, value = rng.choice(
        (
            ("user_id", rng.randint(1, 10**6)),
            ("event_time", rng.randint(1_600_000_000, 1_800_000_000)),
            ("video_id", [event["video_id"]]),
            ("rec_slot", "first"),
            ("properties", "tile_index=3"),
            ("event_type", 1),
        )
    )
    broken[name] = value
    return _dumps(broken)


def _as_click(event: dict[str, Any]) -> dict[str, Any]:
    click = {k: v for k, v in event.items() if k != "conversion_type"}
    click["event_type"] = "click"
    click.setdefault("button_id", "play")
    click.setdefault("playback_position_s", 0.0)
    return click


def _negative_playback(rng: random.Random, event: dict[str, Any]) -> bytes:
    click = _as_click(event)
    click["playback_position_s"] = -round(rng.uniform(0.1, 500.0), 1)
    return _dumps(click)


def _click_without_button(rng: random.Random, event: dict[str, Any]) -> bytes:
    click = _as_click(event)
    del click[rng.choice(("button_id", "playback_position_s"))]
    return _dumps(click)


def _bad_event_type(rng: random.Random, event: dict[str, Any]) -> bytes:
    return _dumps({**event, "event_type": rng.choice(("hover", "CLICK", "view", ""))})


def _bad_event_time(rng: random.Random, event: dict[str, Any]) -> bytes:
    naive = str(event["event_time"]).replace("T", " ").removesuffix("Z")
    return _dumps({**event, "event_time": rng.choice(("yesterday", "2024-13-01T00:00:00Z", naive, ""))})


def _bad_event_id(rng: random.Random, event: dict[str, Any]) -> bytes:
    return _dumps({**event, "event_id": rng.choice(("not-a-uuid", "12345", "", "evt_" + event["event_id"]))})


def _oversized(rng: random.Random, event: dict[str, Any]) -> bytes:
    return _dumps({**event, "debug_dump": "x" * (MAX_EVENT_BYTES + rng.randint(1, 4096))})


MALFORMED_KINDS: Final[dict[str, tuple[Breaker, float]]] = {
    "truncated_json": (_truncated_json, 4),
    "not_json": (_not_json, 2),
    "not_an_object": (_not_an_object, 1),
    "missing_field": (_missing_field, 4),
    "wrong_type": (_wrong_type, 4),
    "negative_playback": (_negative_playback, 3),
    "click_without_button": (_click_without_button, 3),
    "bad_event_type": (_bad_event_type, 2),
    "bad_event_time": (_bad_event_time, 3),
    "bad_event_id": (_bad_event_id, 2),
    "oversized": (_oversized, 0.5),
}


def malformed_payload(
    rng: random.Random, event: dict[str, Any], kind: str | None = None
) -> tuple[str, bytes]:
    """Break a well-formed event in one way (``kind``, or one drawn by weight); returns (kind, payload)."""
    if kind is None:
        names = list(MALFORMED_KINDS)
        kind = rng.choices(names, weights=[MALFORMED_KINDS[n][1] for n in names])[0]
    breaker, _ = MALFORMED_KINDS[kind]
    return kind, breaker(rng, event)
