"""Bearer keys, shared by the collector's write keys and the API's read keys.

A key comes as ``Authorization: Bearer <key>`` or, where a browser cannot set headers (EventSource,
``navigator.sendBeacon``), as a query parameter; the header wins when both are present. Keys are compared
in constant time against every configured key. A key in a query string would end up in uvicorn's access
log, so each service installs a filter that redacts its parameter there.
"""

from __future__ import annotations

import hmac
import logging
import re
from typing import Final

_BEARER: Final = "bearer "


def presented_key(authorization: str | None, query_key: str | None) -> str | None:
    """The key the client presented: the Authorization header wins over the query parameter."""
    if authorization is not None:
        if authorization[: len(_BEARER)].lower() == _BEARER:
            return authorization[len(_BEARER) :].strip() or None
        return None
    return query_key or None


def matches_any(key: str | None, keys: frozenset[str]) -> bool:
    """Constant-time comparison against every configured key (no early exit on the first match)."""
    if not key:
        return False
    candidate = key.encode()
    matched = False
    for known in keys:
        matched |= hmac.compare_digest(candidate, known.encode())
    return matched


class RedactQueryKeyFilter(logging.Filter):
    """Replaces the value of one query parameter in log arguments (uvicorn logs paths with their query)."""

    def __init__(self, parameter: str) -> None:
        super().__init__()
        self.parameter = parameter
        self._marker = f"{parameter}="
        self._pattern = re.compile(rf"([?&]{re.escape(parameter)}=)[^&\s\"]*")

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(
            isinstance(a, str) and self._marker in a for a in record.args
        ):
            record.args = tuple(
                self._pattern.sub(r"\1[redacted]", a) if isinstance(a, str) else a for a in record.args
            )
        return True


def redact_access_log(parameter: str) -> None:
    """Install the filter for ``parameter`` on uvicorn's access logger, once per process."""
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactQueryKeyFilter) and f.parameter == parameter for f in access.filters):
        access.addFilter(RedactQueryKeyFilter(parameter))
