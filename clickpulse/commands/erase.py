"""`clickpulse erase-user ID`: remove one user from Redis, the warehouse and the Parquet lake.

Prints what it removed from each store; running it again removes nothing. Kafka is not rewritten:
the user's events stay in clicks.raw / clicks.enriched / clicks.dlq until retention expires, and the
all-time unique-user HyperLogLogs cannot forget one member (the README section "Security" says what that
means and how to shorten retention).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Annotated

import typer

from clickpulse.settings import Settings, get_settings

logger = logging.getLogger(__name__)

KAFKA_NOTE = (
    "kafka: not rewritten; the user's events stay in {raw}, {enriched} and {dlq} until retention "
    "expires (7 days on the local stack). A rerun of raw_click_events for an hour still in Kafka would "
    "load them again: erase again after such a backfill, or wait for retention."
)
HLL_NOTE = (
    "unique-user counts: hourly/daily HyperLogLogs forget the user when they expire (49 h / 8 d); the "
    "all-time HyperLogLog per video cannot remove one member and keeps counting the user, anonymously."
)


@dataclass
class StoreReport:
    """What one store lost: (what, count) rows, or a reason it was skipped."""

    store: str
    items: list[tuple[str, int]] = field(default_factory=list)
    unit: str = "rows"
    skipped: str | None = None

    @property
    def total(self) -> int:
        return sum(n for _, n in self.items)


def erase_redis(settings: Settings, user_id: str) -> StoreReport:
    from streaming.erasure import erase_user
    from streaming.keyspace import Keyspace
    from streaming.redis_conn import RedisRouter
    from streaming.redis_roles import Role

    router = RedisRouter.from_settings(settings, Role.ADMIN)
    try:
        result = erase_user(router, Keyspace.from_settings(settings), user_id)
    finally:
        router.close()
    items = [(key, 1) for keys in result.deleted.values() for key in keys]
    return StoreReport("redis", items, unit="keys")


def erase_warehouse(settings: Settings, user_id: str) -> StoreReport:
    from orchestration import erasure

    if settings.env == "prod":
        from google.cloud import bigquery

        if not settings.bq_project:
            return StoreReport("bigquery", skipped="CLICKPULSE_BQ_PROJECT is not set")
        client = bigquery.Client(project=settings.bq_project, location=settings.bq_location)
        results = erasure.erase_user_bigquery(
            client,
            settings.bq_project,
            settings.bq_raw_dataset,
            [settings.bq_raw_dataset, settings.bq_dataset],
            user_id,
        )
        return StoreReport(f"bigquery {settings.bq_project}", [(r.table, r.rows) for r in results])

    from orchestration.warehouse import DuckDBWarehouse

    path = settings.duckdb_path
    if not path.exists():
        return StoreReport(f"duckdb {path}", skipped="no warehouse file yet")
    with DuckDBWarehouse(path=str(path)).connect() as connection:
        results = erasure.erase_user_duckdb(connection, user_id)
    return StoreReport(f"duckdb {path}", [(r.table, r.rows) for r in results])


def erase_lake(settings: Settings, user_id: str) -> StoreReport:
    from orchestration import erasure
    from orchestration.lake import LakeResource

    if settings.env == "prod" and settings.gcs_bucket:
        root = f"gs://{settings.gcs_bucket}/lake"
    else:
        root = str(settings.lake_dir)
        if not settings.lake_dir.exists():
            return StoreReport(f"lake {root}", skipped="no lake folder yet")
    fs, base = LakeResource(root=root).filesystem()
    results = erasure.erase_user_lake(fs, base, user_id)
    return StoreReport(f"lake {root}", [(r.table, r.rows) for r in results])


def erase_everywhere(settings: Settings, user_id: str) -> list[StoreReport]:
    """Redis first (what the API serves), then the warehouse, then the lake."""
    return [
        erase_redis(settings, user_id),
        erase_warehouse(settings, user_id),
        erase_lake(settings, user_id),
    ]


def _print(report: StoreReport) -> None:
    if report.skipped:
        typer.echo(f"{report.store}: skipped ({report.skipped})")
        return
    typer.echo(f"{report.store}: {report.total} {report.unit} removed")
    for what, count in report.items:
        if report.unit == "keys":
            typer.echo(f"  {what}")
        else:
            typer.echo(f"  {what:<48} {count:>8}")


def erase_user(
    user_id: Annotated[str, typer.Argument(help="The user id as stored (the pseudonym, if pseudonymised).")],
    pseudonymize: Annotated[
        bool,
        typer.Option(
            "--pseudonymize",
            help="USER_ID is the raw id: hash it with CLICKPULSE_PSEUDONYMIZE_KEY first.",
        ),
    ] = False,
) -> None:
    """Remove a user from Redis, the warehouse and the lake; print what went; safe to repeat."""
    settings = get_settings()
    if pseudonymize:
        from streaming.pseudonymize import pseudonymize as hash_id

        if settings.pseudonymize_key is None:
            typer.secho("--pseudonymize needs CLICKPULSE_PSEUDONYMIZE_KEY", fg="red", err=True)
            raise typer.Exit(2)
        user_id = hash_id(settings.pseudonymize_key, user_id)
        typer.echo(f"erasing the pseudonym {user_id}")
    elif settings.pseudonymize_key is not None:
        from streaming.pseudonymize import is_pseudonym

        if not is_pseudonym(user_id):
            typer.secho(
                f"note: CLICKPULSE_PSEUDONYMIZE_KEY is set, so data is stored under pseudonyms; {user_id!r} "
                "is not one: add --pseudonymize if it is the raw id",
                fg="yellow",
                err=True,
            )
    from streaming.redis_conn import RedisUnavailableError
    from streaming.redis_roles import RedisAclError

    try:
        reports = erase_everywhere(settings, user_id)
    except (RedisUnavailableError, RedisAclError) as exc:
        typer.secho(f"nothing erased: {exc}", fg="red", err=True)
        raise typer.Exit(1) from exc
    for report in reports:
        _print(report)
    typer.echo(
        KAFKA_NOTE.format(raw=settings.topic_raw, enriched=settings.topic_enriched, dlq=settings.topic_dlq)
    )
    typer.echo(HLL_NOTE)
