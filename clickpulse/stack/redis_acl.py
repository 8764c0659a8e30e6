"""The stack's Redis ACL file: role users rendered at `stack up`, passwords generated once.

Every redis-server the stack starts loads ``users.acl`` from its node folder (``aclfile`` in
``stack/redis/redis.conf.tmpl``). With ``CLICKPULSE_REDIS_ACL=0`` the file holds only the default
user with every permission and no password (the Redis default, so nothing changes); with it on (the
default), the default user is off and each ``clickpulse-<role>`` user gets the rules of
``streaming.acl_rules``. Passwords never appear in the ACL file (only their SHA-256); the plain ones,
which the components need, are in the secrets file (``.data/redis/acl-secrets.json``, mode 0600,
git-ignored) unless ``CLICKPULSE_REDIS_PASSWORD_<ROLE>`` sets them. A running Redis the stack started
is switched between the modes with ``ACL LOAD``, without a restart.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Final
from urllib.parse import urlparse

from clickpulse.settings import Settings
from clickpulse.stack.addresses import parse_redis_url
from clickpulse.stack.processes import StackError
from streaming.redis_roles import (
    RedisAclError,
    Role,
    RoleCredentials,
    env_password,
    read_secrets,
    redact_url,
    refused_login,
    role_credentials,
    secrets_path,
    with_credentials,
)

logger = logging.getLogger(__name__)

ACL_FILE_NAME: Final = "users.acl"
OPEN_ACL: Final = "user default on nopass ~* &* +@all\n"
# The default user is off and has no password, so no client can log in as it. It keeps every permission
# because Redis (7.x, redis/redis#14541) replays the AOF as the default user and re-checks ACLs at each
# EXEC: with ``-@all`` the MULTI/EXEC blocks that Lua scripts write to the AOF are dropped on restart,
# which silently loses the consumer's counts.
DISABLED_DEFAULT_USER: Final = "user default off resetpass ~* &* +@all"
_NO_ACL_FILE: Final = "not configured to use an ACL file"


def write_private(path: Path, text: str) -> None:
    """Write ``text`` readable by this user only, replacing ``path`` atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


def ensure_secrets(settings: Settings) -> dict[Role, str]:
    """Every role's password: from the environment, else the secrets file, else generated into it."""
    path = secrets_path(settings)
    stored = read_secrets(path)
    passwords: dict[Role, str] = {}
    generated = False
    for role in Role:
        password = env_password(settings, role) or stored.get(role.value)
        if not password:
            password = stored[role.value] = secrets.token_urlsafe(32)
            generated = True
        passwords[role] = password
    if generated:
        write_private(path, json.dumps(stored, indent=2, sort_keys=True) + "\n")
        logger.info("generated Redis ACL passwords in %s", path)
    elif path.exists() and path.stat().st_mode & 0o077:
        path.chmod(0o600)
    return passwords


def render_acl(settings: Settings, passwords: Mapping[Role, str] | None) -> str:
    """The ACL file text: open (ACL mode off) or the role users with the default user off."""
    if not settings.redis_acl:
        return OPEN_ACL
    if passwords is None:
        raise ValueError("ACL mode needs the role passwords")
    from streaming.acl_rules import role_rules
    from streaming.keyspace import Keyspace

    rules = role_rules(Keyspace.from_settings(settings), settings.bridge_channel)
    lines = [DISABLED_DEFAULT_USER]  # no comments in ACL files
    for role in Role:
        digest = hashlib.sha256(passwords[role].encode()).hexdigest()
        lines.append(" ".join(["user", role.username, "reset", "on", f"#{digest}", *rules[role]]))
    return "\n".join(lines) + "\n"


def stack_acl_text(settings: Settings) -> str:
    """What the next ACL file holds; generates the passwords in ACL mode."""
    return render_acl(settings, ensure_secrets(settings) if settings.redis_acl else None)


def admin_url(settings: Settings, url: str) -> str:
    """``url`` as the stack logs in: the admin user in ACL mode (when its password exists)."""
    try:
        return with_credentials(url, role_credentials(settings, Role.ADMIN))
    except RedisAclError:
        return url


def _candidates(settings: Settings, url: str) -> list[str]:
    """Ways into a running Redis the stack started: as the current mode says, without a password
    (default user still on), or as admin (a Redis still in ACL mode from an earlier run)."""
    urls = [admin_url(settings, url), url]
    if read_secrets(secrets_path(settings)).get(Role.ADMIN.value) or env_password(settings, Role.ADMIN):
        urls.append(with_credentials(url, role_credentials(settings, Role.ADMIN, force=True)))
    return list(dict.fromkeys(urls))


def reload_running(settings: Settings, url: str, acl_file: Path, text: str) -> None:
    """Write ``acl_file`` and make the running Redis at ``url`` load it (``ACL LOAD``)."""
    import redis

    write_private(acl_file, text)
    last: Exception | None = None
    for candidate in _candidates(settings, url):
        client = redis.Redis.from_url(candidate, socket_timeout=5, socket_connect_timeout=2)
        try:
            client.execute_command("ACL", "LOAD")
            logger.info("Redis at %s loaded %s", redact_url(url), acl_file)
            return
        except redis.RedisError as exc:
            if refused_login(exc):
                last = exc
                continue
            if not isinstance(exc, redis.ResponseError):
                raise
            if _NO_ACL_FILE not in str(exc):
                raise StackError(f"Redis at {redact_url(url)} refused {acl_file}: {exc}") from exc
            if settings.redis_acl:
                raise StackError(
                    f"Redis at {redact_url(url)} was started without an ACL file; restart it to enable "
                    "ACL mode: `clickpulse stack down && CLICKPULSE_REDIS_ACL=1 clickpulse stack up`"
                ) from exc
            return  # an older config without ACL users: already what ACL mode off wants
        finally:
            client.close()
    raise StackError(
        f"cannot log in to the Redis at {redact_url(url)} to load its ACL file ({last}); stop it with "
        "`clickpulse stack down` (it keeps the data) and run `clickpulse stack up` again"
    )


def admin_credentials(settings: Settings) -> RoleCredentials | None:
    return role_credentials(settings, Role.ADMIN)


def redis_cli_auth(credentials: RoleCredentials | None) -> tuple[list[str], dict[str, str]]:
    """redis-cli arguments and environment for ``credentials`` (the password stays out of ``ps``)."""
    if credentials is None:
        return [], {}
    return ["--user", credentials.username], {"REDISCLI_AUTH": credentials.password}


def manual_login(settings: Settings, url: str, *, cluster: bool = False) -> str | None:
    """The shell line that opens ``redis-cli`` on ``url`` as the admin user, the password read from the
    environment or the secrets file (never printed); None with ACL mode off."""
    if not settings.redis_acl:
        return None
    host, port = parse_redis_url(url)
    if env_password(settings, Role.ADMIN):
        password = f'"$CLICKPULSE_REDIS_PASSWORD_{Role.ADMIN.value.upper()}"'
    else:
        reader = 'import json,sys; print(json.load(open(sys.argv[1]))["' + Role.ADMIN.value + '"])'
        password = f'"$(python3 -c {shlex.quote(reader)} {shlex.quote(str(secrets_path(settings)))})"'
    db = urlparse(url).path.strip("/")
    target = ["-h", host, "-p", str(port)] + (["-c"] if cluster else ["-n", db] if db.isdigit() else [])
    return f"REDISCLI_AUTH={password} redis-cli {' '.join(target)} --user {Role.ADMIN.username}"
