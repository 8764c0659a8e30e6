"""HMAC pseudonyms of user_id: stable under one key, different under another, composed after a transform."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from pydantic import SecretStr

from clickpulse.settings import Settings
from streaming.pseudonymize import Pseudonymizer, ingest_transform, pseudonymize

KEY = "k" * 32


def test_pseudonym_is_prefixed_truncated_hmac_sha256() -> None:
    expected = "u_" + hmac.new(KEY.encode(), b"user-1", hashlib.sha256).hexdigest()[:32]
    assert pseudonymize(KEY, "user-1") == expected == pseudonymize(SecretStr(KEY), "user-1")
    assert pseudonymize(KEY, "user-1") != pseudonymize(KEY, "user-2")
    assert pseudonymize(KEY, "user-1") != pseudonymize("j" * 32, "user-1")
    assert pseudonymize(KEY, "ünï") == pseudonymize(KEY.encode(), "ünï")
    with pytest.raises(ValueError, match="at least 16"):
        pseudonymize("short", "user-1")


def test_transform_replaces_only_user_id_and_leaves_the_input_alone() -> None:
    event = {"user_id": "user-1", "video_id": "v1", "session_id": "s1"}
    out = Pseudonymizer(KEY)(event)
    assert out == {**event, "user_id": pseudonymize(KEY, "user-1")}
    assert event["user_id"] == "user-1"


def test_ingest_transform_is_off_without_a_key_and_runs_last_with_one() -> None:
    def tag(event: dict) -> dict:
        return {**event, "tagged": event["user_id"]}

    assert ingest_transform(Settings()) is None
    assert ingest_transform(Settings(), tag) is tag
    both = ingest_transform(Settings(CLICKPULSE_PSEUDONYMIZE_KEY=KEY), tag)
    assert both is not None
    assert both({"user_id": "user-1"}) == {"user_id": pseudonymize(KEY, "user-1"), "tagged": "user-1"}
