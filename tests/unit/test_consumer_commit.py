"""The consumer's synchronous commit (on partition revoke and on close): an error is logged, never
raised, whatever the KafkaException carries."""

from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import cast

import pytest
from confluent_kafka import KafkaError, KafkaException

from streaming.consumer.app import RealtimeConsumer


class _RefusingConsumer:
    def __init__(self, exc: Exception) -> None:
        self.exc = exc
        self.calls = 0

    def commit(self, asynchronous: bool = True) -> None:
        self.calls += 1
        raise self.exc


@pytest.mark.parametrize(
    ("exc", "logged"),
    [
        (KafkaException(KafkaError(KafkaError._NO_OFFSET)), False),  # nothing stored: not an error
        (KafkaException(KafkaError(KafkaError.REBALANCE_IN_PROGRESS)), True),
        (KafkaException("broker said no"), True),  # a message, no KafkaError: used to raise AttributeError
    ],
)
def test_a_failed_commit_is_logged_not_raised(
    exc: KafkaException, logged: bool, caplog: pytest.LogCaptureFixture
) -> None:
    kafka = _RefusingConsumer(exc)
    with caplog.at_level(logging.WARNING, logger="streaming.consumer.app"):
        RealtimeConsumer._commit(cast(RealtimeConsumer, SimpleNamespace(consumer=kafka)))
    assert kafka.calls == 1
    assert ("commit failed" in caplog.text) is logged
