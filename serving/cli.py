"""``clickpulse api``: serve the read API, the live feed, the dashboard and the demo player."""

from __future__ import annotations

from typing import Annotated

import typer

from clickpulse.settings import get_settings


def api(
    host: Annotated[str | None, typer.Option(help="Bind address [default: CLICKPULSE_API_HOST].")] = None,
    port: Annotated[int | None, typer.Option(help="Port [default: CLICKPULSE_API_PORT, 8000].")] = None,
    workers: Annotated[int, typer.Option(min=1, help="uvicorn worker processes.")] = 1,
) -> None:
    """Serve the Redis-fed read API (OpenAPI at /docs), /dashboard and /player."""
    import uvicorn

    settings = get_settings()
    host = host or settings.api_host
    port = port or settings.api_port
    base = f"http://{host}:{port}"
    typer.echo(
        f"API on {base}  (docs {base}/docs, dashboard {base}/dashboard?key=<read key>, player {base}/player)"
    )
    uvicorn.run(
        "serving.app:create_app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="info",
    )
