"""Terminal front end of the stack launcher."""

from __future__ import annotations

import time

import typer

from clickpulse.settings import Settings, get_settings
from clickpulse.stack import launcher, redis_acl
from clickpulse.stack.processes import StackError


def print_statuses(statuses: list[launcher.ServiceStatus]) -> None:
    typer.echo(f"{'service':<14} {'address':<48} {'state':<5} {'version':<10} owner")
    for item in statuses:
        typer.echo(item.line())


def print_redis_login(settings: Settings, cluster: bool = False) -> None:
    """How to open redis-cli by hand when the default user is off (ACL mode)."""
    line = redis_acl.manual_login(settings, settings.redis_url)
    if line is None:
        return
    typer.echo("Redis ACL mode (default user off); redis-cli as the admin user:")
    typer.echo(f"  {line}")
    if cluster:
        typer.echo(f"  {redis_acl.manual_login(settings, launcher.CLUSTER_REDIS_URL, cluster=True)}")


def run_up(cluster: bool) -> None:
    settings = get_settings()
    began = time.monotonic()
    try:
        statuses = launcher.up(settings, cluster=cluster)
    except StackError as exc:
        typer.secho(f"stack up failed: {exc}", fg="red", err=True)
        raise typer.Exit(1) from exc
    print_statuses(statuses)
    print_redis_login(settings, cluster)
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
    settings = get_settings()
    statuses = launcher.status(settings)
    print_statuses(statuses)
    print_redis_login(settings, cluster=any(s.name.startswith("redis-") for s in statuses))
    if not all(s.up for s in statuses):
        raise typer.Exit(3)
