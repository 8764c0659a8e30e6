"""``clickpulse simulate`` and ``clickpulse replay``: synthetic or recorded traffic into the pipeline.

Three ways to run the simulator: live (event_time follows the wall clock, paced by ``--rate``), a
backfill (``--backfill-hours H``: the last H closed hours straight into Kafka with event_time as the
record timestamp), or to a file (``--out``), which ``replay --backfill`` can send later.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from clickpulse.settings import Settings, get_settings
from streaming.kafka_io import client_config
from streaming.pseudonymize import ingest_transform
from streaming.replay import (
    CollectorUnavailableError,
    DeliveryReport,
    read_ndjson,
    throttle,
    write_to_collector,
    write_to_kafka,
)
from streaming.simulation.truth import Recounter, Truth
from streaming.simulator import SimulatedRecord, SimulationConfig, Simulator, backfill_window

logger = logging.getLogger(__name__)

app = typer.Typer(help="Generate or replay click traffic.", no_args_is_help=True)


class Target(StrEnum):
    kafka = "kafka"
    collector = "collector"


def _parse_start(value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise typer.BadParameter(f"not an RFC 3339 timestamp: {value!r}", param_hint="--start") from exc
    if moment.tzinfo is None:
        raise typer.BadParameter("needs a timezone, e.g. 2024-05-01T00:00:00Z", param_hint="--start")
    return moment.astimezone(UTC)


def format_summary(truth: Truth, report: DeliveryReport | None = None) -> str:
    """The end-of-run summary both commands print."""
    totals = truth.to_dict()["totals"]
    lines = [
        f"events sent:      {totals['sent']}",
        f"  valid (unique): {totals['valid']}",
        f"  duplicates:     {totals['duplicates']}",
        f"  malformed:      {totals['malformed']}",
        f"  late:           {totals['late']} ({totals['late_beyond_lateness']} beyond the allowed lateness)",
        f"distinct users:   {totals['distinct_users']}",
        f"distinct videos:  {totals['distinct_videos']}",
        f"time range:       {totals['first_event_time']} .. {totals['last_event_time']}",
        "top videos by clicks: "
        + (", ".join(f"{video} ({clicks})" for video, clicks in truth.top_videos(5)) or "none"),
    ]
    if report is not None:
        lines.append(f"delivered:        {report.delivered} of {report.produced} (failed {report.failed})")
        lines.extend(f"  error: {error}" for error in report.errors)
    return "\n".join(lines)


def _write_ndjson(records: Iterable[SimulatedRecord], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        for record in records:
            handle.write(record.payload)
            handle.write(b"\n")


def _send(
    records: Iterable[Any], *, to: Target, settings: Settings, topic: str | None, backfill: bool
) -> DeliveryReport:
    if to is Target.kafka:
        # Straight to Kafka: the collector's transform (user_id pseudonymisation when the key is set) here.
        config = client_config(settings, **{"client.id": "clickpulse-simulate"})
        target = topic or settings.topic_raw
        return write_to_kafka(records, config, target, backfill, transform=ingest_transform(settings))
    write_key = next(iter(sorted(settings.write_key_set)), "")
    try:
        return write_to_collector(
            records,
            endpoint=f"http://{settings.collector_host}:{settings.collector_port}",
            write_key=write_key,
        )
    except CollectorUnavailableError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc


def _finish(report: DeliveryReport | None) -> None:
    if report is not None and not report.ok:
        raise typer.Exit(1)


@app.command("simulate")
def simulate(
    users: Annotated[int, typer.Option(min=1, help="Number of users.")] = 1000,
    videos: Annotated[int, typer.Option(min=1, help="Number of videos in the catalog.")] = 200,
    events: Annotated[
        int, typer.Option(min=0, help="Records to send, duplicates and malformed included.")
    ] = 10_000,
    rate: Annotated[
        float, typer.Option(min=0, help="Events per second when sending live; 0 = unthrottled.")
    ] = 0.0,
    seed: Annotated[int, typer.Option(help="Random seed; same seed, same traffic.")] = 42,
    truth: Annotated[Path | None, typer.Option(help="Write the ground-truth JSON here.")] = None,
    out: Annotated[Path | None, typer.Option(help="Write NDJSON here instead of sending.")] = None,
    dimensions_dir: Annotated[
        Path | None,
        typer.Option(help="Where video_catalog.csv / user_profiles.csv go [default: .data/dimensions]."),
    ] = None,
    backfill_hours: Annotated[
        int | None,
        typer.Option(min=1, help="Generate the last H closed hours; Kafka timestamps = event_time."),
    ] = None,
    start: Annotated[
        str | None,
        typer.Option(help="With --out and no backfill: first event_time (RFC 3339) for repeatable files."),
    ] = None,
    hours: Annotated[
        int, typer.Option(min=1, help="With --out and no backfill: hours the events span.")
    ] = 24,
    late_share: Annotated[float, typer.Option(min=0, max=1, help="Share of events sent late.")] = 0.02,
    duplicate_share: Annotated[float, typer.Option(min=0, max=1, help="Share of records re-sent.")] = 0.01,
    malformed_share: Annotated[float, typer.Option(min=0, max=1, help="Share of malformed records.")] = 0.005,
    to: Annotated[
        Target, typer.Option(help="Where to send: Kafka directly or through the collector.")
    ] = Target.kafka,
    topic: Annotated[str | None, typer.Option(help="Kafka topic [default: clicks.raw].")] = None,
) -> None:
    """Generate synthetic click traffic with a ground truth to check the pipeline against."""
    settings = get_settings()
    if backfill_hours is not None and to is Target.collector and out is None:
        raise typer.BadParameter(
            "a backfill writes straight to Kafka (the collector stamps now)", param_hint="--to"
        )
    live = backfill_hours is None and out is None
    if backfill_hours is not None:
        window_start, window_end = backfill_window(backfill_hours)
    elif start is not None:
        window_start = _parse_start(start)
        window_end = window_start + timedelta(hours=hours)
    else:
        window_start, window_end = backfill_window(hours)
    try:
        config = SimulationConfig(
            users=users,
            videos=videos,
            events=events,
            seed=seed,
            start=window_start,
            end=window_end,
            late_share=late_share,
            duplicate_share=duplicate_share,
            malformed_share=malformed_share,
            allowed_lateness_minutes=max(15, settings.allowed_lateness_minutes),
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    simulator = Simulator(config, wall_clock=time.time if live else None)
    written = simulator.write_dimensions(dimensions_dir or settings.dimensions_dir)
    typer.echo(f"dimensions: {', '.join(str(path) for path in written)}")

    report: DeliveryReport | None = None
    started = time.monotonic()
    if out is not None:
        _write_ndjson(simulator, out)
        typer.echo(f"wrote {out}")
    else:
        records = throttle(simulator, rate) if live else iter(simulator)
        report = _send(records, to=to, settings=settings, topic=topic, backfill=backfill_hours is not None)
    elapsed = time.monotonic() - started
    if truth is not None:
        simulator.write_truth(truth)
        typer.echo(f"truth: {truth}")
    typer.echo(format_summary(simulator.truth, report))
    typer.echo(
        f"elapsed:          {elapsed:.1f}s ({simulator.truth.sent / max(elapsed, 1e-9):,.0f} records/s)"
    )
    _finish(report)


def _counted(records: Iterable[Any], recounter: Recounter) -> Iterator[Any]:
    for record in records:
        recounter.add(record.event)
        yield record


@app.command("replay")
def replay(
    file: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help="NDJSON file, one payload per line.")
    ],
    backfill: Annotated[
        bool, typer.Option(help="Use each event's event_time as the Kafka timestamp (Kafka only).")
    ] = False,
    rate: Annotated[float, typer.Option(min=0, help="Records per second; 0 = unthrottled.")] = 0.0,
    to: Annotated[
        Target, typer.Option(help="Where to send: Kafka directly or through the collector.")
    ] = Target.kafka,
    topic: Annotated[str | None, typer.Option(help="Kafka topic [default: clicks.raw].")] = None,
) -> None:
    """Send a recorded NDJSON file (e.g. from ``simulate --out``) as it was recorded, bad lines included."""
    settings = get_settings()
    if backfill and to is Target.collector:
        raise typer.BadParameter(
            "a backfill writes straight to Kafka (the collector stamps now)", param_hint="--to"
        )
    recounter = Recounter(allowed_lateness_minutes=max(15, settings.allowed_lateness_minutes))
    records = _counted(read_ndjson(file), recounter)
    started = time.monotonic()
    report = _send(throttle(records, rate), to=to, settings=settings, topic=topic, backfill=backfill)
    elapsed = time.monotonic() - started
    typer.echo(format_summary(recounter.truth, report))
    typer.echo(f"elapsed:          {elapsed:.1f}s")
    _finish(report)
