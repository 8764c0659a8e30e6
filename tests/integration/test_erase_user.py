"""`clickpulse erase-user` against the real consumer's Redis state, a DuckDB warehouse and a Parquet lake.

A few users' events go through the real consumer into a private key prefix; recommendations of two
versions and user attributes are published the way Dagster does; a temporary DuckDB holds the raw tables
and a mart keyed by user, a temporary lake holds Parquet files. Erasing one user removes exactly their
keys, rows and lake rows; everything else stays byte for byte, and a second run changes nothing.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
from typer.testing import CliRunner

from clickpulse.cli import app
from clickpulse.commands.erase import erase_everywhere
from clickpulse.settings import Settings, get_settings
from orchestration.warehouse import DuckDBWarehouse
from streaming.consumer import RealtimeConsumer
from streaming.keyspace import Keyspace, read_user_profile, write_user_attributes
from streaming.recommendations.store import RecsStore
from streaming.redis_conn import RedisRouter
from tests.integration.consumer_support import handmade, now_ms, produce

LATE = '["expect_column_values_to_be_between(event_time)"]'
BAD = '["expect_column_values_to_not_be_null(event_id)"]'


def redis_snapshot(router: RedisRouter, prefix: str) -> dict[str, Any]:
    """Every key of the prefix with its value (DUMP), TTL aside."""
    client = router.clients()[0]
    keys = sorted(client.scan_iter(match=f"{prefix}:*", count=1000))
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.dump(key)
    return dict(zip(keys, pipe.execute(), strict=True))


def warehouse_rows(path: Path) -> dict[str, list[dict[str, Any]]]:
    with duckdb.connect(str(path), read_only=True) as con:
        tables = con.execute(
            "select table_schema, table_name from information_schema.tables order by 1, 2"
        ).fetchall()
        out = {}
        for schema, table in tables:
            relation = con.sql(f'select * from "{schema}"."{table}"')
            rows = [dict(zip(relation.columns, row, strict=True)) for row in relation.fetchall()]
            out[f"{schema}.{table}"] = sorted(rows, key=repr)
        return out


def lake_rows(root: Path) -> dict[str, list[dict[str, Any]]]:
    return {
        str(p.relative_to(root)): sorted(pq.ParquetFile(p).read().to_pylist(), key=repr)
        for p in sorted(root.rglob("*.parquet"))
    }


def mentions(row: dict[str, Any], user: str, event_ids: set[str]) -> bool:
    """Whether a row belongs to ``user``: its user_id, or a rejected record of theirs."""
    if row.get("user_id") == user:
        return True
    raw = row.get("raw_json")
    if raw is None:
        return False
    if row.get("event_id") in event_ids:
        return True
    try:
        return bool(orjson.loads(raw).get("user_id") == user)
    except orjson.JSONDecodeError:
        return False


def build_warehouse(path: Path, events: list[dict[str, Any]], victim: str) -> None:
    """Raw tables as the export writes them, a mart keyed by user, a view, and a rejected row."""
    with DuckDBWarehouse(path=str(path)).connect() as con:
        con.executemany(
            "insert into raw.click_events (event_id, event_type, user_id, video_id) values (?, ?, ?, ?)",
            [[e["event_id"], e["event_type"], e["user_id"], e["video_id"]] for e in events],
        )
        users = sorted({e["user_id"] for e in events})
        con.executemany(
            "insert into raw.user_profiles (user_id, country) values (?, ?)", [[u, "DE"] for u in users]
        )
        con.execute(
            "create table main.fct_user_engagement_daily as select user_id, count(*) as events "
            "from raw.click_events group by user_id"
        )
        con.execute("create view main.stg_events as select * from raw.click_events")
        first = next(e for e in events if e["user_id"] == victim)
        con.executemany(
            "insert into raw.rejected_rows (event_id, failed_expectations, raw_json) values (?, ?, ?)",
            [
                [first["event_id"], LATE, orjson.dumps(first).decode()],
                ["orphan", BAD, orjson.dumps({"user_id": first["user_id"]}).decode()],
                ["broken", BAD, "{not json"],
            ],
        )


def build_lake(root: Path, events: list[dict[str, Any]]) -> None:
    for hour in ("2026-01-01T10", "2026-01-01T11"):
        folder = root / "click_events" / f"partition_hour={hour}"
        folder.mkdir(parents=True)
        rows = [{"event_id": e["event_id"], "user_id": e["user_id"], "hour": hour} for e in events]
        pq.write_table(pa.Table.from_pylist(rows), folder / "part-0.parquet")
    (root / "video_catalog").mkdir()
    pq.write_table(pa.table({"video_id": ["v1"]}), root / "video_catalog" / "part-0.parquet")


def test_erase_user_everywhere_and_again(private: Settings, tmp_path: Path, unique_name: Any) -> None:
    settings = private.model_copy(
        update={"duckdb_path": tmp_path / "warehouse.duckdb", "lake_dir": tmp_path / "lake"}
    )
    ks = Keyspace.from_settings(settings)
    router = RedisRouter.from_settings(settings)
    records = handmade(300, 5, now_ms(), settings.allowed_lateness_minutes * 60, late_share=0.0)
    events = [orjson.loads(r.value or b"") for r in records]
    users = Counter(e["user_id"] for e in events)
    victim = users.most_common(1)[0][0]
    produce(settings.kafka_bootstrap_servers, settings.topic_raw, records)
    consumer = RealtimeConsumer(settings, group=unique_name("erase"), router=router, keyspace=ks)
    deadline = time.monotonic() + 60
    try:
        consumer.run(stop_when=lambda s: s.records >= len(records) or time.monotonic() > deadline)
    finally:
        consumer.close()
    write_user_attributes(router, [{"user_id": u, "country": "DE"} for u in users], keyspace=ks)
    store = RecsStore(router.clients()[0], ks, ttl_s=3600)
    for version in ("e-m1", "e-m2"):
        lists = [(u, [("v1", 1.0), ("v2", 0.5)]) for u in users]
        store.publish(version, lists, [("v1", [("v2", 0.9)])], [("v1", 1.0)])
    build_warehouse(settings.duckdb_path, events, victim)
    build_lake(settings.lake_dir, events)

    victim_tag = ks.user(victim)
    before = redis_snapshot(router, settings.redis_prefix)
    victim_keys = {k for k in before if k.startswith(victim_tag + ":")}
    assert victim_keys == {
        ks.user_profile(victim),
        ks.user_recent(victim),
        ks.user_attributes(victim),
        ks.user_recommendations(victim, "e-m1"),
        ks.user_recommendations(victim, "e-m2"),
    }
    rows_before = warehouse_rows(settings.duckdb_path)
    lake_before = lake_rows(settings.lake_dir)

    reports = {r.store.split()[0]: r for r in erase_everywhere(settings, victim)}

    assert sorted(k for k, _ in reports["redis"].items) == sorted(victim_keys)
    after = redis_snapshot(router, settings.redis_prefix)
    assert after == {k: v for k, v in before.items() if k not in victim_keys}
    assert read_user_profile(router, victim, keyspace=ks)["events"] == 0

    counts = dict(reports["duckdb"].items)
    assert counts["raw.click_events"] == users[victim]
    assert counts["raw.user_profiles"] == 1 and counts["main.fct_user_engagement_daily"] == 1
    assert counts["raw.rejected_rows"] == 2  # linked by event_id, and by the user_id in the JSON
    rows_after = warehouse_rows(settings.duckdb_path)
    victim_events = {e["event_id"] for e in events if e["user_id"] == victim}
    for table, rows in rows_before.items():
        assert rows_after[table] == [r for r in rows if not mentions(r, victim, victim_events)], table
    assert (
        rows_after["raw.rejected_rows"] != []
        and len(rows_after["raw.click_events"]) == len(events) - users[victim]
    )

    assert dict(reports["lake"].items) == {"lake/click_events": 2 * users[victim]}
    lake_after = lake_rows(settings.lake_dir)
    assert lake_after == {
        f: [row for row in rows if row.get("user_id") != victim] for f, rows in lake_before.items()
    }

    # Again, through the command line: nothing left to remove, nothing else touched.
    env = {
        "CLICKPULSE_REDIS_PREFIX": settings.redis_prefix,
        "CLICKPULSE_DUCKDB_PATH": str(settings.duckdb_path),
        "CLICKPULSE_LAKE_DIR": str(settings.lake_dir),
        "REDIS_URL": settings.redis_url,
    }
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["erase-user", victim], env=env)
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert "redis: 0 keys removed" in result.output
    assert f"duckdb {settings.duckdb_path}: 0 rows removed" in result.output
    assert f"lake {settings.lake_dir}: 0 rows removed" in result.output
    assert "retention" in result.output and "HyperLogLog" in result.output
    assert redis_snapshot(router, settings.redis_prefix) == after
    assert warehouse_rows(settings.duckdb_path) == rows_after
    assert lake_rows(settings.lake_dir) == lake_after
    router.close()
