"""Redis clients: one pool per URL and process, checked at start-up, standalone or Cluster alike.

Every component asks for its clients here, so a process never opens a client per request
(redis-py#3669) and the same code runs against one Redis, several Redis servers (one per key family
group) or a Redis Cluster: ``connect`` looks at ``INFO cluster`` and builds the matching client.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from enum import StrEnum
from typing import Any, TypeAlias

import redis
from redis.cluster import RedisCluster

from clickpulse.settings import Settings
from streaming.redis_roles import (
    Role,
    RoleCredentials,
    has_credentials,
    refused_login,
    role_credentials,
    with_credentials,
)
from streaming.redis_roles import redact_url as _redact

logger = logging.getLogger(__name__)

RedisClient: TypeAlias = redis.Redis | RedisCluster

CONNECT_TIMEOUT_S = 2.0
SOCKET_TIMEOUT_S = 10.0


LOGIN_HINT = (
    "with ACL mode on (CLICKPULSE_REDIS_ACL, the default) run `clickpulse stack up` so the Redis has the "
    "role users of the secrets file, or set CLICKPULSE_REDIS_PASSWORD_<ROLE>; a Redis without ACL users "
    "needs CLICKPULSE_REDIS_ACL=0 (README, 'Security')"
)


class RedisUnavailableError(ConnectionError):
    """Redis did not answer at a configured URL; the message names the URL and what to do."""


class Family(StrEnum):
    """Key family groups that can each live on their own Redis (see the README section "Redis keyspace")."""

    LIVE = "live"
    WINDOWS = "windows"
    PROFILES = "profiles"
    VIDEOS = "videos"
    RECS = "recs"


def is_cluster_client(client: Any) -> bool:
    return isinstance(client, RedisCluster)


def connect(url: str, *, decode_responses: bool = True, **options: Any) -> RedisClient:
    """One client (connection pool) for ``url``: a ``RedisCluster`` when the node runs in cluster mode.

    The node is asked once with ``INFO cluster``; the returned client has answered ``PING``, so a wrong
    URL fails here, at start-up, with the URL in the message rather than on the first event.
    """
    kwargs: dict[str, Any] = {
        "decode_responses": decode_responses,
        "socket_connect_timeout": CONNECT_TIMEOUT_S,
        "socket_timeout": SOCKET_TIMEOUT_S,
        "health_check_interval": 30,
        **options,
    }
    probe = redis.Redis.from_url(
        url, socket_connect_timeout=CONNECT_TIMEOUT_S, socket_timeout=CONNECT_TIMEOUT_S
    )
    try:
        info = probe.info("cluster")
    except redis.RedisError as exc:
        if refused_login(exc):
            where = _redact(url)
            raise RedisUnavailableError(f"Redis at {where} refused the login ({exc}); {LOGIN_HINT}") from exc
        raise RedisUnavailableError(
            f"Redis does not answer at {_redact(url)} ({exc}); start it (`make up`) or fix the URL"
        ) from exc
    finally:
        probe.close()
    client: RedisClient
    if int(info.get("cluster_enabled", 0)) == 1:
        kwargs.pop("health_check_interval")
        client = RedisCluster.from_url(url, **kwargs)
    else:
        client = redis.Redis.from_url(url, **kwargs)
    try:
        client.ping()
    except redis.RedisError as exc:
        client.close()
        raise RedisUnavailableError(f"Redis at {_redact(url)} did not answer PING: {exc}") from exc
    logger.info(
        "connected to %s Redis at %s", "cluster" if is_cluster_client(client) else "standalone", _redact(url)
    )
    return client


class RedisRouter:
    """Maps each key family group to its Redis; families configured with the same URL share one client.

    Build it once per process (``RedisRouter.from_settings``) and pass it around; ``client(family)`` is a
    dictionary look-up, never a new connection.
    """

    def __init__(
        self,
        urls: Mapping[Family, str],
        *,
        connector: Callable[[str], RedisClient] = connect,
        credentials: RoleCredentials | None = None,
    ) -> None:
        missing = [f for f in Family if f not in urls]
        if missing:
            raise ValueError(f"no Redis URL for families {', '.join(missing)}")
        self.urls: dict[Family, str] = {f: with_credentials(urls[f], credentials) for f in Family}
        self._by_url: dict[str, RedisClient] = {}
        for url in dict.fromkeys(self.urls.values()):
            self._by_url[url] = connector(url)

    @classmethod
    def from_settings(cls, settings: Settings, role: Role | None = None, **kwargs: Any) -> RedisRouter:
        """URLs from ``CLICKPULSE_REDIS_URL_<FAMILY>``, each defaulting to ``REDIS_URL``; in ACL mode
        (``CLICKPULSE_REDIS_ACL``) logged in as ``role``'s user where a URL carries no credentials."""
        base = settings.redis_url
        urls = {
            Family.LIVE: settings.redis_url_live or base,
            Family.WINDOWS: settings.redis_url_windows or base,
            Family.PROFILES: settings.redis_url_profiles or base,
            Family.VIDEOS: settings.redis_url_videos or base,
            Family.RECS: settings.redis_url_recs or base,
        }
        return cls.logged_in(urls, settings, role, **kwargs)

    @classmethod
    def logged_in(
        cls, urls: Mapping[Family, str], settings: Settings, role: Role | None, **kwargs: Any
    ) -> RedisRouter:
        """A router on ``urls``, each without credentials logging in as ``role`` in ACL mode; the
        role's password is looked up only when some URL needs it."""
        needs_login = not all(has_credentials(url) for url in urls.values())
        if role is not None and needs_login and "credentials" not in kwargs:
            kwargs["credentials"] = role_credentials(settings, role)
        return cls(urls, **kwargs)

    @classmethod
    def single(cls, client: RedisClient) -> RedisRouter:
        """Every family on one existing client (tests, tools, the API on a single Redis)."""
        router = cls.__new__(cls)
        router.urls = {f: "client" for f in Family}
        router._by_url = {"client": client}
        return router

    def client(self, family: Family) -> RedisClient:
        return self._by_url[self.urls[family]]

    def clients(self) -> list[RedisClient]:
        """Each distinct client once."""
        return list(self._by_url.values())

    def shares_client(self, a: Family, b: Family) -> bool:
        return self.urls[a] == self.urls[b]

    def close(self) -> None:
        for client in self._by_url.values():
            client.close()


def as_router(redis_or_router: RedisClient | RedisRouter) -> RedisRouter:
    """Readers accept a single client or a router; both give a router."""
    if isinstance(redis_or_router, RedisRouter):
        return redis_or_router
    return RedisRouter.single(redis_or_router)
