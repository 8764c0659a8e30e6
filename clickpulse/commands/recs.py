"""``clickpulse recs``: inspect published recommendation versions and roll back to the previous one."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import typer

from clickpulse.settings import Settings, get_settings

if TYPE_CHECKING:
    from streaming.recommendations.store import RecsStore

logger = logging.getLogger(__name__)

app = typer.Typer(
    help="Published recommendation versions: status and rollback.", no_args_is_help=True, add_completion=False
)


@app.callback()
def _recs() -> None:
    """Published recommendation versions: status and rollback."""


def _store(settings: Settings) -> RecsStore:
    from streaming.keyspace import Keyspace
    from streaming.recommendations.store import RecsStore
    from streaming.redis_conn import RedisUnavailableError, connect
    from streaming.redis_roles import RedisAclError, Role, role_url

    try:
        client = connect(role_url(settings, Role.PUBLISHER, settings.redis_url_recs))
    except (RedisUnavailableError, RedisAclError) as exc:
        typer.secho(str(exc), fg="red", err=True)
        raise typer.Exit(1) from exc
    return RecsStore(client, Keyspace.from_settings(settings), ttl_s=settings.recs_version_ttl_hours * 3600)


@app.command("rollback")
def rollback() -> None:
    """Serve the previous version again (the pointer switches back atomically)."""
    from streaming.recommendations.store import NoPreviousVersionError

    store = _store(get_settings())
    try:
        left, restored = store.rollback()
    except NoPreviousVersionError as exc:
        typer.secho(f"nothing rolled back: {exc}", fg="yellow", err=True)
        raise typer.Exit(1) from exc
    finally:
        store.client.close()
    typer.echo(f"recommendations rolled back: now serving {restored} (was {left or 'nothing'})")


@app.command("status")
def status() -> None:
    """The served and previous versions, and every published version still stored."""
    store = _store(get_settings())
    try:
        pointer = store.pointer()
        versions = store.versions()
    finally:
        store.client.close()
    typer.echo(f"current:  {pointer.current or '-'}")
    typer.echo(f"previous: {pointer.previous or '-'}")
    for info in versions:
        published = datetime.fromtimestamp(info.published_at_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")
        state = "expired" if info.ttl_s == -2 else f"expires in {max(info.ttl_s, 0) / 3600:.1f} h"
        typer.echo(
            f"  {info.version}  published {published} UTC  users={info.meta.get('users', '?')}  "
            f"ndcg@10={info.meta.get('ndcg_at_10', '?')}  {state}"
        )


@app.command("show")
def show(
    user_ids: list[str] = typer.Argument(..., help="Users to show."),
    k: int = typer.Option(5, "--k", min=1, max=100, help="Items per user."),
) -> None:
    """What the API would answer for these users: items, scores and reasons (for the demo, and debugging)."""
    from streaming.recommendations.reader import RecommendationReader
    from streaming.redis_conn import RedisRouter, RedisUnavailableError
    from streaming.redis_roles import RedisAclError, Role

    settings = get_settings()
    try:
        router = RedisRouter.from_settings(settings, Role.API)
    except (RedisUnavailableError, RedisAclError) as exc:
        typer.secho(str(exc), fg="red", err=True)
        raise typer.Exit(1) from exc
    try:
        reader = RecommendationReader.from_settings(router, settings)
        for result in reader.recommend_many(user_ids, k):
            typer.echo(f"{result.user_id} (model {result.model_version or 'none yet'}):")
            for item in result.items:
                typer.echo(f"  {item.video_id:<12} {item.score:>7.3f}  {item.reason}")
    finally:
        router.close()
