"""The `clickpulse` command. Sub-commands import their heavy dependencies only when they run."""

from __future__ import annotations

import logging

import typer

from clickpulse.lazy_commands import LazyGroup, LazySpec


class ClickPulseGroup(LazyGroup):
    lazy_commands = {
        "simulate": LazySpec(
            "clickpulse.commands.simulate",
            "simulate",
            "Synthetic traffic: live, --backfill-hours into Kafka, or --out to a file.",
        ),
        "replay": LazySpec(
            "clickpulse.commands.simulate",
            "replay",
            "Send events from an NDJSON file (through the collector, or --backfill to Kafka).",
        ),
        "api": LazySpec(
            "serving.cli",
            "api",
            "Serve the read API, live feed, dashboard and demo player (port 8000).",
        ),
        "demo": LazySpec(
            "clickpulse.commands.demo",
            "demo",
            "Start the stack, run the main job end to end, print a summary.",
        ),
        "erase-user": LazySpec(
            "clickpulse.commands.erase",
            "erase_user",
            "Remove a user from Redis, the warehouse and the lake (prints what went).",
        ),
        "recs": LazySpec(
            "clickpulse.commands.recs",
            "app",
            "Recommendation versions: status, rollback to the previous version.",
        ),
    }


app = typer.Typer(
    help="ClickPulse: real-time button-click analytics and recommendations.",
    no_args_is_help=True,
    add_completion=False,
)
stack_app = typer.Typer(help="The local Kafka + Redis stack.", no_args_is_help=True)
app.add_typer(stack_app, name="stack")


@app.callback(cls=ClickPulseGroup)
def _main(verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging.")) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


@stack_app.command("up")
def stack_up(
    cluster: bool = typer.Option(False, "--cluster", help="3 Kafka brokers + a 3-master Redis Cluster."),
) -> None:
    """Start Kafka (KRaft) and Redis unless they already answer, and create the topics."""
    from clickpulse.commands.stack import run_up

    run_up(cluster)


@stack_app.command("down")
def stack_down(
    cluster: bool = typer.Option(False, "--cluster", help="Stop only the cluster-mode services."),
) -> None:
    """Stop the services this project started (data under .data/ is kept)."""
    from clickpulse.commands.stack import run_down

    run_down(cluster)


@stack_app.command("status")
def stack_status() -> None:
    """Each service, its address, its version, and whether ClickPulse started it."""
    from clickpulse.commands.stack import run_status

    run_status()


@app.command("collector")
def collector(
    host: str | None = typer.Option(None, "--host", help="Bind address (default CLICKPULSE_COLLECTOR_HOST)."),
    port: int | None = typer.Option(None, "--port", help="Port (default CLICKPULSE_COLLECTOR_PORT, 8001)."),
    workers: int = typer.Option(1, "--workers", min=1, help="uvicorn worker processes."),
) -> None:
    """Serve POST /v1/events: validate events and write them to Kafka (clicks.raw / clicks.dlq)."""
    from clickpulse.commands.ingest import run_collector

    run_collector(host, port, workers)


@app.command("bridge")
def bridge(
    channel: str | None = typer.Option(None, "--channel", help="Redis channel (default ingest:events)."),
) -> None:
    """Forward events published on a Redis Pub/Sub channel to Kafka (at-most-once)."""
    from clickpulse.commands.ingest import run_bridge

    run_bridge(channel)


@app.command("consumer")
def consumer(
    group: str = typer.Option(
        None, "--group", help="Consumer group (default: CLICKPULSE_CONSUMER_GROUP, realtime)."
    ),
    batch_size: int = typer.Option(None, "--batch-size", min=1, help="Records per batch (default 2000)."),
    metrics_port: int = typer.Option(
        None, "--metrics-port", min=0, help="Port of /metrics (default 8002; 0 disables it)."
    ),
    from_beginning: bool = typer.Option(
        False, "--from-beginning", help="Start each assigned partition at its first offset (a replay)."
    ),
) -> None:
    """Consume clicks.raw into Redis counters, profiles and live Pub/Sub, and clicks.enriched."""
    from clickpulse.commands.consumer import run_consumer

    run_consumer(group, batch_size, metrics_port, from_beginning)


if __name__ == "__main__":
    app()
