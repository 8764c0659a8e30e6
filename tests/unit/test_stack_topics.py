"""Topic creation retries what a just-started cluster answers for a moment, and only that."""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from clickpulse.stack import topics
from streaming.kafka_io import error_code, is_transient


class ScriptedAdmin:
    """An AdminClient whose create_topics answers come from a script, one round per call."""

    def __init__(self, rounds: list[dict[str, int | None]]) -> None:
        self.rounds = rounds
        self.existing: set[str] = set()
        self.asked: list[list[str]] = []

    def list_topics(self, timeout: float) -> Any:
        return type("Metadata", (), {"topics": {name: None for name in self.existing}})()

    def create_topics(self, new_topics: list[Any], operation_timeout: float) -> dict[str, Future[None]]:
        answers = self.rounds.pop(0)
        self.asked.append([t.topic for t in new_topics])
        out: dict[str, Future[None]] = {}
        for topic in new_topics:
            future: Future[None] = Future()
            code = answers.get(topic.topic)
            if code is None:
                self.existing.add(topic.topic)
                future.set_result(None)
            else:
                future.set_exception(KafkaException(KafkaError(code)))
            out[topic.topic] = future
        return out


def use(monkeypatch: pytest.MonkeyPatch, admin: ScriptedAdmin) -> None:
    monkeypatch.setattr("confluent_kafka.admin.AdminClient", lambda _config: admin)
    monkeypatch.setattr(topics.time, "sleep", lambda _s: None)


def test_a_destroyed_broker_handle_is_retried_for_what_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    admin = ScriptedAdmin([{"a": None, "b": KafkaError._DESTROY_BROKER}, {}])
    use(monkeypatch, admin)
    assert topics.ensure_topics("127.0.0.1:1", {"a": 1, "b": 1}) == ["a", "b"]
    assert admin.asked == [["a", "b"], ["b"]]


def test_an_existing_topic_is_not_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    admin = ScriptedAdmin([{"a": KafkaError.TOPIC_ALREADY_EXISTS}])
    use(monkeypatch, admin)
    assert topics.ensure_topics("127.0.0.1:1", {"a": 1}) == []


def test_other_errors_are_raised_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    admin = ScriptedAdmin([{"a": KafkaError.INVALID_REPLICATION_FACTOR}])
    use(monkeypatch, admin)
    with pytest.raises(KafkaException):
        topics.ensure_topics("127.0.0.1:1", {"a": 1}, replication=3)
    assert len(admin.asked) == 1


def test_transient_errors_stop_being_retried_at_the_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    admin = ScriptedAdmin([{"a": KafkaError.NOT_CONTROLLER}] * 3)
    use(monkeypatch, admin)
    clock = iter([0.0, 5.0, 31.0])
    monkeypatch.setattr(topics.time, "monotonic", lambda: next(clock))
    with pytest.raises(KafkaException):
        topics.ensure_topics("127.0.0.1:1", {"a": 1}, timeout_s=30)
    assert len(admin.asked) == 2


def test_what_counts_as_transient() -> None:
    for code in (KafkaError._DESTROY_BROKER, KafkaError.NOT_CONTROLLER, KafkaError.NOT_COORDINATOR):
        assert is_transient(KafkaException(KafkaError(code)))
    assert not is_transient(KafkaException(KafkaError(KafkaError.INVALID_REPLICATION_FACTOR)))
    assert not is_transient(RuntimeError("not Kafka"))
    assert error_code(KafkaException(KafkaError(KafkaError.TOPIC_ALREADY_EXISTS))) == 36
    assert error_code(RuntimeError("not Kafka")) is None
    # A KafkaException raised with a plain message carries no KafkaError.
    assert error_code(KafkaException("commit failed")) is None
    assert error_code(KafkaException()) is None
    assert not is_transient(KafkaException("commit failed"))
