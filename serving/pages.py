"""The pages the API serves: the live dashboard, the demo player, the browser SDK and their config.

Plain files under ``serving/static`` (no build step, no CDN). The pages themselves are public; the data
they show needs a read key, which the page takes from ``?key=`` (and keeps in sessionStorage).
``GET /v1/pages/config`` (read key) tells the player where the collector is and which write key to use;
query parameters on the page override it (see the README section "Serving").
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import FileResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

from clickpulse.settings import PROJECT_ROOT, Settings
from serving import models
from serving.routes import model_response
from serving.state import ApiState, get_state

STATIC_DIR: Final = Path(__file__).resolve().parent / "static"
SDK_FILE: Final = PROJECT_ROOT / "sdk" / "js" / "src" / "clickpulse.js"
NO_CACHE: Final = {"Cache-Control": "no-cache"}


def collector_url(settings: Settings) -> str:
    if settings.api_public_collector_url:
        return settings.api_public_collector_url.rstrip("/")
    return f"http://{settings.collector_host}:{settings.collector_port}"


def player_write_key(settings: Settings) -> str:
    if settings.api_player_write_key is not None:
        return settings.api_player_write_key.get_secret_value()
    return next(iter(sorted(settings.write_key_set)), "")


def page_router() -> APIRouter:
    router = APIRouter()

    @router.get("/", include_in_schema=False)
    async def index() -> RedirectResponse:
        return RedirectResponse("/dashboard")

    @router.get("/dashboard", include_in_schema=False)
    async def dashboard() -> FileResponse:
        return FileResponse(STATIC_DIR / "dashboard.html", headers=NO_CACHE)

    @router.get("/player", include_in_schema=False)
    async def player() -> FileResponse:
        return FileResponse(STATIC_DIR / "player.html", headers=NO_CACHE)

    @router.get("/sdk/clickpulse.js", include_in_schema=False)
    async def sdk() -> Response:
        if not SDK_FILE.is_file():
            return Response(
                "// ClickPulse JS SDK not found in sdk/js/src\n", 404, media_type="text/javascript"
            )
        return FileResponse(SDK_FILE, media_type="text/javascript", headers=NO_CACHE)

    return router


def config_router() -> APIRouter:
    router = APIRouter(prefix="/v1")

    @router.get("/pages/config", response_model=models.PageConfig, summary="Settings for the pages")
    async def page_config(request: Request, state: ApiState = Depends(get_state)) -> Response:
        body = models.PageConfig(
            api_base="",
            collector_url=collector_url(state.settings),
            write_key=player_write_key(state.settings),
        )
        return model_response(body)

    return router


def static_files() -> StaticFiles:
    return StaticFiles(directory=STATIC_DIR)
