"""Keyspace names, hash tags, TTL rules and script rendering, without a Redis."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from redis.crc import key_slot
from typer.testing import CliRunner

from clickpulse.cli import app
from clickpulse.settings import Settings
from streaming.keyspace import (
    Keyspace,
    Retention,
    _parse_ctr,
    bucket_names,
    key_families,
    lua_source,
    slot_tag,
    slot_value,
    summarise_counters,
    window_buckets,
)
from streaming.redis_conn import Family, _redact

KEYSPACE_DOC = Path(__file__).resolve().parents[2] / "README.md"


def _slot(key: str) -> int:
    return int(key_slot(key.encode()))


@pytest.mark.parametrize("video_id", ["v1", "video:with:colons", "ünï", "a}b", "{x}"])
def test_every_key_of_a_video_shares_one_cluster_slot(video_id: str) -> None:
    ks = Keyspace(prefix="cp")
    keys = [
        ks.video(video_id),
        ks.video_totals(video_id),
        ks.video_uniques(video_id),
        ks.video_seen(video_id, 490_000),
        ks.video_minute(video_id, "202501011230"),
        ks.video_hour(video_id, "2025010112"),
        ks.video_uniques_hour(video_id, "2025010112"),
        ks.video_uniques_day(video_id, "20250101"),
        ks.video_metadata(video_id),
    ]
    assert len({_slot(k) for k in keys}) == 1


def test_user_and_global_keys_share_their_slots() -> None:
    ks = Keyspace(prefix="t.abc")
    user = [
        ks.user("u1"),
        ks.user_profile("u1"),
        ks.user_recent("u1"),
        ks.user_attributes("u1"),
    ]
    assert len({_slot(k) for k in user}) == 1
    glob = [
        ks.global_(),
        ks.global_totals(),
        ks.global_hour("2025010112"),
        ks.ctr("button"),
        ks.ctr_hour("surface", "2025010112"),
        ks.trending(),
        ks.trending_meta(),
        ks.events_per_second(1),
        ks.consumer_lag(),
        ks.live_lock(),
    ]
    assert len({_slot(k) for k in glob}) == 1
    assert {_slot(ks.recs_current()), _slot(ks.recs_versions()), _slot(ks.recs_popular("v1"))} == {
        _slot("{recs}")
    }


def test_prefix_and_channels() -> None:
    assert Keyspace().video_totals("v9") == "cp:{video:v9}:totals"
    assert Keyspace().channel_global() == "live:global"
    assert Keyspace().channel_user("u1") == "live:user:u1"
    assert Keyspace(prefix="x", channel_prefix="x").channel_events("click") == "x:live:events:click"


def test_families_are_unique_and_documented() -> None:
    families = key_families(Retention.from_settings(Settings()))
    patterns = [f.pattern for f in families]
    assert len(patterns) == len(set(patterns))
    assert {f.group for f in families} == set(Family)
    doc = KEYSPACE_DOC.read_text()
    missing = [p for p in patterns if f"`{p}`" not in doc]
    assert missing == [], f"the README does not document {missing}"


def test_retention_follows_the_lateness_allowance() -> None:
    r = Retention.from_settings(
        Settings(CLICKPULSE_ALLOWED_LATENESS_MINUTES=60, CLICKPULSE_DEDUPE_MARGIN_MINUTES=30)
    )
    assert r.minute_s == 3 * 3600 and r.hour_s == 49 * 3600
    assert r.seen_s == 3600 + 90 * 60
    assert r.profile_s == 30 * 86400


@pytest.mark.parametrize("name", ["live", "windows", "profile"])
def test_lua_scripts_render_every_suffix(name: str) -> None:
    source = lua_source(name)
    assert "${" not in source
    assert "cmsgpack.unpack(ARGV[1])" in source


def test_bucket_names_and_windows() -> None:
    moment = datetime(2025, 3, 9, 23, 59, 30, tzinfo=UTC)
    assert bucket_names(moment.timestamp()) == ("202503092359", "2025030923", "20250309")
    windows = window_buckets(moment)
    assert windows["last_hour"][0] == "202503092359" and windows["last_hour"][-1] == "202503092300"
    assert len(windows["last_hour"]) == 60 and len(windows["last_24h"]) == 24
    assert windows["last_24h"][-1] == "2025030900"
    assert windows["last_hour_uniques"] == ["2025030923", "2025030922"]


def test_slot_values_and_ratios() -> None:
    assert slot_value(None, None) == ""
    assert slot_value("als-v1", 3) == "als-v1|3"
    assert slot_value(None, 0) == "-|0"
    assert slot_value("m", None) == "m|-"
    summary = summarise_counters({"clicks": "0", "impressions": "0", "clicks:play": "0"})
    assert summary["ctr"] is None and summary["conversion_rate"] is None
    summary = summarise_counters({"clicks": "4", "impressions": "10", "conversions": "1", "clicks:play": "4"})
    assert (
        summary["ctr"] == 0.4
        and summary["conversion_rate"] == 0.25
        and summary["clicks_by_button"] == {"play": 4}
    )
    ctr = _parse_ctr({"als-v1|3|clicks": "2", "als-v1|3|impressions": "8"})
    assert ctr == {
        "als-v1|3": {"clicks": 2, "impressions": 8, "conversions": 0, "ctr": 0.25, "conversion_rate": 0.0}
    }


def test_password_is_redacted() -> None:
    assert _redact("redis://:s3cret@host:6379/0") == "redis://***@host:6379/0"
    assert _redact("redis://user:s3cret@host:6379/0") == "redis://user:***@host:6379/0"
    assert _redact("redis://host:6379/0") == "redis://host:6379/0"


def test_consumer_command_is_registered() -> None:
    result = CliRunner().invoke(app, ["consumer", "--help"])
    assert result.exit_code == 0
    for option in ("--group", "--batch-size", "--metrics-port", "--from-beginning"):
        assert option in result.output


@pytest.mark.parametrize("slot", [0, 1, 5000, 16383])
def test_watermark_key_lands_in_the_slot_it_guards(slot: int) -> None:
    assert _slot(Keyspace(prefix="t.x").watermarks(slot_tag(slot))) == slot
