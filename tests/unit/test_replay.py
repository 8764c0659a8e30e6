"""Replay helpers: NDJSON records keep payloads, keys and backfill timestamps; pacing; producer settings."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from streaming.replay import PRODUCER_DEFAULTS, producer_settings, read_ndjson, throttle
from streaming.simulation.truth import epoch_ms
from streaming.simulator import SimulationConfig, Simulator


def test_read_ndjson_keeps_bytes_keys_and_event_times(tmp_path: Path) -> None:
    start = datetime(2024, 5, 1, tzinfo=UTC)
    end = start + timedelta(hours=2)
    config = SimulationConfig(users=50, videos=20, events=2000, malformed_share=0.05, start=start, end=end)
    simulated = list(Simulator(config))
    path = tmp_path / "events.ndjson"
    path.write_bytes(
        b"".join(r.payload + b"\n" for r in simulated) + b"\n"
    )  # a trailing blank line is skipped

    replayed = list(read_ndjson(path))
    assert [r.payload for r in replayed] == [r.payload for r in simulated]
    previous = None
    for sim, rec in zip(simulated, replayed, strict=True):
        assert rec.valid == sim.valid and rec.key == sim.key
        if sim.valid:
            assert rec.event_time is not None and epoch_ms(rec.event_time) == sim.kafka_timestamp_ms
            assert rec.timestamp_ms == sim.kafka_timestamp_ms
            previous = rec.timestamp_ms
        else:
            assert rec.event_time is None and rec.timestamp_ms == previous


def test_throttle_paces_records_before_pulling_them() -> None:
    now = [0.0]
    pulled_at: list[float] = []

    def sleep(seconds: float) -> None:
        now[0] += seconds

    def lazily() -> Iterator[int]:
        for item in range(5):
            pulled_at.append(now[0])
            yield item

    released = list(throttle(lazily(), 10.0, clock=lambda: now[0], sleep=sleep))
    assert released == [0, 1, 2, 3, 4]
    assert pulled_at == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4])
    assert list(throttle(range(3), 0)) == [0, 1, 2]


def test_producer_is_always_idempotent() -> None:
    settings = producer_settings({"bootstrap.servers": "x:9092", "acks": 1, "linger.ms": 5})
    assert settings["enable.idempotence"] is True and settings["acks"] == "all"
    assert (
        settings["linger.ms"] == 5 and settings["compression.type"] == PRODUCER_DEFAULTS["compression.type"]
    )
