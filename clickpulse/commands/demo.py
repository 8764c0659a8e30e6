"""`clickpulse demo` (`make demo`): the main job end to end on the local stack, then a summary.

It starts the stack (reusing what runs), writes a few hours of simulated history straight to Kafka, and
prints what was sent. Components started here are stopped on Ctrl-C; a second run reuses the stack.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from clickpulse.commands.stack import print_statuses
from clickpulse.settings import get_settings
from clickpulse.stack import launcher
from clickpulse.stack.processes import StackError

logger = logging.getLogger(__name__)


def demo(
    backfill_hours: Annotated[int, typer.Option(min=1, help="Hours of simulated history.")] = 3,
    events: Annotated[int, typer.Option(min=100, help="Events in the simulated history.")] = 30_000,
    users: Annotated[int, typer.Option(min=1)] = 2_000,
    videos: Annotated[int, typer.Option(min=1)] = 300,
    seed: Annotated[int, typer.Option(help="Simulator seed.")] = 7,
) -> None:
    """Start the stack, simulate history into Kafka, print a summary."""
    from clickpulse.commands.simulate import simulate

    settings = get_settings()
    typer.secho("== stack", bold=True)
    try:
        statuses = launcher.up(settings)
    except StackError as exc:
        typer.secho(f"stack up failed: {exc}", fg="red", err=True)
        raise typer.Exit(1) from exc
    print_statuses(statuses)

    truth_path: Path = settings.data_dir / "demo" / "truth.json"
    truth_path.parent.mkdir(parents=True, exist_ok=True)
    typer.secho(
        f"\n== simulated history: {backfill_hours} h, {events:,} events -> {settings.topic_raw}", bold=True
    )
    simulate(
        users=users,
        videos=videos,
        events=events,
        seed=seed,
        truth=truth_path,
        backfill_hours=backfill_hours,
    )
