"""Parsing of the service addresses in the settings."""

from __future__ import annotations

from urllib.parse import urlparse


def parse_bootstrap(servers: str) -> list[tuple[str, int]]:
    out = []
    for item in servers.split(","):
        host, _, port = item.strip().rpartition(":")
        out.append((host or "127.0.0.1", int(port)))
    return out


def parse_redis_url(url: str) -> tuple[str, int]:
    parsed = urlparse(url)
    return parsed.hostname or "127.0.0.1", parsed.port or 6379


def is_loopback(host: str) -> bool:
    return host in {"localhost", "::1"} or host.startswith("127.")
