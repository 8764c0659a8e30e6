"""The request-time blend: every rule pinned on hand-made inputs."""

from __future__ import annotations

from streaming.recommendations.blend import REASON_PERSONAL, REASON_POPULAR, BlendWeights, because, blend
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
