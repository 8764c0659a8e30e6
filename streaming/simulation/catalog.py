"""Synthetic dimension data: a video catalog with Zipf popularity and users with hidden taste clusters.

The taste clusters are the planted structure that later proves the recommender works: every user
belongs to one cluster (a genre mix) and mostly watches videos of that mix. The clusters are never
written to the dimension CSVs, only to the truth file.
"""

from __future__ import annotations

import bisect
import csv
import itertools
import logging
import random
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Final, Generic, TypeVar

logger = logging.getLogger(__name__)

GENRES: Final = (
    "action",
    "comedy",
    "drama",
    "documentary",
    "kids",
    "horror",
    "sci_fi",
    "romance",
    "thriller",
    "anime",
)
_ADJECTIVES: Final = (
    "Silent", "Crimson", "Hidden", "Broken", "Golden", "Last", "Frozen", "Wild", "Electric", "Distant",
    "Midnight", "Paper", "Iron", "Hollow", "Bright", "Lost", "Secret", "Northern", "Velvet", "Burning",
)  # fmt: skip
_NOUNS: Final = (
    "Harbor", "Empire", "Garden", "Signal", "Frontier", "Kingdom", "Orchard", "Machine", "River", "Archive",
    "Island", "Protocol", "Lantern", "Circuit", "Valley", "Horizon", "Tide", "Summit", "Mirror", "Voyage",
)  # fmt: skip
_COUNTRIES: Final = (
    ("US", ("en",), 0.30), ("GB", ("en",), 0.08), ("DE", ("de", "en"), 0.08), ("FR", ("fr",), 0.07),
    ("BR", ("pt",), 0.09), ("IN", ("hi", "en"), 0.12), ("JP", ("ja",), 0.06), ("ES", ("es",), 0.05),
    ("MX", ("es",), 0.07), ("CA", ("en", "fr"), 0.08),
)  # fmt: skip
_TIERS: Final = (("free", 0.35), ("basic", 0.25), ("standard", 0.25), ("premium", 0.15))
SERIES_SHARE: Final = 0.4
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Video:
    video_id: str
    title: str
    series: str  # empty for films
    episode: int | None
    genre: str
    duration_s: int
    release_date: date

    @property
    def is_episode(self) -> bool:
        return bool(self.series)


@dataclass(frozen=True, slots=True)
class TasteCluster:
    cluster_id: str
    genres: dict[str, float]  # genre -> share of the cluster's viewing drawn from it


@dataclass(frozen=True, slots=True)
class User:
    user_id: str
    country: str
    subscription_tier: str
    signup_date: date
    language: str
    cluster_id: str  # hidden: kept out of user_profiles.csv
    activity: float  # relative session rate


class WeightedPicker(Generic[T]):
    """Draws items with fixed weights in O(log n) from a precomputed cumulative table."""

    def __init__(self, items: list[T], weights: list[float]) -> None:
        if not items or len(items) != len(weights):
            raise ValueError("WeightedPicker needs one weight per item and at least one item")
        self.items = items
        self._cumulative = list(itertools.accumulate(weights))
        self._total = self._cumulative[-1]

    def pick(self, rng: random.Random) -> T:
        index = bisect.bisect_right(self._cumulative, rng.random() * self._total)
        return self.items[min(index, len(self.items) - 1)]


@dataclass
class Dimensions:
    """Catalog, users and the planted taste clusters, plus lookups the behaviour model needs."""

    videos: list[Video]
    users: list[User]
    clusters: list[TasteCluster]
    popularity: dict[str, float]  # video_id -> Zipf weight
    _by_id: dict[str, Video] = field(init=False, repr=False)
    _clusters: dict[str, TasteCluster] = field(init=False, repr=False)
    _next_episode: dict[str, Video] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._by_id = {v.video_id: v for v in self.videos}
        self._clusters = {c.cluster_id: c for c in self.clusters}
        by_series: dict[str, list[Video]] = {}
        for video in self.videos:
            if video.is_episode:
                by_series.setdefault(video.series, []).append(video)
        self._next_episode = {}
        for episodes in by_series.values():
            episodes.sort(key=lambda v: v.episode or 0)
            for current, following in itertools.pairwise(episodes):
                self._next_episode[current.video_id] = following

    def video(self, video_id: str) -> Video:
        return self._by_id[video_id]

    def next_episode(self, video: Video) -> Video | None:
        return self._next_episode.get(video.video_id)

    def cluster(self, cluster_id: str) -> TasteCluster:
        return self._clusters[cluster_id]


def _id_width(count: int, minimum: int) -> int:
    return max(minimum, len(str(count)))


def build_videos(rng: random.Random, count: int, reference: date) -> list[Video]:
    """Films and series episodes; every genre gets at least one title when the catalog is big enough."""
    width = _id_width(count, 4)
    unassigned = list(GENRES[: min(count, len(GENRES))])
    videos: list[Video] = []
    series_names: set[str] = set()
    while len(videos) < count:
        genre = unassigned.pop(0) if unassigned else rng.choice(GENRES)
        name = f"{rng.choice(_ADJECTIVES)} {rng.choice(_NOUNS)}"
        released = reference - timedelta(days=rng.randrange(30, 3650))
        room = count - len(videos) - len(unassigned)
        if room > 1 and rng.random() < SERIES_SHARE:
            series = name if name not in series_names else f"{name} {len(series_names) + 1}"
            series_names.add(series)
            episode_length = rng.randint(20, 60) * 60
            for episode in range(1, min(rng.randint(3, 10), room) + 1):
                videos.append(
                    Video(
                        video_id=f"v{len(videos) + 1:0{width}d}",
                        title=f"{series}: Episode {episode}",
                        series=series,
                        episode=episode,
                        genre=genre,
                        duration_s=episode_length + rng.randint(-120, 120),
                        release_date=released + timedelta(days=7 * (episode - 1)),
                    )
                )
        else:
            videos.append(
                Video(
                    video_id=f"v{len(videos) + 1:0{width}d}",
                    title=f"The {name}",
                    series="",
                    episode=None,
                    genre=genre,
                    duration_s=rng.randint(80, 160) * 60,
                    release_date=released,
                )
            )
    return videos


def zipf_popularity(rng: random.Random, videos: list[Video], exponent: float) -> dict[str, float]:
    """Zipf weights over a random ranking, so popularity does not follow catalog order."""
    ranks = list(range(1, len(videos) + 1))
    rng.shuffle(ranks)
    return {video.video_id: 1.0 / rank**exponent for video, rank in zip(videos, ranks, strict=True)}


def build_clusters(rng: random.Random, count: int) -> list[TasteCluster]:
    """Each cluster prefers a primary and a secondary genre; pairs differ between clusters."""
    order = list(GENRES)
    rng.shuffle(order)
    clusters = []
    for index in range(count):
        primary = order[index % len(order)]
        secondary = order[(index + count) % len(order)]
        if secondary == primary:
            secondary = order[(index + 1) % len(order)]
        clusters.append(TasteCluster(f"c{index}", {primary: 0.6, secondary: 0.4}))
    return clusters


def build_users(rng: random.Random, count: int, clusters: list[TasteCluster], reference: date) -> list[User]:
    width = _id_width(count, 5)
    countries = WeightedPicker(list(_COUNTRIES), [share for _, _, share in _COUNTRIES])
    tiers = WeightedPicker([tier for tier, _ in _TIERS], [share for _, share in _TIERS])
    users = []
    for index in range(1, count + 1):
        country, languages, _ = countries.pick(rng)
        users.append(
            User(
                user_id=f"u{index:0{width}d}",
                country=country,
                subscription_tier=tiers.pick(rng),
                signup_date=reference - timedelta(days=rng.randrange(1, 5 * 365)),
                language=languages[0] if rng.random() < 0.8 else rng.choice(languages),
                cluster_id=rng.choice(clusters).cluster_id,
                activity=rng.lognormvariate(0.0, 0.8),
            )
        )
    return users


def build_dimensions(
    seed: int, *, users: int, videos: int, clusters: int, zipf_exponent: float, reference: date
) -> Dimensions:
    """Dimensions depend only on these arguments, never on how many events are generated later."""
    rng = random.Random(f"clickpulse-dimensions:{seed}")
    catalog = build_videos(rng, videos, reference)
    popularity = zipf_popularity(rng, catalog, zipf_exponent)
    taste = build_clusters(rng, clusters)
    people = build_users(rng, users, taste, reference)
    return Dimensions(videos=catalog, users=people, clusters=taste, popularity=popularity)


VIDEO_COLUMNS: Final = ("video_id", "title", "series", "episode", "genre", "duration_s", "release_date")
USER_COLUMNS: Final = ("user_id", "country", "subscription_tier", "signup_date", "language")


def write_dimensions(directory: Path, dimensions: Dimensions) -> list[Path]:
    """Write video_catalog.csv and user_profiles.csv (the taste clusters stay hidden)."""
    directory.mkdir(parents=True, exist_ok=True)
    catalog_path = directory / "video_catalog.csv"
    with catalog_path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(VIDEO_COLUMNS)
        for v in dimensions.videos:
            episode = "" if v.episode is None else v.episode
            writer.writerow(
                (v.video_id, v.title, v.series, episode, v.genre, v.duration_s, v.release_date.isoformat())
            )
    users_path = directory / "user_profiles.csv"
    with users_path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(USER_COLUMNS)
        for u in dimensions.users:
            signup = u.signup_date.isoformat()
            writer.writerow((u.user_id, u.country, u.subscription_tier, signup, u.language))
    logger.info("wrote %d videos, %d users to %s", len(dimensions.videos), len(dimensions.users), directory)
    return [catalog_path, users_path]
