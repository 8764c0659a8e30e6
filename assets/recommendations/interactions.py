"""User x video interactions as integer-coded arrays and the weighted, time-decayed sparse matrices.

The input is the interactions mart (``int_user_video_interactions_aggregated``): one row per user and
video with impression, click and conversion counts and the first/last event time. Ids are coded once
for the whole frame, so the holdout split's train and test matrices share one shape and models trained on
either can score the other.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import numpy as np
import pandas as pd
import scipy.sparse as sp

logger = logging.getLogger(__name__)

REQUIRED_COLUMNS: Final = ("user_id", "video_id", "impressions", "clicks", "conversions", "last_event_time")
MART_COLUMNS: Final = (*REQUIRED_COLUMNS[:5], "first_event_time", "last_event_time")
_MS_PER_DAY: Final = 86_400_000
_EVENT_COUNTS: Final = {"impression": "impressions", "click": "clicks", "conversion": "conversions"}


@dataclass(frozen=True, slots=True)
class EventWeights:
    """How much one event of each type says about a user's taste: impression < click < conversion."""

    impression: float = 0.1
    click: float = 1.0
    conversion: float = 3.0

    def __post_init__(self) -> None:
        if not 0 <= self.impression < self.click < self.conversion:
            raise ValueError(
                "event weights must satisfy 0 <= impression < click < conversion, got "
                f"{self.impression}, {self.click}, {self.conversion}"
            )


def epoch_ms(values: Any) -> np.ndarray:
    """Timestamps (datetime64 with or without zone, strings, pyarrow) as int64 milliseconds, UTC."""
    stamps = pd.to_datetime(pd.Series(values), utc=True)
    return ((stamps - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(milliseconds=1)).to_numpy(np.int64)


@dataclass(frozen=True)
class Interactions:
    """One entry per user x video pair; ``user`` and ``video`` index ``user_ids`` and ``video_ids``."""

    user_ids: np.ndarray  # unique user ids (str), position = code
    video_ids: np.ndarray  # unique video ids (str), position = code
    user: np.ndarray  # int32 code per pair
    video: np.ndarray  # int32 code per pair
    impressions: np.ndarray  # float32 per pair
    clicks: np.ndarray
    conversions: np.ndarray
    first_ms: np.ndarray  # int64: first event, or the last event when the mart has no first_event_time
    last_ms: np.ndarray  # int64

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> Interactions:
        """Code the ids of a mart frame; rows with a missing id are dropped (the mart tests forbid them)."""
        missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
        if missing:
            raise ValueError(f"interactions frame lacks columns {missing}")
        keep = frame["user_id"].notna() & frame["video_id"].notna()
        if not keep.all():
            logger.warning("dropped %d interaction rows without user_id or video_id", int((~keep).sum()))
            frame = frame.loc[keep]
        user, user_ids = pd.factorize(frame["user_id"].astype(str), sort=True)
        video, video_ids = pd.factorize(frame["video_id"].astype(str), sort=True)
        last_ms = epoch_ms(frame["last_event_time"])
        first = frame["first_event_time"] if "first_event_time" in frame.columns else None
        first_ms = last_ms if first is None else np.minimum(epoch_ms(first), last_ms)

        def counts(name: str) -> np.ndarray:
            return frame[name].fillna(0).to_numpy(np.float32)

        return cls(
            user_ids=np.asarray(user_ids, dtype=object),
            video_ids=np.asarray(video_ids, dtype=object),
            user=user.astype(np.int32),
            video=video.astype(np.int32),
            impressions=counts("impressions"),
            clicks=counts("clicks"),
            conversions=counts("conversions"),
            first_ms=first_ms,
            last_ms=last_ms,
        )

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_videos(self) -> int:
        return len(self.video_ids)

    @property
    def n_pairs(self) -> int:
        return len(self.user)

    @property
    def engaged(self) -> np.ndarray:
        """Pairs with a click or a conversion: what counts as a hit in evaluation."""
        return (self.clicks > 0) | (self.conversions > 0)

    def subset(self, mask: np.ndarray) -> Interactions:
        """The pairs where ``mask`` holds, with the same id coding."""
        return Interactions(
            user_ids=self.user_ids,
            video_ids=self.video_ids,
            user=self.user[mask],
            video=self.video[mask],
            impressions=self.impressions[mask],
            clicks=self.clicks[mask],
            conversions=self.conversions[mask],
            first_ms=self.first_ms[mask],
            last_ms=self.last_ms[mask],
        )

    def weights(
        self,
        event_weights: EventWeights,
        half_life_days: float,
        reference_ms: int,
        *,
        engaged_only: bool = False,
    ) -> np.ndarray:
        """Weighted events per pair, halved every ``half_life_days`` before ``reference_ms``."""
        impression = 0.0 if engaged_only else event_weights.impression
        raw = (
            impression * self.impressions
            + event_weights.click * self.clicks
            + event_weights.conversion * self.conversions
        )
        age_days = np.maximum(reference_ms - self.last_ms, 0) / _MS_PER_DAY
        return (raw * np.exp2(-age_days / half_life_days)).astype(np.float32)

    def matrix(self, values: np.ndarray | None = None) -> sp.csr_matrix:
        """users x videos CSR of ``values`` per pair (1 when None); zero entries are dropped."""
        data = np.ones(self.n_pairs, np.float32) if values is None else values.astype(np.float32)
        m = sp.csr_matrix((data, (self.user, self.video)), shape=(self.n_users, self.n_videos))
        m.sum_duplicates()
        m.eliminate_zeros()
        return m

    def reference_ms(self) -> int:
        """The latest event: "now" for the time decay of a model trained on these pairs."""
        return int(self.last_ms.max()) if self.n_pairs else 0


def aggregate_events(events: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """The interactions mart computed from raw events, for tests, benchmarks and the demo without a
    warehouse: the same columns and counting as ``int_user_video_interactions_aggregated``."""
    rows: dict[tuple[str, str], list[Any]] = {}
    for event in events:
        kind = _EVENT_COUNTS.get(str(event.get("event_type")))
        if kind is None:
            continue
        key = (str(event["user_id"]), str(event["video_id"]))
        when = event["event_time"]
        if isinstance(when, str):
            when = datetime.fromisoformat(when)
        row = rows.get(key)
        if row is None:
            row = rows[key] = [0, 0, 0, when, when]
        row[("impressions", "clicks", "conversions").index(kind)] += 1
        row[3] = min(row[3], when)
        row[4] = max(row[4], when)
    frame = pd.DataFrame(
        [(u, v, *r) for (u, v), r in rows.items()],
        columns=["user_id", "video_id", "impressions", "clicks", "conversions", "first", "last"],
    )
    frame["first_event_time"] = pd.to_datetime(frame.pop("first"), utc=True)
    frame["last_event_time"] = pd.to_datetime(frame.pop("last"), utc=True)
    return frame
