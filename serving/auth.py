"""Read keys: ``Authorization: Bearer <key>``, or ``?key=`` where a browser cannot send headers.

EventSource (the dashboard's and the player's live feeds) cannot set an Authorization header, so the
key may come as the ``key`` query parameter; the header wins when both are present. Only keys from
``CLICKPULSE_READ_KEYS`` open the API; a write key (``CLICKPULSE_WRITE_KEYS``) is refused even if it is
also listed as a read key, because write keys ship inside public player pages.
"""

from __future__ import annotations

import logging
from typing import Final

from fastapi import HTTPException, Request, status

from streaming import api_keys
from streaming.api_keys import matches_any, presented_key

logger = logging.getLogger(__name__)

QUERY_PARAMETER: Final = "key"


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
        return matches_any(key, self.read_keys) and not matches_any(key, self.write_keys)

    async def __call__(self, request: Request) -> None:
        key = presented_key(request.headers.get("authorization"), request.query_params.get(QUERY_PARAMETER))
        if not self.allows(key):
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "missing or invalid read key",
                headers={"WWW-Authenticate": "Bearer"},
            )


def redact_access_log() -> None:
    """Redact ``key=`` in uvicorn's access log (the SSE URLs carry the read key), once per process."""
    api_keys.redact_access_log(QUERY_PARAMETER)
