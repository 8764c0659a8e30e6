"""The request-time blend: every rule pinned on hand-made inputs."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from streaming.recommendations.blend import (
    REASON_PERSONAL,
    REASON_POPULAR,
    BlendWeights,
    because,
    blend,
    relative,
)
from streaming.recommendations.reader import ARM_CURRENT, ARM_PREVIOUS, ab_bucket, serve_version
from streaming.recommendations.store import Pointer, decode_list, encode_list


def test_cold_start_is_the_popular_list_in_order() -> None:
    popular = [("v1", 900.0), ("v2", 500.0), ("v3", 10.0)]
    items = blend(k=2, popular=popular)
    assert [(i.video_id, i.reason) for i in items] == [("v1", REASON_POPULAR), ("v2", REASON_POPULAR)]
    assert items[0].score > items[1].score > 0


def test_precomputed_ranks_first_and_popular_only_fills() -> None:
    items = blend(k=4, precomputed=[("a", 7.0), ("b", 3.0)], popular=[("p", 1.0), ("a", 0.5)])
    assert [i.video_id for i in items] == ["a", "b", "p"]
    assert items[0].reason == REASON_PERSONAL and items[2].reason == REASON_POPULAR
    # "a" is in both sources: its score is the sum of both contributions
    assert items[0].score == round(1.0 + 0.1 * 0.5, 4)


def test_neighbours_of_the_latest_click_lead_and_name_their_anchor() -> None:
    similar = {"w1": [("n1", 0.5), ("n2", 0.25)], "w2": [("n3", 0.9)]}
    items = blend(
        k=5, precomputed=[("a", 2.0), ("b", 1.0)], recent=["w1", "w2"], similar=similar, popular=[("p", 1.0)]
    )
    by_id = {i.video_id: i for i in items}
    assert by_id["n1"].reason == because("w1")
    assert by_id["n3"].reason == because("w2")
    # the newest click's best neighbour (1.0) outranks the older click's best neighbour (0.6)
    assert by_id["n1"].score == 1.0 and by_id["n3"].score == 0.6
    # "a" (first of the precomputed list) and "n1" tie at 1.0: the video id breaks the tie
    assert [i.video_id for i in items][:2] == ["a", "n1"]


def test_watched_and_recent_videos_are_never_returned() -> None:
    items = blend(
        k=10,
        precomputed=[("seen", 5.0), ("a", 4.0)],
        recent=["clicked"],
        similar={"clicked": [("seen", 0.9), ("clicked", 0.8), ("b", 0.5)]},
        popular=[("clicked", 9.0), ("c", 1.0)],
        watched={"seen"},
    )
    ids = [i.video_id for i in items]
    assert "seen" not in ids and "clicked" not in ids
    assert set(ids) == {"a", "b", "c"}


def test_k_limits_and_ties_break_by_video_id() -> None:
    items = blend(k=2, similar={"x": [("b", 0.5), ("a", 0.5)]}, recent=["x"])
    assert [i.video_id for i in items] == ["a", "b"]


def test_weights_change_the_mix() -> None:
    only_personal = BlendWeights(realtime=0.0, popular=0.0)
    items = blend(
        k=5,
        precomputed=[("a", 1.0)],
        recent=["x"],
        similar={"x": [("n", 1.0)]},
        popular=[("p", 1.0)],
        weights=only_personal,
    )
    assert [i.video_id for i in items] == ["a"]


def test_stored_lists_carry_their_version() -> None:
    raw = encode_list("als-1", [("v1", 0.5), ("v2", 0.25)])
    assert decode_list(raw) == ("als-1", [("v1", 0.5), ("v2", 0.25)])
    assert decode_list(None) is None


def test_ab_split_is_stable_and_close_to_the_share() -> None:
    users = [f"u{i:05d}" for i in range(4000)]
    assert [ab_bucket(u) for u in users[:50]] == [ab_bucket(u) for u in users[:50]]
    pointer = Pointer("new", "old")
    arms = [serve_version(u, pointer, 0.25) for u in users]
    share = sum(1 for version, arm in arms if arm == ARM_PREVIOUS and version == "old") / len(users)
    assert 0.22 < share < 0.28
    assert all(serve_version(u, pointer, 0.0) == ("new", ARM_CURRENT) for u in users[:100])
    assert serve_version("u1", Pointer("new", None), 1.0) == ("new", ARM_CURRENT)


_VIDEOS = st.sampled_from([f"v{i}" for i in range(25)])
_LIST = st.lists(st.tuples(_VIDEOS, st.floats(0.01, 10.0)), max_size=15)  # repeats allowed


def _by_the_rules(
    k: int,
    precomputed: list[tuple[str, float]],
    recent: list[str],
    similar: dict[str, list[tuple[str, float]]],
    popular: list[tuple[str, float]],
    w: BlendWeights,
) -> list[tuple[str, float, str]]:
    """The module docstring's rules, one contribution at a time (the ground truth)."""
    contributions: dict[str, dict[str, float]] = {}

    def give(video: str, source: str, value: float) -> None:
        if value > 0 and video not in recent:
            per_source = contributions.setdefault(video, {})
            per_source[source] = per_source.get(source, 0.0) + value

    for rank, (video, _score) in enumerate(precomputed):
        give(video, "personal", w.precomputed * (1.0 - rank / len(precomputed)))
    for position, anchor in enumerate(list(dict.fromkeys(recent))[: w.anchors]):
        best = max((s for _, s in similar.get(anchor, [])), default=0.0)
        for video, sim in similar.get(anchor, []) if best > 0 else []:
            give(video, anchor, w.realtime * w.recency_decay**position * (sim / best))
    for rank, (video, _score) in enumerate(popular):
        give(video, "popular", w.popular * (1.0 - rank / len(popular)))
    totals = sorted((-sum(c.values()), video) for video, c in contributions.items())[:k]
    out = []
    for negative, video in totals:
        source = max((value, source) for source, value in contributions[video].items())[1]
        reason = {"personal": REASON_PERSONAL, "popular": REASON_POPULAR}.get(source) or because(source)
        out.append((video, round(-negative, 4), reason))
    return out


@settings(max_examples=300, deadline=None)
@given(
    k=st.integers(1, 12),
    precomputed=_LIST,
    recent=st.lists(_VIDEOS, max_size=7),
    similar=st.dictionaries(_VIDEOS, _LIST, max_size=8),
    popular=_LIST,
    anchors=st.integers(1, 6),
)
def test_the_blend_follows_its_rules_on_any_input(
    k: int,
    precomputed: list[tuple[str, float]],
    recent: list[str],
    similar: dict[str, list[tuple[str, float]]],
    popular: list[tuple[str, float]],
    anchors: int,
) -> None:
    """Random lists, repeated videos included: the blend equals the rules applied one contribution at a
    time (sum per video, reason = largest source, recent clicks excluded, top k by total then id)."""
    w = BlendWeights(anchors=anchors)
    items = blend(k=k, precomputed=precomputed, recent=recent, similar=similar, popular=popular, weights=w)
    expected = _by_the_rules(k, precomputed, recent, similar, popular, w)
    assert [(i.video_id, i.score, i.reason) for i in items] == expected
    # The reader passes neighbour lists already scaled (``relative``, kept per list): the same answer.
    scaled = {anchor: relative(neighbours) for anchor, neighbours in similar.items()}
    again = blend(k=k, precomputed=precomputed, recent=recent, similar=scaled, popular=popular, weights=w)
    assert again == items
