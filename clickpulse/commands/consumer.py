"""`clickpulse consumer`: run one member of the realtime consumer group until SIGTERM or SIGINT."""

from __future__ import annotations

import logging
import signal
from types import FrameType

import typer

from clickpulse.settings import get_settings

logger = logging.getLogger(__name__)


def run_consumer(
    group: str | None, batch_size: int | None, metrics_port: int | None, from_beginning: bool
) -> None:
    from streaming.consumer import RealtimeConsumer
    from streaming.consumer.live import UserClickHook, UserClickPublisher
    from streaming.consumer.metrics import serve
    from streaming.kafka_io import KafkaCredentialsError, check_credentials, client_config
    from streaming.keyspace import Keyspace
    from streaming.recommendations.next_up import NextUpPublisher
    from streaming.recommendations.reader import RecommendationReader
    from streaming.redis_conn import Family, RedisRouter, RedisUnavailableError
    from streaming.redis_roles import RedisAclError, Role

    settings = get_settings()
    try:
        check_credentials(client_config(settings), timeout_s=5)
    except KafkaCredentialsError as exc:
        typer.secho(f"consumer cannot start: {exc}", fg="red", err=True)
        raise typer.Exit(1) from exc
    try:
        router = RedisRouter.from_settings(settings, Role.CONSUMER)
        # After each batch, every clicking user gets their clicks and refreshed next-up suggestions.
        hooks: list[UserClickHook] = [
            UserClickPublisher(router.client(Family.LIVE), Keyspace.from_settings(settings)),
            NextUpPublisher(RecommendationReader.from_settings(router, settings)),
        ]
        consumer = RealtimeConsumer(
            settings,
            group=group,
            batch_size=batch_size,
            from_beginning=from_beginning,
            router=router,
            user_click_hooks=hooks,
        )
    except (RedisUnavailableError, RedisAclError) as exc:
        typer.secho(f"consumer cannot start: {exc}", fg="red", err=True)
        raise typer.Exit(1) from exc

    def _graceful(signum: int, _frame: FrameType | None) -> None:
        logger.info("%s received: finishing the current batch", signal.Signals(signum).name)
        consumer.stop()

    signal.signal(signal.SIGTERM, _graceful)
    signal.signal(signal.SIGINT, _graceful)
    serve(settings.consumer_metrics_port if metrics_port is None else metrics_port)
    try:
        consumer.run()
    finally:
        consumer.close()
