"""Redis ACL users per role, and the credentials each component logs in with.

Why: with one shared password (or none), a bug or a compromise in the read API could rewrite counters,
and the recommendations publisher could wipe live state. With ACL mode on (the default,
``CLICKPULSE_REDIS_ACL``) every component logs in as its own user, limited to its key patterns and
channels (``streaming.acl_rules``), and the default user is disabled. The stack renders the ACL file
(``clickpulse.stack.redis_acl``); ``RedisRouter.from_settings(settings, role=...)`` logs in with the
role's password: ``CLICKPULSE_REDIS_PASSWORD_<ROLE>``, else the secrets file the stack generated.

ACL mode off (``CLICKPULSE_REDIS_ACL=0``) changes nothing: every component uses its URL as configured.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Final
from urllib.parse import quote

from clickpulse.settings import Settings

logger = logging.getLogger(__name__)

USER_PREFIX: Final = "clickpulse-"


class Role(StrEnum):
    """A component's Redis user: ``clickpulse-<role>``."""

    ADMIN = "admin"  # the stack, tests, migrations, erase-user: everything
    CONSUMER = "consumer"  # realtime counters, windows, profiles; publishes live:*
    API = "api"  # read-only, subscribes live:*
    PUBLISHER = "publisher"  # recommendation versions and the pointer; video/user metadata (Dagster)
    BRIDGE = "bridge"  # subscribes ingest:*
    INGEST = "ingest"  # backends that PUBLISH events on ingest:* for the bridge

    @property
    def username(self) -> str:
        return f"{USER_PREFIX}{self.value}"


class RedisAclError(RuntimeError):
    """ACL mode is on but a role has no password; the message says how to get one."""


@dataclass(frozen=True, slots=True)
class RoleCredentials:
    username: str
    password: str

    def __repr__(self) -> str:
        return f"RoleCredentials(username={self.username!r}, password='***')"


# Passwords: CLICKPULSE_REDIS_PASSWORD_<ROLE>, else the secrets file the stack generated.
def secrets_path(settings: Settings) -> Path:
    return settings.redis_acl_secrets_file or settings.data_dir / "redis" / "acl-secrets.json"


def read_secrets(path: Path) -> dict[str, str]:
    """``{role: password}`` from the secrets file; empty when it does not exist."""
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    return {str(k): str(v) for k, v in doc.items()}


def env_password(settings: Settings, role: Role) -> str | None:
    secret = settings.redis_passwords().get(role.value)
    return secret.get_secret_value() if secret is not None else None


def role_credentials(settings: Settings, role: Role, *, force: bool = False) -> RoleCredentials | None:
    """The user and password of ``role``; None when ACL mode is off (unless ``force``, for the stack
    switching a running Redis back out of ACL mode)."""
    if not (settings.redis_acl or force):
        return None
    password = env_password(settings, role) or read_secrets(secrets_path(settings)).get(role.value)
    if not password:
        raise RedisAclError(
            f"CLICKPULSE_REDIS_ACL is on but Redis user {role.username} has no password: run "
            f"`clickpulse stack up` (it generates {secrets_path(settings)}) or set "
            f"CLICKPULSE_REDIS_PASSWORD_{role.value.upper()}"
        )
    return RoleCredentials(role.username, password)


def refused_login(exc: Exception) -> bool:
    """Whether a redis-py error means "wrong or missing credentials" rather than "not there"."""
    import redis

    if isinstance(exc, redis.AuthenticationError | redis.exceptions.NoPermissionError):
        return True
    return isinstance(exc, redis.ResponseError) and str(exc).startswith(("NOAUTH", "WRONGPASS"))


def redact_url(url: str) -> str:
    """The URL without its password, for error messages and logs."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    creds, _, host = rest.rpartition("@")
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user + ':***' if user else '***'}@{host}"


def has_credentials(url: str) -> bool:
    _, sep, rest = url.partition("://")
    return bool(sep) and "@" in rest.split("/", 1)[0]


def with_credentials(url: str, credentials: RoleCredentials | None) -> str:
    """``url`` logging in as ``credentials``; a URL that already names a user or password is kept."""
    if credentials is None or has_credentials(url):
        return url
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ValueError(f"not a Redis URL: {url!r}")
    user = quote(credentials.username, safe="")
    password = quote(credentials.password, safe="")
    return f"{scheme}://{user}:{password}@{rest}"


def role_url(settings: Settings, role: Role, url: str | None = None) -> str:
    """``url`` (default REDIS_URL) with the role's credentials when ACL mode is on; a URL that carries
    credentials is kept as it is (no password needed then)."""
    target = url or settings.redis_url
    return target if has_credentials(target) else with_credentials(target, role_credentials(settings, role))


REDIS_URL_FIELDS: Final = (
    "redis_url",
    "redis_url_live",
    "redis_url_windows",
    "redis_url_profiles",
    "redis_url_videos",
    "redis_url_recs",
)


def settings_as(settings: Settings, role: Role) -> Settings:
    """``settings`` whose ``REDIS_URL`` and family URLs log in as ``role`` (a URL with credentials is
    kept; unchanged with ACL mode off): for tools and tests that hand one ``Settings`` to components
    working under their own key prefix, which only the admin user may touch."""
    update = {
        name: role_url(settings, role, url)
        for name in REDIS_URL_FIELDS
        if (url := getattr(settings, name)) is not None
    }
    return settings.model_copy(update=update)
