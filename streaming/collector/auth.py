"""Write keys: ``Authorization: Bearer <key>``, or ``?write_key=`` for ``navigator.sendBeacon``.

Only keys from ``CLICKPULSE_WRITE_KEYS`` are accepted; read keys (the API's) are not write keys.
A key in the query string would otherwise end up in access logs, so uvicorn's access log is redacted
(``streaming.api_keys``, shared with the API's read keys).
"""

from __future__ import annotations

from typing import Final

from streaming import api_keys
from streaming.api_keys import presented_key

__all__ = ["QUERY_PARAMETER", "is_write_key", "presented_key", "redact_access_log"]

QUERY_PARAMETER: Final = "write_key"


def is_write_key(key: str | None, write_keys: frozenset[str]) -> bool:
    """Constant-time comparison against every configured key."""
    return api_keys.matches_any(key, write_keys)


def redact_access_log() -> None:
    """Redact ``write_key=`` in uvicorn's access log, once per process."""
    api_keys.redact_access_log(QUERY_PARAMETER)
