"""Redis ACL mode (the default) on the stack's Redis and on a private redis-server started by the stack:
each role can do its job and nothing else.

The stack's own Redis (``make up``) is checked for what a user meets: the default user refused, and the
redis-cli line ``stack status`` prints logs in as admin. The role tests start their own server (spare
port, temporary data dir, key prefix ``acl.t``) through ``launcher.up_redis``, since the shared one holds
other tests' keys, and every component logs in with the credentials it resolves itself
(``RedisRouter.from_settings(settings, role)`` / ``role_url``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest
import redis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import SecretStr

from clickpulse.settings import Settings
from clickpulse.stack import launcher, redis_server
from clickpulse.stack.processes import StackError, state_dir, stop
from clickpulse.stack.redis_acl import stack_acl_text
from streaming.bridge import RedisBridge
from streaming.consumer import RealtimeConsumer
from streaming.keyspace import Keyspace, read_video_stats, write_user_attributes, write_video_metadata
from streaming.recommendations.keys import recs_previous
from streaming.recommendations.store import RecsStore
from streaming.redis_conn import RedisRouter, RedisUnavailableError, connect, is_cluster_client
from streaming.redis_roles import Role, read_secrets, role_url, secrets_path
from tests.integration.consumer_support import (
    Expected,
    compare,
    consumer_env,
    counted,
    handmade,
    now_ms,
    produce,
    simulated,
    start_consumer_process,
    wait_until,
)
from tests.integration.recs_support import synthetic
from tests.support.ingest import closed_port, forward_through_bridge, make_event, payload, read_topic

NOPERM = redis.exceptions.NoPermissionError


@pytest.fixture(scope="module")
def acl(tmp_path_factory: pytest.TempPathFactory, settings: Settings) -> Iterator[Settings]:
    """ACL-mode settings for a private redis-server that the stack starts (and this fixture stops)."""
    data_dir: Path = tmp_path_factory.mktemp("acl-stack")
    own = Settings(
        KAFKA_BOOTSTRAP_SERVERS=settings.kafka_bootstrap_servers,
        REDIS_URL=f"redis://127.0.0.1:{closed_port()}/0",
        CLICKPULSE_DATA_DIR=data_dir,
        CLICKPULSE_CACHE_DIR=settings.cache_dir,
        CLICKPULSE_REDIS_ACL=True,
        CLICKPULSE_REDIS_PREFIX="acl.t",
        CLICKPULSE_LIVE_CHANNEL_PREFIX="acl.t",
        CLICKPULSE_REDIS_MAXMEMORY="256mb",
        CLICKPULSE_STACK_START_TIMEOUT_S=30,
        CLICKPULSE_CONSUMER_SESSION_TIMEOUT_MS=6000,
        CLICKPULSE_CONSUMER_METRICS_PORT=0,
    )
    try:
        launcher.up_redis(own)
        yield own
    finally:
        stop(data_dir, launcher.REDIS)


def client(settings: Settings, role: Role) -> redis.Redis:
    return redis.Redis.from_url(role_url(settings, role), decode_responses=True)


def test_stack_renders_role_users_and_disables_the_default_user(acl: Settings) -> None:
    path = secrets_path(acl)
    passwords = read_secrets(path)
    assert set(passwords) == {r.value for r in Role}
    assert path.stat().st_mode & 0o777 == 0o600
    acl_file = redis_server.acl_file(acl.data_dir, launcher.REDIS)
    assert acl_file.stat().st_mode & 0o777 == 0o600
    text = acl_file.read_text()
    assert not any(password in text for password in passwords.values()), "plain passwords in the ACL file"

    plain = redis.Redis.from_url(acl.redis_url)
    with pytest.raises(redis.AuthenticationError):
        plain.ping()
    wrong = redis.Redis.from_url(acl.redis_url, username=Role.ADMIN.username, password="wrong")
    with pytest.raises(redis.AuthenticationError):
        wrong.ping()

    users = {line.split()[1]: line for line in client(acl, Role.ADMIN).execute_command("ACL", "LIST")}
    assert set(users) == {"default", *(r.username for r in Role)}
    assert " off " in users["default"]
    (redis_status,) = [s for s in launcher.status(acl) if s.name == "redis"]
    assert redis_status.up and redis_status.started_by_project and "(acl)" in redis_status.address

    # A second `stack up` reuses the running server and its passwords.
    launcher.up_redis(acl)
    assert read_secrets(path) == passwords
    assert client(acl, Role.ADMIN).ping()


def with_own_topics(acl: Settings, new_topic: Callable[..., str]) -> Settings:
    """``acl`` with this test's own raw (2 partitions), enriched (2) and dead-letter topics."""
    return acl.model_copy(
        update={
            "topic_raw": new_topic("raw", 2),
            "topic_enriched": new_topic("enriched", 2),
            "topic_dlq": new_topic("dlq", 1),
        }
    )


def test_consumer_role_runs_the_lua_batch_and_cannot_write_recommendations(
    acl: Settings, new_topic: Callable[..., str], unique_name: Callable[[str], str]
) -> None:
    own = with_own_topics(acl, new_topic)
    ks = Keyspace.from_settings(own)
    records, _ = simulated(600, seed=3, users=40, videos=12)
    records += handmade(60, 3, now_ms(), own.allowed_lateness_minutes * 60)
    produce(own.kafka_bootstrap_servers, own.topic_raw, records)
    expected = Expected.of(records, own.allowed_lateness_minutes * 60, time.time())

    admin_client = client(own, Role.ADMIN)
    admin_client.execute_command("ACL", "LOG", "RESET")
    live = client(own, Role.API).pubsub(ignore_subscribe_messages=True)
    live.subscribe(ks.channel_global())
    live.get_message(timeout=1)

    consumer = RealtimeConsumer(own, group=unique_name("acl"))  # logs in as clickpulse-consumer
    assert all(Role.CONSUMER.username in url for url in consumer.router.urls.values())
    deadline = time.monotonic() + 60
    try:
        consumer.run(stop_when=lambda s: s.records >= len(records) or time.monotonic() > deadline)
    finally:
        consumer.close()
    assert consumer.stats.counted == expected.valid
    admin = RedisRouter.from_settings(own, Role.ADMIN)
    assert compare(admin, ks, expected) == []
    # Nothing the consumer does was refused, including what it would only log (live publishing).
    assert admin_client.execute_command("ACL", "LOG") == []
    snapshot = live.get_message(timeout=5)
    assert snapshot is not None and orjson.loads(snapshot["data"])["type"] == "snapshot"
    live.close()

    c = client(own, Role.CONSUMER)
    user = expected.first_events[0]["user_id"]
    assert c.hgetall(ks.user_attributes(user)) == {}  # may read the attributes Dagster writes
    for write in (
        lambda: c.set(ks.user_recommendations(user, "m1"), "[]"),
        lambda: c.set(ks.recs_current(), "m1"),
        lambda: c.hset(ks.user_attributes(user), "country", "XX"),
        lambda: c.hset(ks.video_metadata("v1"), "title", "x"),
        lambda: c.publish("ingest:events", "{}"),
        lambda: c.flushall(),
        lambda: c.keys("*"),
    ):
        with pytest.raises(NOPERM):
            write()
    admin.close()


def test_consumer_command_logs_in_as_the_consumer_role_with_its_hooks(
    acl: Settings, new_topic: Callable[..., str], unique_name: Callable[[str], str], tmp_path: Path
) -> None:
    """`clickpulse consumer` (what `make demo` starts) resolves the consumer's credentials itself, and its
    per-user hooks (clicks and next-up on live:user:*) stay within the role: ACL LOG stays empty."""
    own = with_own_topics(acl, new_topic)
    ks = Keyspace.from_settings(own)
    records = handmade(150, 5, now_ms(), own.allowed_lateness_minutes * 60)
    produce(own.kafka_bootstrap_servers, own.topic_raw, records)
    expected = Expected.of(records, own.allowed_lateness_minutes * 60, time.time())
    admin_client = client(own, Role.ADMIN)
    admin_client.flushdb()  # this module's private server: the consumer test counted the same videos
    admin_client.execute_command("ACL", "LOG", "RESET")
    env = consumer_env(own, own.redis_prefix, {"CLICKPULSE_DATA_DIR": str(own.data_dir)})
    assert "@" not in env["REDIS_URL"], "the command must find its password itself"
    proc = start_consumer_process(env, unique_name("acl-cli"), 100, tmp_path / "consumer.log")
    admin = RedisRouter.from_settings(own, Role.ADMIN)
    try:
        wait_until(lambda: counted(admin, ks) >= expected.valid or proc.poll() is not None, 60, "the count")
    finally:
        proc.terminate()
        proc.wait(30)
    log = (tmp_path / "consumer.log").read_text()
    assert Role.CONSUMER.username in log and "clickpulse-admin" not in log, log[-2000:]
    assert compare(admin, ks, expected) == []
    assert admin_client.execute_command("ACL", "LOG") == []
    admin.close()


def test_api_role_reads_and_subscribes_but_cannot_write(acl: Settings) -> None:
    ks = Keyspace.from_settings(acl)
    admin = client(acl, Role.ADMIN)
    admin.hset(ks.video_totals("api-v"), mapping={"clicks": 7, "impressions": 70, "clicks:play": 7})
    api = client(acl, Role.API)
    assert api.hgetall(ks.video_totals("api-v"))["clicks"] == "7"

    router = RedisRouter.from_settings(acl, Role.API)
    assert read_video_stats(router, "api-v", keyspace=ks)["clicks"] == 7
    for write in (
        lambda: api.hincrby(ks.video_totals("api-v"), "clicks", 1),
        lambda: api.set(ks.recs_current(), "m1"),
        lambda: api.delete(ks.video_totals("api-v")),
        lambda: api.expire(ks.video_totals("api-v"), 1),
        lambda: api.pfadd(ks.video_uniques("api-v"), "u1"),
        lambda: api.publish(ks.channel_global(), "{}"),
        lambda: api.flushall(),
        lambda: api.config_set("maxmemory", "1mb"),
        lambda: api.script_flush(),
    ):
        with pytest.raises(NOPERM):
            write()
    with pytest.raises(redis.ResponseError, match="can't run this command"):  # not even from a script
        api.eval("return redis.call('HSET', KEYS[1], 'clicks', 0)", 1, ks.video_totals("api-v"))
    assert admin.hgetall(ks.video_totals("api-v"))["clicks"] == "7"

    # Subscribe to live:* (a consumer publishes), not to other channels.
    pubsub = api.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(ks.channel_global())
    assert client(acl, Role.CONSUMER).publish(ks.channel_global(), '{"type": "snapshot"}') == 1
    message = None
    deadline = time.monotonic() + 5
    while message is None and time.monotonic() < deadline:
        message = pubsub.get_message(timeout=0.5)
    assert message is not None and message["data"] == '{"type": "snapshot"}'
    pubsub.subscribe("ingest:events")  # the refusal arrives as the subscription's reply
    with pytest.raises(NOPERM):
        pubsub.get_message(timeout=2)
    pubsub.close()

    # The real API app resolves the api role's credentials itself.
    with TestClient(_api_app(acl)) as http:
        response = http.get("/v1/videos/api-v/stats", headers={"Authorization": "Bearer dev-read-key"})
    assert response.status_code == 200, response.text
    assert response.json()["clicks"] == 7 and response.json()["clicks_by_button"] == {"play": 7}
    router.close()


def _api_app(settings: Settings) -> FastAPI:
    from serving.app import create_app

    return create_app(settings)


def test_publisher_switches_the_recs_pointer_but_cannot_touch_counters(acl: Settings) -> None:
    ks = Keyspace.from_settings(acl)
    admin = client(acl, Role.ADMIN)
    admin.hset(ks.video_totals("pub-v"), "clicks", 3)
    store = RecsStore(connect(role_url(acl, Role.PUBLISHER)), ks, ttl_s=3600)
    for version in ("acl-m1", "acl-m2"):
        user_lists, similar, popular = synthetic(version, 20, 10, seed=1)
        store.publish(version, user_lists, similar, popular)
    assert (store.pointer().current, store.pointer().previous) == ("acl-m2", "acl-m1")
    assert store.rollback() == ("acl-m2", "acl-m1")
    assert admin.get(ks.recs_current()) == "acl-m1"

    router = RedisRouter.from_settings(acl, Role.PUBLISHER)
    assert write_video_metadata(router, [{"video_id": "pub-v", "title": "T"}], keyspace=ks) == 1
    assert write_user_attributes(router, [{"user_id": "pub-u", "country": "DE"}], keyspace=ks) == 1
    publisher = client(acl, Role.PUBLISHER)
    assert publisher.hget(ks.video_totals("pub-v"), "clicks") == "3"  # the reconciliation check reads
    for write in (
        lambda: publisher.hincrby(ks.video_totals("pub-v"), "clicks", 1),
        lambda: publisher.delete(ks.video_totals("pub-v")),
        lambda: publisher.hset(ks.user_profile("pub-u"), "clicks", 1),
        lambda: publisher.zadd(ks.trending(), {"pub-v": 1.0}),
        lambda: publisher.publish(ks.channel_global(), "{}"),
    ):
        with pytest.raises(NOPERM):
            write()
    assert admin.hget(ks.video_totals("pub-v"), "clicks") == "3"
    assert admin.get(recs_previous(ks)) is None  # rolled back to the oldest: no previous left
    router.close()


def test_bridge_subscribes_ingest_and_ingest_role_publishes(
    acl: Settings, new_topic: Callable[..., str]
) -> None:
    own = acl.model_copy(update={"topic_raw": new_topic("raw"), "topic_dlq": new_topic("dlq", 1)})
    event = make_event()
    ingest = client(own, Role.INGEST)
    # The bridge logs in as clickpulse-bridge, the publishing backend as clickpulse-ingest.
    forward_through_bridge(RedisBridge(own), ingest.publish, [orjson.dumps(event)], deliveries=1)
    (record,) = read_topic(own.kafka_bootstrap_servers, own.topic_raw, 1)
    assert orjson.loads(payload(record))["event_id"] == event["event_id"]

    # A refused login stops the bridge with the reason instead of resubscribing forever.
    wrong = own.model_copy(update={"redis_password_bridge": SecretStr("wrong")})
    with pytest.raises(RedisUnavailableError, match="refused the bridge's login"):
        RedisBridge(wrong).run()

    bridge_user, ingest_user = client(own, Role.BRIDGE), client(own, Role.INGEST)
    for denied in (
        lambda: bridge_user.get("acl.t:{global}:totals"),
        lambda: bridge_user.publish(own.bridge_channel, "{}"),
        lambda: ingest_user.get("acl.t:{global}:totals"),
        lambda: ingest_user.publish("live:global", "{}"),
    ):
        with pytest.raises(NOPERM):
            denied()


def test_a_restart_keeps_what_scripts_wrote_in_acl_mode(acl: Settings) -> None:
    """Lua writes reach the AOF as MULTI/EXEC blocks, which Redis replays as the default user and
    re-checks against the ACL at EXEC (redis/redis#14541): a default user without permissions would
    lose them on restart. The stack's default user is off and passwordless, so it stays unusable."""
    admin = client(acl, Role.ADMIN)
    keys = [f"acl.t:{{aof}}:{name}" for name in ("scripted", "counter", "plain")]
    admin.eval("redis.call('SET', KEYS[1], 'kept'); return redis.call('INCRBY', KEYS[2], 5)", 2, *keys[:2])
    admin.set(keys[2], "kept")
    admin.close()
    assert stop(acl.data_dir, launcher.REDIS)  # SIGTERM: Redis fsyncs the AOF and exits
    launcher.up_redis(acl)
    admin = client(acl, Role.ADMIN)
    assert admin.mget(keys) == ["kept", "5", "kept"]
    with pytest.raises(redis.AuthenticationError):
        redis.Redis.from_url(acl.redis_url).ping()
    log = state_dir(acl.data_dir) / "logs" / f"{launcher.REDIS}.log"
    assert "AOF-loading-client" not in log.read_text(errors="replace")
    admin.delete(*keys)


def test_stack_up_switches_a_running_redis_in_and_out_of_acl_mode(acl: Settings) -> None:
    open_mode = acl.model_copy(update={"redis_acl": False})
    plain = redis.Redis.from_url(acl.redis_url)
    try:
        launcher.up_redis(open_mode)
        assert plain.ping() and plain.set("acl.t:open", "1")
        (status,) = [s for s in launcher.status(open_mode) if s.name == "redis"]
        assert status.up
    finally:
        launcher.up_redis(acl)
    with pytest.raises(redis.AuthenticationError):
        redis.Redis.from_url(acl.redis_url).ping()
    assert client(acl, Role.ADMIN).get("acl.t:open") == "1"
    assert json.loads(secrets_path(acl).read_text()).keys() == {r.value for r in Role}


def test_stack_up_refuses_an_open_redis_it_did_not_start_and_says_how_to_opt_out(tmp_path: Path) -> None:
    """A Redis without ClickPulse's users that another checkout (or the user) started: ACL mode cannot
    log in there, so `stack up` stops with the ways forward; with the opt-out it uses it as it is."""
    port = closed_port()
    proc = redis_server.start_instance(tmp_path / "theirs", "open", "127.0.0.1", port, "64mb")
    assert proc is not None
    url = f"redis://127.0.0.1:{port}/0"
    try:
        redis_server.wait_ready(url, 30, proc.log_file)
        mine = Settings(REDIS_URL=url, CLICKPULSE_DATA_DIR=tmp_path / "mine", CLICKPULSE_REDIS_ACL=True)
        with pytest.raises(StackError, match="CLICKPULSE_REDIS_ACL=0") as refused:
            launcher.up_redis(mine)
        assert "CLICKPULSE_REDIS_ACL_SECRETS" in str(refused.value)
        assert redis.Redis.from_url(url).ping(), "the other Redis must be left as it was"
        launcher.up_redis(mine.model_copy(update={"redis_acl": False}))
    finally:
        stop(tmp_path / "theirs", "open")


def test_roles_work_as_redis_cluster_clients(
    tmp_path: Path, settings: Settings, new_topic: Callable[..., str], unique_name: Callable[[str], str]
) -> None:
    """A one-node Redis Cluster in ACL mode (the same file every node of the stack's cluster loads): the
    consumer's per-slot scripts and watermarks, and the API's reads, pass through ``RedisCluster``."""
    own = Settings(
        KAFKA_BOOTSTRAP_SERVERS=settings.kafka_bootstrap_servers,
        REDIS_URL=f"redis://127.0.0.1:{closed_port(below=55536)}/0",
        CLICKPULSE_DATA_DIR=tmp_path,
        CLICKPULSE_REDIS_ACL=True,
        CLICKPULSE_TOPIC_RAW=new_topic("raw", 2),
        CLICKPULSE_TOPIC_ENRICHED=new_topic("enriched", 2),
        CLICKPULSE_TOPIC_DLQ=new_topic("dlq", 1),
        CLICKPULSE_CONSUMER_SESSION_TIMEOUT_MS=6000,
    )
    port = int(own.redis_url.rsplit(":", 1)[1].split("/")[0])
    proc = redis_server.start_instance(
        tmp_path, "acl-cluster", "127.0.0.1", port, "64mb", cluster=True, acl_text=stack_acl_text(own)
    )
    assert proc is not None
    try:
        redis_server.wait_ready(role_url(own, Role.ADMIN), 30, proc.log_file)
        admin = client(own, Role.ADMIN)
        admin.execute_command("CLUSTER", "ADDSLOTSRANGE", "0", "16383")
        deadline = time.monotonic() + 20
        while admin.cluster("info")["cluster_state"] != "ok" and time.monotonic() < deadline:
            time.sleep(0.2)

        records = handmade(200, 8, now_ms(), own.allowed_lateness_minutes * 60)
        produce(own.kafka_bootstrap_servers, own.topic_raw, records)
        expected = Expected.of(records, own.allowed_lateness_minutes * 60, time.time())
        consumer = RealtimeConsumer(own, group=unique_name("acl-cluster"))
        assert all(is_cluster_client(c) for c in consumer.router.clients())
        stop_at = time.monotonic() + 60
        try:
            consumer.run(stop_when=lambda s: s.records >= len(records) or time.monotonic() > stop_at)
        finally:
            consumer.close()
        api = RedisRouter.from_settings(own, Role.API)
        assert compare(api, Keyspace.from_settings(own), expected) == []
        assert admin.execute_command("ACL", "LOG") == []
        api.close()
    finally:
        stop(tmp_path, "acl-cluster")


def _stack_status() -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "clickpulse.cli", "stack", "status"],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=60,
        check=False,
    )


def test_the_stacks_redis_refuses_the_default_user_and_status_says_how_to_log_in(
    stack_settings: Settings, redis_url: str
) -> None:
    """The Redis `make up` started (ACL mode by default): no login, no access; the redis-cli line that
    `clickpulse stack status` prints logs in as the admin user. With CLICKPULSE_REDIS_ACL=0 (opted out)
    the same Redis must be open instead, and status prints no login line."""
    if not stack_settings.redis_acl:
        assert redis.Redis.from_url(stack_settings.redis_url).ping()
        assert "REDISCLI_AUTH=" not in _stack_status().stdout
        return
    with pytest.raises(redis.AuthenticationError):
        redis.Redis.from_url(stack_settings.redis_url).ping()
    admin = redis.Redis.from_url(redis_url, decode_responses=True)
    users = {line.split()[1]: line.split() for line in admin.execute_command("ACL", "LIST")}
    assert "off" in users["default"] and "on" in users[Role.ADMIN.username]
    assert set(users) == {"default", *(role.username for role in Role)}

    status = _stack_status()
    port = redis.Redis.from_url(redis_url).connection_pool.connection_kwargs["port"]
    logins = [ln.strip() for ln in status.stdout.splitlines() if ln.strip().startswith("REDISCLI_AUTH=")]
    (line,) = [ln for ln in logins if f" -p {port} " in ln]  # the cluster stack's line may follow
    assert admin.connection_pool.connection_kwargs["password"] not in status.stdout
    whoami = subprocess.run(
        ["bash", "-c", f"{line} ACL WHOAMI"], capture_output=True, text=True, timeout=30, check=False
    )
    assert whoami.stdout.strip() == Role.ADMIN.username, whoami.stdout + whoami.stderr
