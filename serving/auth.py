"""Read keys: ``Authorization: Bearer <key>``, or ``?key=`` where a browser cannot send headers.

EventSource (the dashboard's and the player's live feeds) cannot set an Authorization header, so the
key may come as the ``key`` query parameter; the header wins when both are present. Only keys from
``CLICKPULSE_READ_KEYS`` open the API; a write key (``CLICKPULSE_WRITE_KEYS``) is refused even if it is
also listed as a read key, because write keys ship inside public player pages.
"""

from __future__ import annotations

import hmac
import logging
import re
from typing import Final

from fastapi import HTTPException, Request, status

logger = logging.getLogger(__name__)

QUERY_PARAMETER: Final = "key"
_BEARER: Final = "bearer "
_IN_QUERY = re.compile(r"([?&]key=)[^&\s\"]*")


def presented_key(authorization: str | None, query_key: str | None) -> str | None:
    """The key the client presented: the Authorization header wins over the query parameter."""
    if authorization is not None:
        if authorization[: len(_BEARER)].lower() == _BEARER:
            return authorization[len(_BEARER) :].strip() or None
        return None
    return query_key or None


def _matches(candidate: bytes, keys: frozenset[str]) -> bool:
    matched = False
    for known in keys:
        matched |= hmac.compare_digest(candidate, known.encode())
    return matched


class ReadKeyAuth:
    """FastAPI dependency: 401 unless the request carries a read key that is not a write key."""

    def __init__(self, read_keys: frozenset[str], write_keys: frozenset[str]) -> None:
        self.read_keys = read_keys
        self.write_keys = write_keys
        overlap = read_keys & write_keys
        if overlap:
            logger.error(
                "%d key(s) are configured as both read and write keys; they will be refused by the API",
                len(overlap),
            )
        if not read_keys - write_keys:
            logger.error("no usable read key: set CLICKPULSE_READ_KEYS")

    def allows(self, key: str | None) -> bool:
        if not key:
            return False
        candidate = key.encode()
        return _matches(candidate, self.read_keys) and not _matches(candidate, self.write_keys)

    async def __call__(self, request: Request) -> None:
        key = presented_key(request.headers.get("authorization"), request.query_params.get(QUERY_PARAMETER))
        if not self.allows(key):
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "missing or invalid read key",
                headers={"WWW-Authenticate": "Bearer"},
            )


class RedactReadKeyFilter(logging.Filter):
    """Replaces ``key=...`` in uvicorn's access log lines (the SSE URLs carry the read key)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(isinstance(a, str) and "key=" in a for a in record.args):
            record.args = tuple(
                _IN_QUERY.sub(r"\1[redacted]", a) if isinstance(a, str) else a for a in record.args
            )
        return True


def redact_access_log() -> None:
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactReadKeyFilter) for f in access.filters):
        access.addFilter(RedactReadKeyFilter())
