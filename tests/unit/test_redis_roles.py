"""Role credentials and the rendered ACL file, without a Redis (the real server is in test_redis_acl)."""

from __future__ import annotations

import fnmatch
from pathlib import Path
from typing import TypedDict, Unpack

import pytest
import redis

from clickpulse.settings import Settings
from clickpulse.stack.redis_acl import OPEN_ACL, ensure_secrets, manual_login, render_acl
from streaming.acl_rules import role_rules
from streaming.keyspace import Keyspace, key_families
from streaming.redis_conn import Family, RedisRouter
from streaming.redis_roles import (
    RedisAclError,
    Role,
    RoleCredentials,
    read_secrets,
    redact_url,
    role_credentials,
    role_url,
    settings_as,
    with_credentials,
)


class AclOverrides(TypedDict, total=False):
    """The settings these tests vary, by environment alias, as the text an environment variable holds."""

    REDIS_URL: str
    CLICKPULSE_REDIS_URL_RECS: str
    CLICKPULSE_REDIS_URL_LIVE: str
    CLICKPULSE_REDIS_PASSWORD_ADMIN: str
    CLICKPULSE_REDIS_PASSWORD_API: str
    CLICKPULSE_REDIS_PREFIX: str
    CLICKPULSE_LIVE_CHANNEL_PREFIX: str


def acl_settings(tmp_path: Path, **extra: Unpack[AclOverrides]) -> Settings:
    return Settings(CLICKPULSE_DATA_DIR=tmp_path, CLICKPULSE_REDIS_ACL=True, **extra)


def test_acl_mode_is_the_default_and_0_opts_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CLICKPULSE_REDIS_ACL", raising=False)
    assert Settings(CLICKPULSE_DATA_DIR=tmp_path).redis_acl
    monkeypatch.setenv("CLICKPULSE_REDIS_ACL", "0")
    assert not Settings(CLICKPULSE_DATA_DIR=tmp_path).redis_acl


def test_acl_mode_off_changes_no_url(tmp_path: Path) -> None:
    settings = Settings(CLICKPULSE_DATA_DIR=tmp_path, CLICKPULSE_REDIS_ACL=False)
    assert role_credentials(settings, Role.CONSUMER) is None
    assert role_url(settings, Role.API) == settings.redis_url
    assert settings_as(settings, Role.ADMIN) == settings
    assert render_acl(settings, None) == OPEN_ACL
    assert manual_login(settings, settings.redis_url) is None
    assert not (tmp_path / "redis").exists()


def test_settings_as_a_role_log_every_url_in_and_keep_given_credentials(tmp_path: Path) -> None:
    settings = acl_settings(
        tmp_path,
        REDIS_URL="redis://127.0.0.1:6391/0",
        CLICKPULSE_REDIS_URL_RECS="redis://recs-host:6380/2",
        CLICKPULSE_REDIS_URL_LIVE="redis://me:mine@live-host:6381/0",
    )
    with pytest.raises(RedisAclError, match="clickpulse stack up"):
        settings_as(settings, Role.ADMIN)
    admin = ensure_secrets(settings)[Role.ADMIN]
    logged_in = settings_as(settings, Role.ADMIN)
    for url in (logged_in.redis_url, logged_in.redis_url_recs):
        kwargs = redis.Redis.from_url(str(url)).connection_pool.connection_kwargs
        assert (kwargs["username"], kwargs["password"]) == ("clickpulse-admin", admin)
    assert logged_in.redis_url_live == "redis://me:mine@live-host:6381/0"
    assert logged_in.redis_url_windows is None
    assert logged_in.redis_url.endswith("@127.0.0.1:6391/0")
    assert logged_in.redis_url_recs is not None and logged_in.redis_url_recs.endswith("@recs-host:6380/2")
    # URLs that carry credentials need no password from the environment or the secrets file.
    elsewhere = logged_in.model_copy(update={"data_dir": tmp_path / "empty"})
    assert role_url(elsewhere, Role.API) == logged_in.redis_url
    assert settings_as(elsewhere, Role.CONSUMER) == elsewhere


def test_manual_login_line_reads_the_password_and_never_prints_it(tmp_path: Path) -> None:
    settings = acl_settings(tmp_path, REDIS_URL="redis://127.0.0.1:6391/3")
    admin = ensure_secrets(settings)[Role.ADMIN]
    line = manual_login(settings, settings.redis_url)
    assert line is not None and admin not in line
    assert line.endswith("redis-cli -h 127.0.0.1 -p 6391 -n 3 --user clickpulse-admin")
    assert str(tmp_path / "redis" / "acl-secrets.json") in line
    cluster = manual_login(settings, "redis://127.0.0.1:17001/0", cluster=True)
    assert cluster is not None and cluster.endswith("-p 17001 -c --user clickpulse-admin")
    from_env = acl_settings(tmp_path, CLICKPULSE_REDIS_PASSWORD_ADMIN="secret-admin")
    env_line = manual_login(from_env, from_env.redis_url)
    assert env_line is not None and env_line.startswith('REDISCLI_AUTH="$CLICKPULSE_REDIS_PASSWORD_ADMIN"')
    assert "secret-admin" not in env_line


def test_secrets_are_generated_once_private_and_env_wins(tmp_path: Path) -> None:
    settings = acl_settings(tmp_path, CLICKPULSE_REDIS_PASSWORD_API="from env")
    with pytest.raises(RedisAclError, match="clickpulse stack up"):
        role_credentials(settings, Role.CONSUMER)
    first = ensure_secrets(settings)
    path = tmp_path / "redis" / "acl-secrets.json"
    assert path.stat().st_mode & 0o777 == 0o600
    assert first[Role.API] == "from env" and "api" not in read_secrets(path)
    assert ensure_secrets(settings) == first
    assert role_credentials(settings, Role.CONSUMER) == RoleCredentials(
        "clickpulse-consumer", first[Role.CONSUMER]
    )
    assert role_credentials(settings, Role.API) == RoleCredentials("clickpulse-api", "from env")


def test_credentials_go_into_urls_without_their_own(tmp_path: Path) -> None:
    creds = RoleCredentials("clickpulse-api", "p@ss:w/rd")
    url = with_credentials("redis://127.0.0.1:6379/0", creds)
    assert url == "redis://clickpulse-api:p%40ss%3Aw%2Frd@127.0.0.1:6379/0"
    parsed = redis.Redis.from_url(url).connection_pool.connection_kwargs
    assert (parsed["username"], parsed["password"]) == ("clickpulse-api", "p@ss:w/rd")
    assert with_credentials("redis://me:mine@host:1/0", creds) == "redis://me:mine@host:1/0"
    assert with_credentials("rediss://:only-pass@host:1/0", creds) == "rediss://:only-pass@host:1/0"
    assert redact_url(url) == "redis://clickpulse-api:***@127.0.0.1:6379/0"

    settings = acl_settings(tmp_path, CLICKPULSE_REDIS_URL_RECS="redis://recs-host:6380/0")
    ensure_secrets(settings)
    router = RedisRouter.from_settings(settings, Role.PUBLISHER, connector=lambda _url: None)  # type: ignore[arg-type,return-value]
    assert router.urls[Family.RECS].startswith("redis://clickpulse-publisher:")
    assert router.urls[Family.RECS].endswith("@recs-host:6380/0")
    assert all(u.startswith("redis://clickpulse-publisher:") for u in router.urls.values())


def test_rendered_acl_file_holds_hashes_and_escaped_patterns(tmp_path: Path) -> None:
    settings = acl_settings(tmp_path, CLICKPULSE_REDIS_PREFIX="t*1", CLICKPULSE_LIVE_CHANNEL_PREFIX="n?")
    passwords = ensure_secrets(settings)
    text = render_acl(settings, passwords)
    lines = text.splitlines()
    assert lines[0] == "user default off resetpass ~* &* +@all"  # off, no password: nobody logs in
    assert [line.split()[1] for line in lines[1:]] == [role.username for role in Role]
    assert not any(p in text for p in passwords.values())
    rules = role_rules(Keyspace(prefix="t*1", channel_prefix="n?"))
    assert "%RW~t\\*1:{video:*}:totals" in rules[Role.CONSUMER]
    assert "&n\\?:live:*" in rules[Role.CONSUMER] and "&n\\?:live:*" in rules[Role.API]
    assert "%R~t\\*1:{user:*}:recs:*" in rules[Role.CONSUMER]
    assert "%RW~t\\*1:{user:*}:recs:*" in rules[Role.PUBLISHER]
    assert not any(rule.startswith(("+@write", "+publish")) for rule in rules[Role.API])
    with pytest.raises(ValueError, match="whitespace"):
        role_rules(Keyspace(prefix="a b"))


def _grants(rules: list[str], key: str, write: bool) -> bool:
    """Whether a role's key rules let it read (or write) ``key`` (the default prefix has no escapes)."""
    for rule in rules:
        access, _, pattern = rule.rpartition("~")
        if not rule.startswith(("~", "%")) or not fnmatch.fnmatchcase(key, pattern):
            continue
        if access in ("", "%RW") or (access == "%R" and not write):
            return True
    return False


def test_every_documented_key_family_has_exactly_its_writer() -> None:
    """A new key family must be given to a role in streaming/acl_rules.py (the README lists them all)."""
    rules = role_rules(Keyspace())
    publisher_families = {"video metadata", "user attributes", "user recommendations", "recs pointer"}
    publisher_families |= {"recs versions", "recs popular"}
    for family in key_families():
        writer = Role.PUBLISHER if family.name in publisher_families else Role.CONSUMER
        other = Role.CONSUMER if writer is Role.PUBLISHER else Role.PUBLISHER
        assert _grants(rules[writer], family.pattern, write=True), family.name
        assert not _grants(rules[other], family.pattern, write=True), family.name
        assert _grants(rules[Role.API], family.pattern, write=False), family.name
        assert not any(_grants(rules[r], family.pattern, write=False) for r in (Role.BRIDGE, Role.INGEST))
