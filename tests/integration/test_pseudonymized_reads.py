"""Pseudonymisation end to end: raw ids in, pseudonyms in Kafka and Redis, raw ids at the API again.

Events go through the real collector (with ``CLICKPULSE_PSEUDONYMIZE_KEY``) and the real consumer into a
private Redis prefix, so every key is the pseudonym; the API, given the same key, answers the profile,
the recommendations and the user's live channel by the raw id, and never shows the pseudonym.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from typer.testing import CliRunner

from clickpulse.cli import app
from clickpulse.settings import Settings, get_settings
from serving.app import create_app as create_api
from streaming.collector import create_app as create_collector
from streaming.consumer.live import UserClickPublisher
from streaming.keyspace import Keyspace
from streaming.pseudonymize import pseudonymize
from streaming.recommendations.store import RecsStore
from streaming.redis_conn import Family, RedisRouter
from tests.serving_support import ConsumerThread, Private, cleanup, private_settings, serving
from tests.support.ingest import make_event

KEY = "pseudonymisation-key-reads-0123456789"
ALICE = "alice@example.com"
BOB = "bob-42"
READ = {"key": "test-read-key"}


@pytest.fixture
def private(kafka_bootstrap: str, redis_url: str) -> Iterator[Private]:
    made = private_settings(kafka_bootstrap, redis_url, "pseudo-reads", CLICKPULSE_PSEUDONYMIZE_KEY=KEY)
    yield made
    cleanup(made)


def _user_messages(
    stream: httpx.Response,
    clicks: int,
    into: list[dict[str, Any]],
    lines: list[str],
    greeted: threading.Event,
) -> None:
    """Read the stream until ``clicks`` clicks arrived (one message per consumer batch); ``greeted`` is set
    at the hello, which the API sends once Redis confirmed the subscription."""
    for line in stream.iter_lines():
        if line.startswith("data: "):
            lines.append(line)
            into.append(orjson.loads(line[len("data: ") :]))
            greeted.set()
            if sum(len(m.get("clicks", [])) for m in into) >= clicks:
                return


def _erase(settings: Settings, tmp_path: Path, *args: str) -> str:
    env = {
        "REDIS_URL": settings.redis_url,
        "CLICKPULSE_REDIS_PREFIX": settings.redis_prefix,
        "CLICKPULSE_PSEUDONYMIZE_KEY": KEY,
        "CLICKPULSE_DUCKDB_PATH": str(tmp_path / "no-warehouse.duckdb"),
        "CLICKPULSE_LAKE_DIR": str(tmp_path / "lake"),
    }
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["erase-user", *args], env=env)
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    return result.output


def test_api_answers_raw_ids_from_pseudonymised_data(private: Private, tmp_path: Path) -> None:
    settings = private.settings
    alice, bob = pseudonymize(KEY, ALICE), pseudonymize(KEY, BOB)
    events = [
        make_event("impression", user_id=ALICE, video_id="v-1"),
        make_event("click", user_id=ALICE, video_id="v-1"),
        make_event("click", user_id=ALICE, video_id="v-2", button_id="like"),
        make_event("conversion", user_id=ALICE, video_id="v-2"),
        make_event("click", user_id=BOB, video_id="v-3"),
    ]
    mine = Counter(e["event_type"] for e in events if e["user_id"] == ALICE)
    ks = Keyspace.from_settings(settings)
    router = RedisRouter.from_settings(settings)
    publisher = UserClickPublisher(router.client(Family.LIVE), ks)
    consumer = ConsumerThread(settings, batch_size=100, user_click_hooks=[publisher])
    received: list[dict[str, Any]] = []
    greeted = threading.Event()
    raw_lines: list[str] = []
    try:
        with (
            serving(create_api(settings)) as api,
            serving(create_collector(settings)) as collector,
            httpx.Client(base_url=api.url, params=READ, timeout=20) as http,
            http.stream("GET", "/v1/live", params={**READ, "user_id": ALICE}) as stream,
        ):
            # The live channel by raw id: the hello, then the consumer's message about alice's clicks.
            listener = threading.Thread(
                target=_user_messages, args=(stream, mine["click"], received, raw_lines, greeted), daemon=True
            )
            listener.start()
            assert greeted.wait(10), "no hello on the live stream"
            answer = httpx.post(
                f"{collector.url}/v1/events",
                content=orjson.dumps(events),
                headers={"Authorization": "Bearer test-write-key"},
                timeout=20,
            )
            assert answer.json() == {"accepted": len(events), "rejected": []}
            consumer.start()
            consumer.wait_for(len(events), timeout_s=60)
            listener.join(20)
            assert received[0] == {"type": "hello", "user_id": ALICE}
            assert {m["type"] for m in received[1:]} == {"clicks"}
            assert {m["user_id"] for m in received} == {ALICE}
            got = sorted((c["video_id"], c["button_id"]) for m in received[1:] for c in m["clicks"])
            sent = [
                (e["video_id"], e["button_id"]) for e in events if e["user_id"] == ALICE and "button_id" in e
            ]
            assert got == sorted(sent)
            assert all(alice not in line for line in raw_lines)

            # Redis holds the pseudonyms only.
            profiles = router.client(Family.PROFILES)
            assert profiles.exists(ks.user_profile(alice)) and profiles.exists(ks.user_profile(bob))
            assert not profiles.exists(ks.user_profile(ALICE)) and not profiles.exists(ks.user_profile(BOB))

            profile = http.get(f"/v1/users/{ALICE}/profile")
            assert profile.status_code == 200, profile.text
            body = profile.json()
            assert body["user_id"] == ALICE and alice not in profile.text
            assert (body["impressions"], body["clicks"], body["conversions"]) == (
                mine["impression"],
                mine["click"],
                mine["conversion"],
            )
            assert set(body["recent_videos"]) == {"v-1", "v-2"}
            # A pseudonym is hashed like any id: it finds nothing, and the API is no raw -> pseudonym oracle.
            assert http.get(f"/v1/users/{alice}/profile").status_code == 404

            RecsStore(router.client(Family.RECS), ks, ttl_s=600).publish(
                "m1",
                [(alice, [("r-1", 0.9), ("v-1", 0.8), ("r-2", 0.7)]), (bob, [("r-9", 1.0)])],
                [],
                [("p-1", 1.0)],
            )
            recs = http.get(f"/v1/recommendations/{ALICE}", params={**READ, "k": 5})
            assert recs.status_code == 200, recs.text
            listed = recs.json()
            assert listed["user_id"] == ALICE and listed["model_version"] == "m1" and alice not in recs.text
            ids = [item["video_id"] for item in listed["items"]]
            assert ids[:2] == ["r-1", "r-2"] and "v-1" not in ids  # alice's list, watched videos removed
            assert "r-9" not in ids

            # erase-user with the raw id and --pseudonymize removes exactly what the API served for it.
            erased = _erase(settings, tmp_path, ALICE, "--pseudonymize")
            assert f"erasing the pseudonym {alice}" in erased and "redis: 0 keys" not in erased
            assert http.get(f"/v1/users/{ALICE}/profile").status_code == 404
            assert http.get(f"/v1/users/{BOB}/profile").status_code == 200
            # Without the flag a raw id finds nothing, and the command says why.
            again = _erase(settings, tmp_path, BOB)
            assert "redis: 0 keys removed" in again and "add --pseudonymize" in again
            assert http.get(f"/v1/users/{BOB}/profile").status_code == 200
    finally:
        consumer.stop()
        router.close()
