"""How simulated viewers behave: browse a surface, see tiles, click one, then use the player.

A session is a Python generator of event bodies (everything but ``event_id`` and ``event_time``, which
the simulator stamps when it sends), so thousands of interleaved sessions cost a few objects each.
The button mix depends on the surface and the playback position: ``skip_intro`` near the start of an
episode, ``next_episode`` near its end, seeks and pauses in the middle, ``rec_tile`` on recommendation rows.
"""

from __future__ import annotations

import logging
import random
import uuid
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import Any, Final

from streaming.simulation.catalog import Dimensions, User, Video, WeightedPicker

logger = logging.getLogger(__name__)

SURFACES: Final = ("home", "search", "continue_watching", "rec_row", "player")
_SURFACE_SHARES: Final = (0.32, 0.14, 0.14, 0.25, 0.15)
TILES_PER_SURFACE: Final = {"home": 8, "search": 6, "continue_watching": 4, "rec_row": 10}
TILE_BUTTON: Final = {"home": "play", "search": "play", "continue_watching": "play", "rec_row": "rec_tile"}
INTRO_END_S: Final = 120.0  # skip_intro is offered before this position (and in the first tenth)
CREDITS_SHARE: Final = 0.9  # next_episode is offered from this share of the duration on
WATCH_COMPLETE_SHARE: Final = 0.95
_DEVICES: Final = (("web", 0.3), ("ios", 0.2), ("android", 0.25), ("tv", 0.25))
_APP_VERSIONS: Final = ("4.1.0", "4.2.0", "4.2.1", "4.3.0")
_BOUNCE: Final = 0.35  # share of browse sessions that end after the impressions
_ABANDON: Final = 0.12  # chance to leave the player after any click
_POSITION_BIAS: Final = 0.7  # tiles further right get fewer clicks: weight 1 / (slot + 1) ** bias
_OFF_TASTE_AFFINITY: Final = 0.05

_PHASE_BUTTONS: Final[dict[str, dict[str, float]]] = {
    "start_episode": {"skip_intro": 6, "pause": 1, "subtitles": 1.5, "quality": 1, "fullscreen": 2},
    "start_film": {"pause": 1, "subtitles": 1.5, "quality": 1, "fullscreen": 2, "seek_forward": 1},
    "middle": {
        "pause": 3,
        "seek_forward": 2,
        "seek_back": 1.5,
        "like": 0.8,
        "share": 0.3,
        "add_to_list": 0.5,
        "subtitles": 0.3,
        "quality": 0.3,
        "fullscreen": 0.3,
        "ad_click": 0.25,
    },
    "end_episode": {"next_episode": 6, "like": 1, "share": 0.3, "add_to_list": 0.3},
    "end_film": {"like": 2, "share": 0.5, "add_to_list": 0.8, "pause": 0.3},
}


@dataclass(frozen=True, slots=True)
class BehaviourSettings:
    taste_strength: float = 0.85  # chance a chosen video comes from the user's taste cluster
    model_versions: tuple[str, ...] = ("als-v1", "pop-v0")


def playback_phase(video: Video, position_s: float) -> str:
    """start / middle / end of a video, which decides the player's button mix."""
    if position_s < min(INTRO_END_S, 0.1 * video.duration_s):
        return "start_episode" if video.is_episode else "start_film"
    if position_s >= CREDITS_SHARE * video.duration_s:
        return "end_episode" if video.is_episode else "end_film"
    return "middle"


class ViewerBehaviour:
    """Creates sessions; all randomness comes from the one ``rng`` so a seed fixes every byte."""

    def __init__(self, rng: random.Random, dimensions: Dimensions, settings: BehaviourSettings) -> None:
        self._rng = rng
        self._dims = dimensions
        self._settings = settings
        self._users = WeightedPicker(dimensions.users, [u.activity for u in dimensions.users])
        self._surfaces = WeightedPicker(list(SURFACES), list(_SURFACE_SHARES))
        self._devices = WeightedPicker([d for d, _ in _DEVICES], [w for _, w in _DEVICES])
        versions = settings.model_versions  # the first is the champion (70 %), the rest share the remainder
        challengers = [0.3 / max(1, len(versions) - 1)] * (len(versions) - 1)
        self._models = WeightedPicker(list(versions), [0.7, *challengers])
        self._phase_pickers = {
            phase: WeightedPicker(list(weights), list(weights.values()))
            for phase, weights in _PHASE_BUTTONS.items()
        }
        pop = dimensions.popularity
        self._everything = WeightedPicker(dimensions.videos, [pop[v.video_id] for v in dimensions.videos])
        by_genre: dict[str, list[Video]] = {}
        for video in dimensions.videos:
            by_genre.setdefault(video.genre, []).append(video)
        self._by_genre = {g: WeightedPicker(vs, [pop[v.video_id] for v in vs]) for g, vs in by_genre.items()}
        self._cluster_genres: dict[str, WeightedPicker[str]] = {}
        for cluster in dimensions.clusters:
            present = {genre: weight for genre, weight in cluster.genres.items() if genre in by_genre}
            if present:  # a tiny catalog may lack a cluster's genres; its users then pick by popularity
                self._cluster_genres[cluster.cluster_id] = WeightedPicker(
                    list(present), list(present.values())
                )

    def pick_video(self, user: User) -> Video:
        genres = self._cluster_genres.get(user.cluster_id)
        if genres is not None and self._rng.random() < self._settings.taste_strength:
            return self._by_genre[genres.pick(self._rng)].pick(self._rng)
        return self._everything.pick(self._rng)

    def affinity(self, user: User, video: Video) -> float:
        return self._dims.cluster(user.cluster_id).genres.get(video.genre, 0.0) + _OFF_TASTE_AFFINITY

    def session(self) -> Iterator[dict[str, Any]]:
        """One viewing session as a lazy stream of event bodies."""
        rng = self._rng
        user = self._users.pick(rng)
        device = self._devices.pick(rng)
        base = {
            "user_id": user.user_id,
            "session_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "device": device,
            "app_version": rng.choice(_APP_VERSIONS),
        }
        surface = self._surfaces.pick(rng)
        if surface == "player":  # autoplay or a deep link: straight into playback
            video = self.pick_video(user)
            yield from self._watch(base, user, video, 0.0)
            return
        chosen = yield from self._browse(base, user, surface)
        if chosen is None:
            return
        video, position = chosen
        yield from self._watch(base, user, video, position)

    def _browse(
        self, base: dict[str, Any], user: User, surface: str
    ) -> Generator[dict[str, Any], None, tuple[Video, float] | None]:
        """Impressions for a row of tiles, then maybe a click on one; returns what the viewer opened."""
        rng = self._rng
        tiles: list[Video] = []
        seen: set[str] = set()
        for _ in range(TILES_PER_SURFACE[surface] * 3):
            if len(tiles) == TILES_PER_SURFACE[surface]:
                break
            video = self.pick_video(user)
            if video.video_id not in seen:
                seen.add(video.video_id)
                tiles.append(video)
        model_version = self._models.pick(rng) if surface == "rec_row" else None
        for slot, video in enumerate(tiles):
            event = {**base, "event_type": "impression", "video_id": video.video_id, "surface": surface}
            if model_version is not None:
                event["rec_slot"] = slot
                event["model_version"] = model_version
            else:
                event["properties"] = {"tile_index": slot}
            yield event
        if rng.random() < _BOUNCE:
            return None
        weights = [self.affinity(user, v) / (slot + 1) ** _POSITION_BIAS for slot, v in enumerate(tiles)]
        slot = WeightedPicker(list(range(len(tiles))), weights).pick(rng)
        video = tiles[slot]
        position = (
            round(rng.uniform(0.1, 0.8) * video.duration_s, 1) if surface == "continue_watching" else 0.0
        )
        click = {
            **base,
            "event_type": "click",
            "video_id": video.video_id,
            "surface": surface,
            "button_id": TILE_BUTTON[surface],
            "playback_position_s": position,
        }
        if model_version is not None:
            click["rec_slot"] = slot
            click["model_version"] = model_version
        yield click
        return video, position

    def _watch(
        self, base: dict[str, Any], user: User, video: Video, position: float
    ) -> Iterator[dict[str, Any]]:
        rng = self._rng
        paused = False
        while True:
            if paused and rng.random() < 0.9:
                button = "play"
            else:
                button = self._phase_pickers[playback_phase(video, position)].pick(rng)
            yield {
                **base,
                "event_type": "click",
                "video_id": video.video_id,
                "surface": "player",
                "button_id": button,
                "playback_position_s": round(position, 1),
            }
            paused = button == "pause"
            conversion = self._conversion_after(user, button)
            if conversion is not None:
                yield self._conversion(base, video, conversion)
            if button == "next_episode":
                following = self._dims.next_episode(video)
                if following is None:
                    return
                video, position = following, 0.0
                continue
            if rng.random() < _ABANDON:
                return
            position = self._advance(video, position, button)
            if position >= WATCH_COMPLETE_SHARE * video.duration_s and button != "seek_back":
                yield self._conversion(base, video, "watch_complete")
                following = self._dims.next_episode(video)
                if following is None or rng.random() < 0.5:
                    return
                video, position = following, 0.0  # autoplay, no click

    def _advance(self, video: Video, position: float, button: str) -> float:
        rng = self._rng
        if button == "seek_forward":
            position += rng.uniform(10, 300)
        elif button == "seek_back":
            position -= rng.uniform(10, 120)
        elif button == "skip_intro":
            position = max(position, rng.uniform(60, INTRO_END_S))
        position += rng.expovariate(8.0 / video.duration_s)
        return min(max(position, 0.0), float(video.duration_s))

    def _conversion_after(self, user: User, button: str) -> str | None:
        draw = self._rng.random()
        if button == "add_to_list" and draw < 0.7:
            return "add_to_list_complete"
        if button == "ad_click" and draw < 0.2:
            return "purchase"
        if user.subscription_tier == "free" and draw > 0.99:
            return "subscribe"
        return None

    def _conversion(self, base: dict[str, Any], video: Video, kind: str) -> dict[str, Any]:
        return {
            **base,
            "event_type": "conversion",
            "video_id": video.video_id,
            "surface": "player",
            "conversion_type": kind,
        }
