"""Which stored user id an API request means, and which id the answer shows.

With ``CLICKPULSE_PSEUDONYMIZE_KEY`` the collector stores ``u_<HMAC>`` instead of the id the player sent.
An API given the same key maps the caller's id to that pseudonym before it reads Redis, so clients (the demo
player included) keep using the ids they put in events. The rules:

- Every id is hashed, also one that already looks like a pseudonym (``u_`` + 32 hex): the collector hashes
  such an id too, so this is the only reading under which what the API looks up and what the collector
  wrote agree. A pseudonym passed in therefore finds nothing (404, or the popular-now list).
- Answers show the id the caller sent, never the pseudonym: ``user_id`` in the profile and the
  recommendations, the ``hello`` and every message of ``/v1/live?user_id=``. A read key must not turn the
  API into an oracle from raw ids to pseudonyms, which would link a person to the pseudonymised records in
  Kafka, the warehouse and the exports.

Without the key ids pass through unchanged: they are stored as sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from clickpulse.settings import Settings
from streaming.pseudonymize import Pseudonymizer


@dataclass(frozen=True)
class UserIdMapper:
    pseudonymizer: Pseudonymizer | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> UserIdMapper:
        key = settings.pseudonymize_key
        return cls(Pseudonymizer(key) if key is not None else None)

    @property
    def hides(self) -> bool:
        """Whether stored ids differ from the ids callers use (pseudonymisation on)."""
        return self.pseudonymizer is not None

    def stored(self, user_id: str) -> str:
        """The id the consumer keyed this user's data by."""
        return user_id if self.pseudonymizer is None else self.pseudonymizer.user_id(user_id)

    @staticmethod
    def shown(payload: dict[str, Any], user_id: str) -> dict[str, Any]:
        """``payload`` with its ``user_id`` (if any) replaced by the caller's id."""
        return {**payload, "user_id": user_id} if "user_id" in payload else payload
