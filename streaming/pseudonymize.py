"""Optional pseudonymisation of ``user_id`` where events enter: HMAC-SHA256 under a secret key.

Why at the door: the collector and the bridge are the only components that see the id the player sent;
with ``CLICKPULSE_PSEUDONYMIZE_KEY`` set they replace it before the event is produced, so Kafka (record
key and value), Redis (profiles, recommendations, HyperLogLogs) and the warehouse only ever hold the
pseudonym. The same id always maps to the same pseudonym under one key, so counts, profiles and
recommendations work unchanged; without the key the raw id cannot be recovered or tested against.
The SDKs send raw ids as before; ``clickpulse simulate`` and ``replay`` apply the same transform when they
write straight to Kafka, and the read API maps a caller's raw id to its pseudonym (``serving.user_ids``).

Pseudonym: ``u_`` + the first 32 hex characters (128 bits) of HMAC-SHA256(key, user_id as UTF-8).
Rotating the key starts every user afresh (new pseudonyms), which is also a way to unlink all history.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from typing import Any, Final

from pydantic import SecretStr

from clickpulse.settings import Settings
from streaming.ingest import EventTransform

logger = logging.getLogger(__name__)

PSEUDONYM_PREFIX: Final = "u_"
PSEUDONYM_HEX_CHARS: Final = 32
MIN_KEY_CHARS: Final = 16
_PSEUDONYM: Final = re.compile(f"{PSEUDONYM_PREFIX}[0-9a-f]{{{PSEUDONYM_HEX_CHARS}}}")


def _key_bytes(key: SecretStr | str | bytes) -> bytes:
    raw = key.get_secret_value() if isinstance(key, SecretStr) else key
    data = raw.encode() if isinstance(raw, str) else raw
    if len(data) < MIN_KEY_CHARS:
        raise ValueError(f"the pseudonymisation key must be at least {MIN_KEY_CHARS} bytes long")
    return data


def is_pseudonym(user_id: str) -> bool:
    """Whether ``user_id`` has the form of a pseudonym (a raw id may have it too: this only guides tools)."""
    return _PSEUDONYM.fullmatch(user_id) is not None


def pseudonymize(key: SecretStr | str | bytes, user_id: str) -> str:
    """The pseudonym of ``user_id`` under ``key``."""
    return Pseudonymizer(key).user_id(user_id)


class Pseudonymizer:
    """An ``EventTransform``: the event with ``user_id`` replaced by its pseudonym (a new dict)."""

    def __init__(self, key: SecretStr | str | bytes) -> None:
        self._key = _key_bytes(key)

    def user_id(self, user_id: str) -> str:
        """The pseudonym of one id: what the collector stores for it, what the API looks it up by."""
        digest = hmac.new(self._key, user_id.encode(), hashlib.sha256).hexdigest()
        return PSEUDONYM_PREFIX + digest[:PSEUDONYM_HEX_CHARS]

    def __call__(self, event: dict[str, Any]) -> dict[str, Any]:
        return {**event, "user_id": self.user_id(str(event["user_id"]))}


def ingest_transform(settings: Settings, transform: EventTransform | None = None) -> EventTransform | None:
    """What the collector, the bridge and ``simulate`` / ``replay`` straight to Kafka apply to each valid
    event: ``transform`` (if any), then the pseudonymisation when ``CLICKPULSE_PSEUDONYMIZE_KEY`` is set,
    so the Kafka key is the pseudonym."""
    if settings.pseudonymize_key is None:
        return transform
    pseudonymizer = Pseudonymizer(settings.pseudonymize_key)
    if transform is None:
        return pseudonymizer
    first = transform

    def both(event: dict[str, Any]) -> dict[str, Any]:
        return pseudonymizer(first(event))

    return both
