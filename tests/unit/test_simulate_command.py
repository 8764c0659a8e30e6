"""The simulate / replay commands in file mode and through a stand-in SDK (no services needed)."""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from clickpulse.commands.simulate import app
from streaming.simulator import recount_truth

runner = CliRunner()
FILE_ARGS = [
    "--users",
    "80",
    "--videos",
    "30",
    "--events",
    "3000",
    "--start",
    "2024-05-01T00:00:00Z",
    "--hours",
    "4",
]


def run_simulate(tmp_path: Path, name: str, *extra: str) -> tuple[Path, Path]:
    out, truth = tmp_path / f"{name}.ndjson", tmp_path / f"{name}.truth.json"
    paths = ["--out", str(out), "--truth", str(truth), "--dimensions-dir", str(tmp_path / "dims")]
    shares = ["--malformed-share", "0.02", "--duplicate-share", "0.02"]
    result = runner.invoke(app, ["simulate", *FILE_ARGS, *paths, *shares, *extra])
    assert result.exit_code == 0, result.output
    assert "events sent:      3000" in result.output and "top videos by clicks: v" in result.output
    return out, truth


def test_file_mode_is_repeatable_and_matches_its_truth(tmp_path: Path) -> None:
    first_out, first_truth = run_simulate(tmp_path, "a")
    second_out, second_truth = run_simulate(tmp_path, "b")
    assert first_out.read_bytes() == second_out.read_bytes()
    assert first_truth.read_bytes() == second_truth.read_bytes()

    document = orjson.loads(first_truth.read_bytes())
    recounted = recount_truth(
        first_out, allowed_lateness_minutes=document["meta"]["allowed_lateness_minutes"]
    )
    assert {k: v for k, v in document.items() if k not in ("meta", "planted_clusters")} == recounted.to_dict()
    assert set(document["planted_clusters"]) == {"clusters", "users", "genres"}
    assert (tmp_path / "dims" / "video_catalog.csv").exists() and (
        tmp_path / "dims" / "user_profiles.csv"
    ).exists()


def test_backfill_to_the_collector_is_refused(tmp_path: Path) -> None:
    result = runner.invoke(app, ["simulate", "--backfill-hours", "2", "--to", "collector", "--events", "10"])
    assert result.exit_code != 0 and "straight to Kafka" in result.output


def test_collector_path_without_the_sdk_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out, _ = run_simulate(tmp_path, "c")
    monkeypatch.setitem(sys.modules, "streaming.sdk", None)
    result = runner.invoke(app, ["replay", str(out), "--to", "collector"])
    assert result.exit_code == 2
    assert "streaming/sdk.py" in result.output


class FakeClient:
    instances: list[FakeClient] = []

    def __init__(self, endpoint: str, write_key: str, batch_size: int, flush_interval_s: float) -> None:
        self.endpoint, self.write_key = endpoint, write_key
        self.tracked: list[dict[str, Any]] = []
        self.raw: list[bytes] = []
        self.closed = False
        FakeClient.instances.append(self)

    def track(self, event: dict[str, Any]) -> None:
        self.tracked.append(event)

    def send_raw(self, payload: bytes) -> None:
        self.raw.append(payload)

    def close(self) -> None:
        self.closed = True


def test_replay_through_the_sdk_tracks_events_and_sends_bad_lines_raw(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out, truth_path = run_simulate(tmp_path, "d")
    fake = types.ModuleType("streaming.sdk")
    fake.ClickPulseClient = FakeClient  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "streaming.sdk", fake)
    FakeClient.instances.clear()

    result = runner.invoke(app, ["replay", str(out), "--to", "collector"])
    assert result.exit_code == 0, result.output
    (client,) = FakeClient.instances
    lines = out.read_bytes().splitlines()
    totals = orjson.loads(truth_path.read_bytes())["totals"]
    assert client.closed and client.endpoint.startswith("http://")
    assert len(client.tracked) == totals["valid"] + totals["duplicates"]
    assert len(client.raw) == totals["malformed"] and len(lines) == 3000
    assert f"events sent:      {totals['sent']}" in result.output
