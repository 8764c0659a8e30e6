"""Kafka client configuration shared by the collector, the bridge, the consumer, the simulator, the
Dagster export and the stack's admin calls.

``client_config`` is the one place where the address and the TLS/SASL settings (``clickpulse.kafka_security``)
enter a client's configuration; every producer, consumer and admin client ClickPulse creates starts from it.
One place also decides delivery semantics: producers are idempotent with acks=all; consumers store offsets
by hand (only after the sink wrote) and let librdkafka commit what was stored.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Final

from clickpulse.settings import Settings

logger = logging.getLogger(__name__)
_rdkafka_logger = logging.getLogger("rdkafka")

KafkaTarget = str | Mapping[str, Any]
"""What the offset and topic helpers connect to: a ``client_config`` (anything that may need TLS/SASL), or
a bare bootstrap string (the local stack's plaintext listener, tests)."""

# librdkafka error names that mean the settings are wrong, not that the network hiccuped.
_CREDENTIAL_ERRORS: Final = frozenset({"_AUTHENTICATION", "_SSL", "SASL_AUTHENTICATION_FAILED"})
_CHECK_SLICE_S: Final = 0.5


class KafkaCredentialsError(RuntimeError):
    """The brokers refused this client's TLS/SASL settings; retrying will not help."""


def client_config(settings: Settings, **overrides: Any) -> dict[str, Any]:
    """``bootstrap.servers``, the security properties and the log bridge: the base of every client."""
    config: dict[str, Any] = {
        "bootstrap.servers": settings.kafka_bootstrap_servers,
        **settings.kafka_security(),
        "logger": _rdkafka_logger,
        "error_cb": log_client_error,
    }
    config.update(overrides)
    return config


def log_client_error(error: Any) -> None:
    """librdkafka's error callback: credential and TLS failures at ERROR with what to check, others as
    warnings (the client retries those by itself)."""
    if error.name() in _CREDENTIAL_ERRORS:
        logger.error(
            "Kafka refused the connection's credentials or TLS settings (%s); check CLICKPULSE_KAFKA_"
            "SECURITY_PROTOCOL, CLICKPULSE_KAFKA_SASL_* and CLICKPULSE_KAFKA_SSL_CA_LOCATION",
            error.str(),
        )
    else:
        logger.warning("kafka client error: %s", error.str())


def as_client_config(kafka: KafkaTarget, **overrides: Any) -> dict[str, Any]:
    """A helper's client configuration: a ``client_config`` as given, or a bare bootstrap string."""
    base: dict[str, Any] = (
        {"bootstrap.servers": kafka, "logger": _rdkafka_logger} if isinstance(kafka, str) else dict(kafka)
    )
    base.update(overrides)
    return base


def check_credentials(kafka: KafkaTarget, timeout_s: float = 10.0) -> bool:
    """Ask for metadata: True when the brokers answered, False when none could be reached in time (the
    clients keep retrying then), ``KafkaCredentialsError`` as soon as they refuse the TLS/SASL settings, so
    a wrong password stops a component at start with a clear message instead of a silent retry loop."""
    import time

    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    refused: list[str] = []

    def remember(error: Any) -> None:
        if error.name() in _CREDENTIAL_ERRORS:
            refused.append(error.str())

    config = as_client_config(kafka, error_cb=remember)
    admin = AdminClient(config)
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            admin.list_topics(timeout=max(0.1, min(_CHECK_SLICE_S, deadline - time.monotonic())))
            return True
        except KafkaException:
            admin.poll(0)  # serves the error callback
        if refused:
            raise KafkaCredentialsError(
                f"Kafka at {config['bootstrap.servers']} refused the credentials or TLS settings: "
                f"{refused[0]} "
                "(check CLICKPULSE_KAFKA_SECURITY_PROTOCOL, CLICKPULSE_KAFKA_SASL_MECHANISM, "
                "CLICKPULSE_KAFKA_SASL_USERNAME / _PASSWORD, CLICKPULSE_KAFKA_SSL_CA_LOCATION)"
            )
        if time.monotonic() >= deadline:
            return False


def producer_config(settings: Settings, **overrides: Any) -> dict[str, Any]:
    """Idempotent producer: retries never duplicate or reorder records within a partition."""
    config = client_config(settings)
    config.update(
        {
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "compression.type": "lz4",
            "batch.size": 512 * 1024,
            "queue.buffering.max.messages": 200_000,
            "message.timeout.ms": 30_000,
        }
    )
    config.update(overrides)
    return config


def consumer_config(settings: Settings, group_id: str, **overrides: Any) -> dict[str, Any]:
    """Manual offset store: an offset is stored only once its record reached every sink."""
    config = client_config(settings)
    config.update(
        {
            "group.id": group_id,
            "enable.auto.commit": True,
            "auto.commit.interval.ms": 1000,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "partition.assignment.strategy": "cooperative-sticky",
            "fetch.min.bytes": 1,
            "fetch.wait.max.ms": 50,
        }
    )
    config.update(overrides)
    return config


def _kafka_error(exc: BaseException) -> Any:
    """The ``KafkaError`` a ``KafkaException`` carries, or None (other exceptions, or one raised with a
    plain message)."""
    from confluent_kafka import KafkaError

    error = exc.args[0] if exc.args else None
    return error if isinstance(error, KafkaError) else None


def error_code(exc: BaseException) -> int | None:
    """The ``KafkaError`` code a ``KafkaException`` carries, or None for anything else."""
    error = _kafka_error(exc)
    return None if error is None else int(error.code())


def is_transient(exc: BaseException) -> bool:
    """An error a just-started or rebalancing cluster gives for a moment: librdkafka's retriable ones, a
    bootstrap connection replaced mid-request, transport and timeouts, no controller yet, a group
    coordinator that moved or is loading. Worth asking again; anything else is not."""
    from confluent_kafka import KafkaError

    error = _kafka_error(exc)
    if error is None:
        return False
    return error.retriable() or error.code() in {
        KafkaError._DESTROY_BROKER,
        KafkaError._TRANSPORT,
        KafkaError._TIMED_OUT,
        KafkaError.NOT_CONTROLLER,
        KafkaError.REQUEST_TIMED_OUT,
        KafkaError.NOT_COORDINATOR,
        KafkaError.COORDINATOR_NOT_AVAILABLE,
        KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
    }


def admin_config(settings: Settings) -> dict[str, Any]:
    return client_config(settings)


def end_offsets(kafka: KafkaTarget, topic: str) -> dict[int, int]:
    """The high watermark (next offset to be written) of every partition of ``topic``."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(as_client_config(kafka, **{"group.id": "clickpulse.probe"}))
    try:
        meta = consumer.list_topics(topic, timeout=10).topics[topic]
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in meta.partitions
        }
    finally:
        consumer.close()


def committed_offsets(kafka: KafkaTarget, group: str, topic: str) -> dict[int, int]:
    """The offsets ``group`` committed on ``topic`` (negative where it committed none)."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(as_client_config(kafka, **{"group.id": group, "enable.auto.commit": False}))
    try:
        meta = consumer.list_topics(topic, timeout=10).topics[topic]
        tps = consumer.committed([TopicPartition(topic, p) for p in meta.partitions], timeout=10)
        return {tp.partition: tp.offset for tp in tps}
    finally:
        consumer.close()


def group_lag(kafka: KafkaTarget, group: str, topic: str) -> int:
    """Records of ``topic`` that ``group`` has not committed yet, over all partitions."""
    ends = end_offsets(kafka, topic)
    done = committed_offsets(kafka, group, topic)
    return sum(max(0, end - max(done.get(p, 0), 0)) for p, end in ends.items())


def wait_caught_up(kafka: KafkaTarget, group: str, topic: str, timeout_s: float = 90) -> None:
    """Block until ``group``'s committed offsets reach the current end of every partition of ``topic``."""
    import time

    ends = end_offsets(kafka, topic)
    deadline = time.monotonic() + timeout_s
    last: dict[int, int] = {}
    while time.monotonic() < deadline:
        last = committed_offsets(kafka, group, topic)
        if all(last.get(p, -1) >= end for p, end in ends.items() if end > 0):
            return
        time.sleep(0.5)
    raise TimeoutError(f"group {group} did not catch up on {topic}: committed {last}, end {ends}")
