"""Write keys: ``Authorization: Bearer <key>``, or ``?write_key=`` for ``navigator.sendBeacon``.

Only keys from ``CLICKPULSE_WRITE_KEYS`` are accepted; read keys (the API's) are not write keys.
A key in the query string would otherwise end up in access logs, so uvicorn's access log is redacted.
"""

from __future__ import annotations

import hmac
import logging
import re
from typing import Final

QUERY_PARAMETER: Final = "write_key"
_BEARER: Final = "bearer "
_IN_QUERY = re.compile(r"(write_key=)[^&\s\"]*")


def presented_key(authorization: str | None, query_key: str | None) -> str | None:
    """The key the client presented: the Authorization header wins over the query parameter."""
    if authorization is not None:
        if authorization[: len(_BEARER)].lower() == _BEARER:
            return authorization[len(_BEARER) :].strip() or None
        return None
    return query_key or None


def is_write_key(key: str | None, write_keys: frozenset[str]) -> bool:
    """Constant-time comparison against every configured key."""
    if not key:
        return False
    candidate = key.encode()
    matched = False
    for known in write_keys:
        matched |= hmac.compare_digest(candidate, known.encode())
    return matched


class RedactWriteKeyFilter(logging.Filter):
    """Replaces ``write_key=...`` in log arguments (uvicorn logs the full path with its query)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(
            isinstance(a, str) and QUERY_PARAMETER in a for a in record.args
        ):
            record.args = tuple(
                _IN_QUERY.sub(r"\1[redacted]", a) if isinstance(a, str) else a for a in record.args
            )
        return True


def redact_access_log() -> None:
    """Install the filter on uvicorn's access logger once per process."""
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactWriteKeyFilter) for f in access.filters):
        access.addFilter(RedactWriteKeyFilter())
