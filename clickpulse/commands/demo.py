"""`clickpulse demo` (`make demo`): the main job end to end on the local stack, then a summary.

Steps: start the stack (reusing what runs); start the collector, the consumer and the API unless they
already answer; write a few hours of simulated history straight to Kafka and wait for the consumer;
materialize the Dagster assets for those hours (dimensions, hourly exports, dbt marts, recommendations),
recorded in ``$DAGSTER_HOME`` so the Dagster UI shows the runs; start live traffic through the SDK and
the collector; start the Dagster UI and the dbt docs; print a summary with the addresses. It then runs
until Ctrl-C and stops what it started. A second run reuses the history the first one wrote.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer

from clickpulse.children import Children, clickpulse_argv
from clickpulse.commands.stack import print_redis_login, print_statuses
from clickpulse.settings import PROJECT_ROOT, Settings, get_settings
from clickpulse.stack import launcher
from clickpulse.stack.processes import StackError

logger = logging.getLogger(__name__)

DAGSTER_UI_PORT = 3000
DBT_DOCS_PORT = 8080


def _section(title: str) -> None:
    typer.secho(f"\n== {title}", bold=True)


def _history_state(settings: Settings) -> Path:
    return settings.data_dir / "demo" / "history.json"


def _write_history(
    settings: Settings, backfill_hours: int, events: int, users: int, videos: int, seed: int
) -> tuple[datetime, datetime]:
    """Simulate ``backfill_hours`` of history into clicks.raw, or reuse what an earlier run wrote."""
    from clickpulse.commands.simulate import simulate
    from streaming.simulator import backfill_window

    state = _history_state(settings)
    if state.exists():
        saved = json.loads(state.read_text())
        start, end = datetime.fromisoformat(saved["start"]), datetime.fromisoformat(saved["end"])
        typer.echo(
            f"reusing the history of an earlier run: {start:%Y-%m-%d %H:00} .. {end:%H:00} UTC "
            f"({state}; delete it for fresh history)"
        )
        return start, end
    start, end = backfill_window(backfill_hours)
    truth = state.with_name("truth.json")
    state.parent.mkdir(parents=True, exist_ok=True)
    simulate(users=users, videos=videos, events=events, seed=seed, truth=truth, backfill_hours=backfill_hours)
    state.write_text(json.dumps({"start": start.isoformat(), "end": end.isoformat(), "truth": str(truth)}))
    return start, end


def _materialize(start: datetime, end: datetime, log_dir: Path) -> bool:
    """Dimensions, hourly exports and marts, recorded in DAGSTER_HOME; their output goes to a log file."""
    from orchestration.history import materialize_history

    began = time.monotonic()
    log_dir.mkdir(parents=True, exist_ok=True)
    log_file = log_dir / "dagster-runs.log"
    typer.echo(f"  (run output in {log_file})")
    with (
        open(log_file, "a") as log,
        contextlib.redirect_stdout(log),
        contextlib.redirect_stderr(log),
        _terminal_warnings_only(),
    ):
        runs = materialize_history(start, end)
        retrain = _retrain() if runs.success else None
    results = [("refresh_dimensions", runs.dimensions), ("hourly_export", runs.export), ("marts", runs.marts)]
    if retrain is not None:
        results.append(("retrain_recommendations", retrain))
    for name, result in results:
        typer.echo(f"  {name:<24} {'ok' if result.success else 'FAILED'} (run {result.run_id[:8]})")
    typer.echo(f"  took {time.monotonic() - began:.0f}s")
    return all(result.success for _, result in results)


@contextlib.contextmanager
def _terminal_warnings_only() -> Iterator[None]:
    """Dagster, dbt and Great Expectations log a lot at INFO; the terminal keeps only warnings."""
    handlers = logging.getLogger().handlers
    levels = [handler.level for handler in handlers]
    for handler in handlers:
        handler.setLevel(max(handler.level, logging.WARNING))
    try:
        yield
    finally:
        for handler, level in zip(handlers, levels, strict=True):
            handler.setLevel(level)


def _retrain() -> Any:
    """Train, evaluate and publish recommendations (the job the daily schedule runs after the marts)."""
    import dagster as dg

    from orchestration.definitions import build_defs

    with dg.DagsterInstance.get() as instance:
        job = build_defs().resolve_job_def("retrain_recommendations")
        return job.execute_in_process(instance=instance, raise_on_error=False)


def _get(client: httpx.Client, path: str) -> Any:
    response = client.get(path)
    response.raise_for_status()
    return response.json()


def _summary(settings: Settings) -> None:
    """Events, CTR, top videos and sample recommendations, read from the running API."""
    read_key = sorted(settings.read_key_set)[0]
    base = f"http://{settings.api_host}:{settings.api_port}"
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {read_key}"}, timeout=10) as client:
        engagement = _get(client, "/v1/engagement?window=all")
        overall = engagement["overall"]
        typer.echo(
            f"events counted:   {overall['impressions']:,} impressions, {overall['clicks']:,} clicks, "
            f"{overall['conversions']:,} conversions"
        )
        ctr, cr = overall.get("ctr"), overall.get("conversion_rate")
        typer.echo(f"CTR:              {ctr:.2%}" if ctr is not None else "CTR:              n/a")
        typer.echo(f"conversion rate:  {cr:.2%}" if cr is not None else "conversion rate:  n/a")
        trending = _get(client, "/v1/trending?limit=5")["items"]
        typer.echo(
            "top videos now:   "
            + ", ".join(
                f"{item['video_id']} {item.get('title') or ''} ({item['score']:.1f})".replace("  ", " ")
                for item in trending
            )
        )
        _print_recommendations(client, settings)


def _print_recommendations(client: httpx.Client, settings: Settings) -> None:
    truth = _history_state(settings).with_name("truth.json")
    if not truth.exists():
        return
    users = json.loads(truth.read_text()).get("users", {})
    busiest = sorted(users, key=lambda user: -int(users[user]))
    for user_id in busiest[:3]:
        response = client.get(f"/v1/recommendations/{user_id}?k=3")
        if response.status_code == 404:
            return
        response.raise_for_status()
        body = response.json()
        items = "; ".join(f"{i['video_id']} ({i['reason']})" for i in body["items"])
        typer.echo(f"recs {user_id:<10} [{body['model_version']}] {items}")


def demo(
    backfill_hours: Annotated[int, typer.Option(min=1, help="Hours of simulated history.")] = 3,
    events: Annotated[int, typer.Option(min=100, help="Events in the simulated history.")] = 30_000,
    users: Annotated[int, typer.Option(min=1)] = 2_000,
    videos: Annotated[int, typer.Option(min=1)] = 300,
    seed: Annotated[int, typer.Option(help="Simulator seed.")] = 7,
    live_rate: Annotated[
        float, typer.Option(min=0, help="Live events/s through the collector; 0 = none.")
    ] = 20,
    ui: Annotated[bool, typer.Option(help="Start the Dagster UI and serve the dbt docs.")] = True,
    wait: Annotated[
        bool, typer.Option(help="Keep running until Ctrl-C (--no-wait: summary, then stop).")
    ] = True,
) -> None:
    """Start the stack and every component, run the main job end to end, print a summary."""
    settings = get_settings()
    for noisy in ("httpx", "dagster"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    dagster_home = Path(os.environ.setdefault("DAGSTER_HOME", str(settings.data_dir / "dagster")))
    dagster_home.mkdir(parents=True, exist_ok=True)
    if not (dagster_home / "dagster.yaml").exists():
        shutil.copy(PROJECT_ROOT / "orchestration" / "dagster.yaml", dagster_home / "dagster.yaml")
    children = Children(settings.data_dir / "demo" / "logs")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        _run(settings, children, backfill_hours, events, users, videos, seed, live_rate, ui)
        if wait:
            typer.secho("\nrunning; Ctrl-C stops what this demo started", fg="green")
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        typer.echo("stopping")
    except (StackError, RuntimeError) as exc:
        typer.secho(f"demo failed: {exc}", fg="red", err=True)
        raise typer.Exit(1) from exc
    finally:
        children.stop_all()


def _run(
    settings: Settings,
    children: Children,
    backfill_hours: int,
    events: int,
    users: int,
    videos: int,
    seed: int,
    live_rate: float,
    ui: bool,
) -> None:
    from streaming.kafka_io import client_config, wait_caught_up

    _section("stack")
    print_statuses(launcher.up(settings))
    print_redis_login(settings)

    _section("components")
    collector = f"http://{settings.collector_host}:{settings.collector_port}"
    api = f"http://{settings.api_host}:{settings.api_port}"
    metrics = f"http://127.0.0.1:{settings.consumer_metrics_port}/metrics"
    for name, args, health in (
        ("collector", ["collector"], f"{collector}/healthz"),
        ("consumer", ["consumer"], metrics),
        ("api", ["api"], f"{api}/healthz"),
    ):
        child = children.start(name, clickpulse_argv(*args), health)
        typer.echo(f"  {name:<10} {'reused' if child.reused else 'started'}  (log {child.log_file or '-'})")

    _section(f"history: {backfill_hours} h of simulated events into {settings.topic_raw}")
    start, end = _write_history(settings, backfill_hours, events, users, videos, seed)
    typer.echo("waiting for the consumer to catch up ...")
    wait_caught_up(client_config(settings), settings.consumer_group, settings.topic_raw, timeout_s=600)

    _section(f"Dagster: dimensions, exports and marts for {start:%H:00}..{end:%H:00} UTC")
    if not _materialize(start, end, children.log_dir):
        raise RuntimeError("a Dagster run failed; open the Dagster UI or .data/dagster for its logs")

    if live_rate > 0:
        children.start(
            "live-traffic",
            clickpulse_argv(
                "simulate",
                "--to",
                "collector",
                "--rate",
                str(live_rate),
                "--events",
                "10000000",
                "--seed",
                str(seed + 1),
            ),
            None,
        )
        typer.echo(f"\nlive traffic: {live_rate:g} events/s through the SDK and the collector")

    if ui:
        _start_uis(children)

    time.sleep(1.5)
    _section("summary")
    _summary(settings)
    read_key = sorted(settings.read_key_set)[0]
    typer.echo(f"\ndashboard:  {api}/dashboard?key={read_key}")
    typer.echo(f"player:     {api}/player?key={read_key}")
    typer.echo(f"API docs:   {api}/docs")
    if ui:
        typer.echo(f"Dagster UI: http://127.0.0.1:{DAGSTER_UI_PORT}")
        typer.echo(f"dbt docs:   http://127.0.0.1:{DBT_DOCS_PORT}")
    typer.echo(f"logs:       {children.log_dir}")
    typer.echo(f"finished at {datetime.now(UTC):%H:%M:%S} UTC")


def _start_uis(children: Children) -> None:
    bin_dir = Path(sys.executable).parent
    dbt_dir = PROJECT_ROOT / "dbt_project"
    dagster = children.start(
        "dagster-ui",
        [
            str(bin_dir / "dagster"),
            "dev",
            "-w",
            str(PROJECT_ROOT / "workspace.yaml"),
            "-p",
            str(DAGSTER_UI_PORT),
            "-h",
            "127.0.0.1",
        ],
        f"http://127.0.0.1:{DAGSTER_UI_PORT}/server_info",
        timeout_s=180,
    )
    typer.echo(f"  dagster-ui {'reused' if dagster.reused else 'started'}")
    dbt = [str(bin_dir / "dbt"), "--quiet"]
    dirs = ["--project-dir", str(dbt_dir), "--profiles-dir", str(dbt_dir)]
    docs = (
        children.start(
            "dbt-docs",
            [*dbt, "docs", "serve", *dirs, "--port", str(DBT_DOCS_PORT), "--no-browser"],
            f"http://127.0.0.1:{DBT_DOCS_PORT}/",
            timeout_s=300,
        )
        if _docs_generated(dbt, dirs)
        else None
    )
    if docs is not None:
        typer.echo(f"  dbt-docs   {'reused' if docs.reused else 'started'}")


def _docs_generated(dbt: list[str], dirs: list[str]) -> bool:
    import subprocess

    result = subprocess.run([*dbt, "docs", "generate", *dirs], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        logger.warning("dbt docs generate failed:\n%s", result.stdout[-2000:])
    return result.returncode == 0
