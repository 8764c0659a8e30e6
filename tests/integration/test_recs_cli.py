"""``clickpulse recs status | rollback | show`` against the real Redis, under a private prefix."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from typer.testing import CliRunner

from clickpulse.cli import app
from clickpulse.settings import get_settings
from streaming.keyspace import Keyspace
from streaming.recommendations.store import RecsStore
from streaming.redis_conn import connect
from tests.integration.recs_support import delete_prefix, synthetic


@pytest.fixture
def store(
    redis_url: str, unique_name: Callable[[str], str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[RecsStore]:
    prefix = unique_name("recs")
    monkeypatch.setenv("CLICKPULSE_REDIS_PREFIX", prefix)
    monkeypatch.setenv("REDIS_URL", redis_url)
    get_settings.cache_clear()
    client = connect(redis_url)
    yield RecsStore(client, Keyspace(prefix=prefix), ttl_s=600)
    delete_prefix(client, prefix)
    client.close()
    monkeypatch.undo()
    get_settings.cache_clear()


def publish(store: RecsStore, version: str) -> None:
    user_lists, similar, popular = synthetic(version, 20, 30, seed=3)
    store.publish(version, user_lists, similar, popular, meta={"ndcg_at_10": 0.25})


def test_rollback_cli(store: RecsStore) -> None:
    runner = CliRunner()
    nothing = runner.invoke(app, ["recs", "rollback"])
    assert nothing.exit_code == 1
    assert "nothing rolled back: no previous recommendations version" in nothing.output

    publish(store, "m-1")
    publish(store, "m-2")
    status = runner.invoke(app, ["recs", "status"])
    assert status.exit_code == 0, status.output
    assert "current:  m-2" in status.output and "previous: m-1" in status.output
    assert "ndcg@10=0.25" in status.output

    done = runner.invoke(app, ["recs", "rollback"])
    assert done.exit_code == 0, done.output
    assert "now serving m-1 (was m-2)" in done.output
    assert store.pointer().current == "m-1"

    again = runner.invoke(app, ["recs", "rollback"])
    assert again.exit_code == 1 and "current: m-1" in again.output

    shown = runner.invoke(app, ["recs", "show", "u00003", "--k", "3"])
    assert shown.exit_code == 0, shown.output
    assert "u00003 (model m-1):" in shown.output and "recommended for you" in shown.output
