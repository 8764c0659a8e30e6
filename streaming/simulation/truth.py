"""Ground truth: what the simulator actually emitted, counted the way the marts and counters should.

Every integration test compares Redis counters, warehouse marts and API answers against these
numbers. Counts cover valid events only, each event_id once (a duplicate is counted in
``totals.duplicates`` and nowhere else). ``recount_truth`` rebuilds the same numbers from an NDJSON
file using only the contract, so a bug in the simulator's bookkeeping shows up as a mismatch.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

from streaming.contract import decode_and_validate
from streaming.event import Event

logger = logging.getLogger(__name__)

LATE_THRESHOLD_MS: Final = 5 * 60 * 1000  # an event sent more than this after it happened is "late"
_HOUR_MS: Final = 3_600_000
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MS: Final = timedelta(milliseconds=1)


def epoch_ms(moment: datetime) -> int:
    """Exact integer milliseconds (float ``timestamp()`` can round 0.123 s down to 122 ms)."""
    return (moment - _EPOCH) // _MS


def iso_ms(ms: int) -> str:
    """RFC 3339 UTC with milliseconds and ``Z``, the format the simulator sends."""
    moment = _EPOCH + timedelta(milliseconds=ms)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


@dataclass(slots=True)
class _Counts:
    clicks: int = 0
    impressions: int = 0
    conversions: int = 0
    clicks_by_button: Counter[str] = field(default_factory=Counter)
    users: set[str] = field(default_factory=set)

    def add(self, event_type: str, button_id: str | None, user_id: str) -> None:
        if event_type == "click":
            self.clicks += 1
            self.clicks_by_button[button_id or ""] += 1
        elif event_type == "impression":
            self.impressions += 1
        elif event_type == "conversion":
            self.conversions += 1
        self.users.add(user_id)

    def to_dict(self) -> dict[str, Any]:
        return {
            "clicks": self.clicks,
            "clicks_by_button": dict(sorted(self.clicks_by_button.items())),
            "impressions": self.impressions,
            "conversions": self.conversions,
            "unique_users": len(self.users),
        }


class Truth:
    """Accumulates counts from valid, de-duplicated events; ``to_dict`` is the truth file's body."""

    def __init__(self) -> None:
        self.sent = 0
        self.duplicates = 0
        self.malformed = 0
        self.late = 0
        self.late_beyond_lateness = 0
        self.valid = 0
        self._totals: Counter[str] = Counter()
        self._videos: dict[str, _Counts] = {}
        self._video_hours: dict[tuple[str, int], _Counts] = {}
        self._buttons: Counter[str] = Counter()
        self._surfaces: dict[str, Counter[str]] = {}
        self._rec_slots: dict[tuple[int, str | None], Counter[str]] = {}
        self._users: Counter[str] = Counter()
        self._first_ms: int | None = None
        self._last_ms: int | None = None

    def add_event(
        self,
        event: Mapping[str, Any],
        event_time_ms: int,
        *,
        late: bool = False,
        beyond_lateness: bool = False,
    ) -> None:
        """Count one valid event the first time its event_id is sent."""
        self.sent += 1
        self.valid += 1
        self.late += late
        self.late_beyond_lateness += late and beyond_lateness
        event_type = event["event_type"]
        video_id = event["video_id"]
        user_id = event["user_id"]
        button_id = event.get("button_id")
        self._totals[event_type] += 1
        counts = self._videos.get(video_id)
        if counts is None:
            counts = self._videos[video_id] = _Counts()
        counts.add(event_type, button_id, user_id)
        hour_key = (video_id, event_time_ms - event_time_ms % _HOUR_MS)
        hourly = self._video_hours.get(hour_key)
        if hourly is None:
            hourly = self._video_hours[hour_key] = _Counts()
        hourly.add(event_type, button_id, user_id)
        if event_type == "click":
            self._buttons[button_id or ""] += 1
        surface = event.get("surface")
        if surface is not None:
            self._surfaces.setdefault(surface, Counter())[event_type] += 1
        rec_slot = event.get("rec_slot")
        if rec_slot is not None:
            self._rec_slots.setdefault((rec_slot, event.get("model_version")), Counter())[event_type] += 1
        self._users[user_id] += 1
        if self._first_ms is None or event_time_ms < self._first_ms:
            self._first_ms = event_time_ms
        if self._last_ms is None or event_time_ms > self._last_ms:
            self._last_ms = event_time_ms

    def add_duplicate(self) -> None:
        self.sent += 1
        self.duplicates += 1

    def add_malformed(self) -> None:
        self.sent += 1
        self.malformed += 1

    def video_users(self, video_id: str) -> frozenset[str]:
        """The distinct users behind one video's ``unique_users``."""
        counts = self._videos.get(video_id)
        return frozenset() if counts is None else frozenset(counts.users)

    def video_hour_users(self, video_id: str, iso_hour_start: str) -> frozenset[str]:
        """The distinct users behind one video-hour's ``unique_users`` (hour as in ``to_dict``)."""
        hour_ms = epoch_ms(datetime.strptime(iso_hour_start, "%Y-%m-%dT%H:00:00Z").replace(tzinfo=UTC))
        counts = self._video_hours.get((video_id, hour_ms))
        return frozenset() if counts is None else frozenset(counts.users)

    def top_videos(self, n: int = 5) -> list[tuple[str, int]]:
        ranked = sorted(self._videos.items(), key=lambda item: (-item[1].clicks, item[0]))
        return [(video_id, counts.clicks) for video_id, counts in ranked[:n]]

    def to_dict(self) -> dict[str, Any]:
        hours: dict[str, dict[str, Any]] = {}
        for (video_id, hour_ms), counts in sorted(self._video_hours.items()):
            hours.setdefault(video_id, {})[iso_hour(hour_ms)] = counts.to_dict()
        return {
            "totals": {
                "sent": self.sent,
                "valid": self.valid,
                "duplicates": self.duplicates,
                "malformed": self.malformed,
                "late": self.late,
                "late_beyond_lateness": self.late_beyond_lateness,
                "clicks": self._totals["click"],
                "impressions": self._totals["impression"],
                "conversions": self._totals["conversion"],
                "distinct_users": len(self._users),
                "distinct_videos": len(self._videos),
                "first_event_time": None if self._first_ms is None else iso_ms(self._first_ms),
                "last_event_time": None if self._last_ms is None else iso_ms(self._last_ms),
            },
            "videos": {video_id: counts.to_dict() for video_id, counts in sorted(self._videos.items())},
            "video_hours": hours,
            "buttons": dict(sorted(self._buttons.items())),
            "surfaces": {
                surface: {
                    "impressions": counts["impression"],
                    "clicks": counts["click"],
                    "conversions": counts["conversion"],
                }
                for surface, counts in sorted(self._surfaces.items())
            },
            "rec_slots": [
                {
                    "rec_slot": slot,
                    "model_version": model_version,
                    "impressions": counts["impression"],
                    "clicks": counts["click"],
                }
                for (slot, model_version), counts in sorted(
                    self._rec_slots.items(), key=lambda item: (item[0][0], item[0][1] or "")
                )
            ],
            "users": dict(sorted(self._users.items())),
        }


def iso_hour(hour_ms: int) -> str:
    return (_EPOCH + timedelta(milliseconds=hour_ms)).strftime("%Y-%m-%dT%H:00:00Z")


_COUNTED_FIELDS: Final = (
    "event_type",
    "video_id",
    "user_id",
    "button_id",
    "surface",
    "rec_slot",
    "model_version",
)


class Recounter:
    """Counts validated records as they stream past: first-seen event_id, lateness from a watermark.

    A file has no send times, so lateness is judged against the newest event_time seen so far, which
    tracks the send clock closely while traffic is dense (gaps between records well under 5 minutes).
    """

    def __init__(self, *, allowed_lateness_minutes: int, late_threshold_ms: int = LATE_THRESHOLD_MS) -> None:
        self.truth = Truth()
        self._seen: set[str] = set()
        self._watermark: int | None = None
        self._allowed_ms = allowed_lateness_minutes * 60_000
        self._threshold_ms = late_threshold_ms

    def add(self, event: Event | None) -> None:
        """Count one record: ``None`` for a payload the contract rejected."""
        if event is None:
            self.truth.add_malformed()
            return
        if event.event_id in self._seen:
            self.truth.add_duplicate()
            return
        self._seen.add(event.event_id)
        moment = epoch_ms(event.event_time)
        behind = 0 if self._watermark is None else self._watermark - moment
        self._watermark = moment if self._watermark is None else max(self._watermark, moment)
        fields = {name: getattr(event, name) for name in _COUNTED_FIELDS}
        late = behind > self._threshold_ms
        self.truth.add_event(fields, moment, late=late, beyond_lateness=behind > self._allowed_ms)


def recount_lines(lines: Iterable[bytes], *, allowed_lateness_minutes: int) -> Truth:
    """Recount from raw payloads using only the contract, independent of the simulator's bookkeeping."""
    recounter = Recounter(allowed_lateness_minutes=allowed_lateness_minutes)
    for line in lines:
        recounter.add(decode_and_validate(line).event)
    return recounter.truth


def read_ndjson_lines(path: Path) -> Iterable[bytes]:
    """Each non-empty line of an NDJSON file, without its line ending."""
    with path.open("rb") as handle:
        for line in handle:
            payload = line.rstrip(b"\r\n")
            if payload:
                yield payload


def recount_truth(events_ndjson_path: Path | str, *, allowed_lateness_minutes: int = 60) -> Truth:
    """Recount the truth from an NDJSON file written by ``simulate --out`` (all records, as sent)."""
    return recount_lines(
        read_ndjson_lines(Path(events_ndjson_path)), allowed_lateness_minutes=allowed_lateness_minutes
    )
