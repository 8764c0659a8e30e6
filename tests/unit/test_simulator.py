"""Simulator: repeatable bytes, honest ground truth, configured mix of bad traffic, planted structure."""

from __future__ import annotations

import csv
import itertools
import random
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from streaming.contract import decode_and_validate
from streaming.simulation.behaviour import CREDITS_SHARE, INTRO_END_S
from streaming.simulation.malformed import MALFORMED_KINDS, malformed_payload
from streaming.simulation.truth import LATE_THRESHOLD_MS, epoch_ms
from streaming.simulator import (
    SimulatedRecord,
    SimulationConfig,
    Simulator,
    backfill_window,
    recount_truth,
)

START = datetime(2024, 5, 1, tzinfo=UTC)


def config(**overrides: object) -> SimulationConfig:
    base: dict[str, object] = {
        "users": 300,
        "videos": 80,
        "events": 8000,
        "seed": 11,
        "start": START,
        "end": START + timedelta(hours=6),
    }
    base.update(overrides)
    return SimulationConfig(**base)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def mixed() -> tuple[Simulator, list[SimulatedRecord]]:
    simulator = Simulator(
        config(events=20_000, late_share=0.05, duplicate_share=0.03, malformed_share=0.02, seed=5)
    )
    return simulator, list(simulator)


def test_same_seed_gives_identical_bytes_and_truth() -> None:
    first, second = Simulator(config()), Simulator(config())
    assert [r.payload for r in first] == [r.payload for r in second]
    assert first.truth_document() == second.truth_document()
    assert first.dimensions == second.dimensions


def test_different_seed_differs() -> None:
    first, second = Simulator(config(seed=1)), Simulator(config(seed=2))
    assert [r.payload for r in first] != [r.payload for r in second]
    assert first.dimensions.users != second.dimensions.users


def test_dimensions_do_not_depend_on_event_count() -> None:
    assert Simulator(config(events=10)).dimensions == Simulator(config(events=5000)).dimensions


def test_truth_equals_a_recount_of_the_emitted_ndjson(tmp_path: Path) -> None:
    simulator = Simulator(config(late_share=0.05, duplicate_share=0.03, malformed_share=0.02))
    path = tmp_path / "events.ndjson"
    with path.open("wb") as handle:
        for record in simulator:
            handle.write(record.payload + b"\n")
    assert recount_truth(path).to_dict() == simulator.truth.to_dict()

    # and a few numbers counted here by hand, without the Truth class
    seen: set[str] = set()
    clicks: Counter[str] = Counter()
    buttons: Counter[str] = Counter()
    for line in path.read_bytes().splitlines():
        try:
            event = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if not decode_and_validate(line).ok or event["event_id"] in seen:
            continue
        seen.add(event["event_id"])
        if event["event_type"] == "click":
            clicks[event["video_id"]] += 1
            buttons[event["button_id"]] += 1
    truth = simulator.truth.to_dict()
    assert {
        video: counts["clicks"] for video, counts in truth["videos"].items() if counts["clicks"]
    } == clicks
    assert truth["buttons"] == buttons
    assert truth["totals"]["valid"] == len(seen)


def test_hourly_truth_adds_up_to_the_all_time_truth(mixed: tuple[Simulator, list[SimulatedRecord]]) -> None:
    truth = mixed[0].truth.to_dict()
    for video_id, hours in truth["video_hours"].items():
        for measure in ("clicks", "impressions", "conversions"):
            assert sum(h[measure] for h in hours.values()) == truth["videos"][video_id][measure]
        assert all(key.endswith(":00:00Z") for key in hours)
        assert max(h["unique_users"] for h in hours.values()) <= truth["videos"][video_id]["unique_users"]
    totals = truth["totals"]
    assert totals["sent"] == totals["valid"] + totals["duplicates"] + totals["malformed"] == 20_000
    assert totals["clicks"] + totals["impressions"] + totals["conversions"] == totals["valid"]
    assert sum(truth["users"].values()) == totals["valid"]


def test_truth_user_sets_are_the_users_behind_the_unique_counts(
    mixed: tuple[Simulator, list[SimulatedRecord]],
) -> None:
    simulator, records = mixed
    counted = [r.event for r in records if r.valid and not r.is_duplicate and r.event is not None]
    truth = simulator.truth.to_dict()
    for video_id, hours in truth["video_hours"].items():
        mine = [e for e in counted if e["video_id"] == video_id]
        assert simulator.truth.video_users(video_id) == {e["user_id"] for e in mine}
        assert len(simulator.truth.video_users(video_id)) == truth["videos"][video_id]["unique_users"]
        for iso_hour, row in hours.items():
            users = simulator.truth.video_hour_users(video_id, iso_hour)
            assert users == {e["user_id"] for e in mine if e["event_time"][:13] == iso_hour[:13]}
            assert len(users) == row["unique_users"]
    assert simulator.truth.video_users("no-such-video") == frozenset()


def test_valid_records_pass_the_contract_and_malformed_ones_fail(
    mixed: tuple[Simulator, list[SimulatedRecord]],
) -> None:
    for record in mixed[1]:
        outcome = decode_and_validate(record.payload)
        assert outcome.ok == record.valid, (record.payload[:200], outcome.errors)
        assert b"\n" not in record.payload
        assert (record.event is None) == (not record.valid)
        assert (record.key is None) == (not record.valid)


@pytest.mark.parametrize("kind", sorted(MALFORMED_KINDS))
def test_every_malformed_kind_is_rejected(kind: str) -> None:
    rng = random.Random(kind)
    template = next(
        r.event for r in Simulator(config(events=50)) if r.event and r.event["event_type"] == "click"
    )
    for _ in range(30):
        _, payload = malformed_payload(rng, dict(template), kind)
        assert not decode_and_validate(payload).ok, payload[:200]


def test_shares_of_late_duplicate_and_malformed_roughly_as_configured(
    mixed: tuple[Simulator, list[SimulatedRecord]],
) -> None:
    records = mixed[1]
    sent = len(records)
    duplicates = sum(r.is_duplicate for r in records)
    malformed = sum(not r.valid for r in records)
    fresh = [r for r in records if r.valid and not r.is_duplicate]
    late = sum(r.is_late for r in fresh)
    assert duplicates / sent == pytest.approx(0.03, rel=0.2)
    assert malformed / sent == pytest.approx(0.02, rel=0.2)
    assert late / len(fresh) == pytest.approx(0.05, rel=0.25)
    totals = mixed[0].truth.to_dict()["totals"]
    assert (totals["duplicates"], totals["malformed"], totals["late"]) == (duplicates, malformed, late)


def test_duplicates_resend_identical_bytes_of_an_earlier_event(
    mixed: tuple[Simulator, list[SimulatedRecord]],
) -> None:
    earlier: set[bytes] = set()
    for record in mixed[1]:
        if record.is_duplicate:
            assert record.payload in earlier
        elif record.valid:
            assert record.payload not in earlier
            earlier.add(record.payload)


def test_event_times_stay_in_range_and_late_ones_lag_their_send_time(
    mixed: tuple[Simulator, list[SimulatedRecord]],
) -> None:
    simulator, records = mixed
    start_ms, end_ms = epoch_ms(simulator.config.start), epoch_ms(simulator.config.end)
    lateness_ms = simulator.config.allowed_lateness_minutes * 60_000
    send_step = (end_ms - start_ms) / len(records)
    beyond = 0
    for index, record in enumerate(records):
        if record.event is None or record.is_duplicate:
            continue
        assert record.kafka_timestamp_ms is not None
        event_ms = epoch_ms(datetime.fromisoformat(record.event["event_time"]))
        assert event_ms == record.kafka_timestamp_ms
        assert start_ms <= event_ms < end_ms
        lag = start_ms + index * send_step - event_ms
        if record.is_late:
            assert lag > 2 * LATE_THRESHOLD_MS - send_step
            beyond += lag > lateness_ms
        else:
            assert lag < 1000 + send_step
    late = simulator.truth.to_dict()["totals"]
    assert beyond == late["late_beyond_lateness"] > 0
    assert 0 < late["late_beyond_lateness"] < late["late"]


def test_planted_clusters_are_visible_in_clicks(mixed: tuple[Simulator, list[SimulatedRecord]]) -> None:
    simulator, records = mixed
    planted = simulator.planted_clusters()
    genre_of = planted["genres"]
    in_cluster: dict[str, list[bool]] = defaultdict(list)
    for record in records:
        event = record.event
        if event is None or record.is_duplicate or event["event_type"] != "click":
            continue
        cluster_genres = planted["clusters"][planted["users"][event["user_id"]]]
        in_cluster[event["user_id"]].append(genre_of[event["video_id"]] in cluster_genres)
    shares = [sum(hits) / len(hits) for hits in in_cluster.values() if len(hits) >= 10]
    assert len(shares) > 50
    assert sum(shares) / len(shares) > 0.7  # two genres out of ten: about 0.2 if clicks ignored taste
    assert sorted(shares)[len(shares) // 10] > 0.4


def test_button_mix_depends_on_surface_and_position(mixed: tuple[Simulator, list[SimulatedRecord]]) -> None:
    simulator, records = mixed
    by_surface: dict[str, Counter[str]] = defaultdict(Counter)
    for record in records:
        event = record.event
        if event is None or event["event_type"] != "click":
            continue
        by_surface[event["surface"]][event["button_id"]] += 1
        video = simulator.dimensions.video(event["video_id"])
        position = event["playback_position_s"]
        if event["button_id"] == "skip_intro":
            assert video.is_episode and position < min(INTRO_END_S, 0.1 * video.duration_s)
        if event["button_id"] == "next_episode":
            assert video.is_episode and position >= CREDITS_SHARE * video.duration_s
    assert set(by_surface["rec_row"]) == {"rec_tile"}
    assert "rec_tile" not in by_surface["player"] and "rec_tile" not in by_surface["home"]
    assert by_surface["player"]["skip_intro"] > 0 and by_surface["player"]["seek_forward"] > 0
    assert by_surface["player"]["next_episode"] > 0


def test_rec_row_events_carry_slot_and_model_and_ctr_falls_with_slot(
    mixed: tuple[Simulator, list[SimulatedRecord]],
) -> None:
    simulator, records = mixed
    for record in records:
        event = record.event
        if event is not None and event["surface"] == "rec_row":
            assert event["rec_slot"] >= 0 and event["model_version"] in simulator.config.model_versions
    rows = simulator.truth.to_dict()["rec_slots"]
    slot_ctr: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for row in rows:
        slot_ctr[row["rec_slot"]][0] += row["clicks"]
        slot_ctr[row["rec_slot"]][1] += row["impressions"]
    assert slot_ctr[0][0] / slot_ctr[0][1] > slot_ctr[9][0] / slot_ctr[9][1]


def test_conversions_follow_clicks(mixed: tuple[Simulator, list[SimulatedRecord]]) -> None:
    conversions = Counter(
        r.event["conversion_type"] for r in mixed[1] if r.event and r.event["event_type"] == "conversion"
    )
    assert {"watch_complete", "add_to_list_complete"} <= set(conversions)


def test_generation_is_lazy() -> None:
    simulator = Simulator(config(events=5_000_000))
    first = list(itertools.islice(simulator, 100))
    assert len(first) == 100 and simulator.truth.sent == 100


def test_a_simulator_runs_once() -> None:
    simulator = Simulator(config(events=5))
    list(simulator)
    with pytest.raises(RuntimeError):
        list(simulator)


def test_wall_clock_mode_stamps_send_time() -> None:
    now = [1_714_560_000.0]

    def clock() -> float:
        now[0] += 0.01
        return now[0]

    records = list(Simulator(config(events=300, late_share=0.0), wall_clock=clock))
    times = [epoch_ms(datetime.fromisoformat(r.event["event_time"])) for r in records if r.event]
    assert all(1_714_560_000_000 - 1000 <= t <= int(now[0] * 1000) for t in times)


def test_backfill_window_covers_closed_hours() -> None:
    start, end = backfill_window(3, now=datetime(2024, 5, 1, 10, 42, 7, tzinfo=UTC))
    assert (start, end) == (datetime(2024, 5, 1, 7, tzinfo=UTC), datetime(2024, 5, 1, 10, tzinfo=UTC))


@pytest.mark.parametrize(
    "overrides",
    [
        {"late_share": 1.5},
        {"duplicate_share": 0.6, "malformed_share": 0.5},
        {"end": START},
        {"start": datetime(2024, 5, 1)},
        {"users": 0},
        {"allowed_lateness_minutes": 5},
    ],
)
def test_bad_configs_are_rejected(overrides: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        config(**overrides)


def test_dimension_files_hold_catalog_and_profiles_but_not_clusters(tmp_path: Path) -> None:
    simulator = Simulator(config())
    catalog_path, users_path = simulator.write_dimensions(tmp_path)
    with catalog_path.open() as handle:
        catalog = list(csv.DictReader(handle))
    with users_path.open() as handle:
        users = list(csv.DictReader(handle))
    assert len(catalog) == 80 and len(users) == 300
    assert catalog[0]["video_id"] == "v0001" and users[0]["user_id"] == "u00001"
    assert set(users[0]) == {"user_id", "country", "subscription_tier", "signup_date", "language"}
    assert {"title", "series", "genre", "duration_s", "release_date"} <= set(catalog[0])
    assert len({row["genre"] for row in catalog}) == 10
    planted = simulator.truth_document()["planted_clusters"]
    assert set(planted["users"]) == {row["user_id"] for row in users}
