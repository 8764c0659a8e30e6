"""Terminal front end of the ingestion services: the HTTP collector and the Redis Pub/Sub bridge."""

from __future__ import annotations

import typer

from clickpulse.settings import get_settings


def run_collector(host: str | None, port: int | None, workers: int) -> None:
    """Serve the collector with uvicorn; each worker builds its own app and producer from the env."""
    import uvicorn

    settings = get_settings()
    host = host or settings.collector_host
    port = port or settings.collector_port
    typer.echo(f"collector on http://{host}:{port}/v1/events → {settings.kafka_bootstrap_servers}")
    uvicorn.run(
        "streaming.collector.app:create_app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="info",
    )


def run_bridge(channel: str | None) -> None:
    from streaming.bridge import run_bridge as run
    from streaming.redis_conn import RedisUnavailableError
    from streaming.redis_roles import RedisAclError

    try:
        run(get_settings(), channel=channel)
    except (RedisUnavailableError, RedisAclError) as exc:
        typer.secho(f"bridge stopped: {exc}", fg="red", err=True)
        raise typer.Exit(1) from exc
