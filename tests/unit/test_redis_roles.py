"""Role credentials and the rendered ACL file, without a Redis (the real server is in test_redis_acl)."""

from __future__ import annotations

import fnmatch
from pathlib import Path

import pytest
import redis

from clickpulse.settings import Settings
from clickpulse.stack.redis_acl import OPEN_ACL, ensure_secrets, render_acl
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
    with_credentials,
)


def acl_settings(tmp_path: Path, **extra: object) -> Settings:
    return Settings(CLICKPULSE_DATA_DIR=tmp_path, CLICKPULSE_REDIS_ACL=True, **extra)


def test_acl_mode_off_changes_no_url(tmp_path: Path) -> None:
    settings = Settings(CLICKPULSE_DATA_DIR=tmp_path)
    assert role_credentials(settings, Role.CONSUMER) is None
    assert role_url(settings, Role.API) == settings.redis_url
    assert render_acl(settings, None) == OPEN_ACL
    assert not (tmp_path / "redis").exists()


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
    assert lines[0] == "user default off resetpass resetkeys resetchannels -@all"
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
