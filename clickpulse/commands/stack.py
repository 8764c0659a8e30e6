"""Terminal front end of the stack launcher."""

from __future__ import annotations

import time

import typer

from clickpulse.settings import get_settings
from clickpulse.stack import launcher
from clickpulse.stack.processes import StackError


def print_statuses(statuses: list[launcher.ServiceStatus]) -> None:
    typer.echo(f"{'service':<14} {'address':<48} {'state':<5} {'version':<10} owner")
    for item in statuses:
        typer.echo(item.line())


def run_up(cluster: bool) -> None:
    settings = get_settings()
    began = time.monotonic()
    try:
        statuses = launcher.up(settings, cluster=cluster)
    except StackError as exc:
        typer.secho(f"stack up failed: {exc}", fg="red", err=True)
        raise typer.Exit(1) from exc
    print_statuses(statuses)
    typer.echo(f"stack ready in {time.monotonic() - began:.1f}s")
    if cluster:
        typer.echo(
            f"cluster mode: KAFKA_BOOTSTRAP_SERVERS={launcher.CLUSTER_BOOTSTRAP} "
            f"REDIS_URL={launcher.CLUSTER_REDIS_URL}"
        )


def run_down(cluster: bool) -> None:
    stopped = launcher.down(get_settings(), cluster=cluster)
    typer.echo("stopped: " + (", ".join(stopped) if stopped else "nothing this project started was running"))


def run_status() -> None:
    statuses = launcher.status(get_settings())
    print_statuses(statuses)
    if not all(s.up for s in statuses):
        raise typer.Exit(3)
