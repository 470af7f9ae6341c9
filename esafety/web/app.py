"""The web app: each slice's pages and ``/api/v1`` routes, behind one permission check.

Each slice exposes ``router: APIRouter`` in its ``web.py``; they are included here. Pages
live at plain paths (``/people``), JSON under ``/api/v1/…``; the OpenAPI document at
``/api/v1/openapi.json`` describes the JSON routes only.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles

import esafety
from esafety import scheduler
from esafety.filtering.blockpage import BlockPageMiddleware
from esafety.installation import Installation
from esafety.web.errors import LastResortMiddleware, install_error_handlers
from esafety.web.security_headers import SecurityHeadersMiddleware

__all__ = ["SLICE_ROUTERS", "create_app"]

STATIC = Path(__file__).parent / "static"

#: Modules whose ``router`` is included, in this order; a slice not written yet is skipped.
SLICE_ROUTERS = (
    "esafety.web.home",
    "esafety.security.web",
    "esafety.directory.web",
    "esafety.filtering.web",
    "esafety.filtering.overview",
    "esafety.filtering.alerts_pages",
    "esafety.web.metrics",
    "esafety.filtering.pages",
    "esafety.filtering.requests_api",
    "esafety.filtering.reports_web",
    "esafety.safeguarding.api",
    # Before the concern pages: /safeguarding/concerns/break-glass is not a concern's number.
    "esafety.safeguarding.break_glass_pages",
    "esafety.safeguarding.pages",
    "esafety.safeguarding.live",
    "esafety.safeguarding.changes_pages",
    "esafety.safeguarding.actions_pages",
    "esafety.safeguarding.chronology_pages",
    "esafety.safeguarding.trends_pages",
    "esafety.safeguarding.whisper_pages",
    "esafety.safeguarding.transfer_pages",
)


def _routers() -> list[APIRouter]:
    routers = []
    for name in SLICE_ROUTERS:
        if importlib.util.find_spec(name) is None:
            continue
        module = importlib.import_module(name)
        routers.append(module.router)
    return routers


def create_app(inst: Installation, *, run_jobs: bool = False) -> FastAPI:
    """The web app; with ``run_jobs`` it also runs the scheduler's due jobs while it serves."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        runner = asyncio.create_task(scheduler.run_forever(inst)) if run_jobs else None
        try:
            yield
        finally:
            if runner is not None:
                runner.cancel()
                with suppress(asyncio.CancelledError):
                    await runner

    app = FastAPI(
        lifespan=lifespan,
        title="esafety",
        version=getattr(esafety, "__version__", "0"),
        description="The JSON API of esafety. Authenticate with a session cookie or "
        "`Authorization: Bearer <token>` (`esafety users token create USERNAME --name LABEL`).",
        openapi_url="/api/v1/openapi.json",
        # The interactive docs pages load third-party scripts; the document is enough.
        docs_url=None,
        redoc_url=None,
    )
    app.state.inst = inst
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    for router in _routers():
        for route in router.routes:  # the OpenAPI document describes the JSON API only
            if isinstance(route, APIRoute) and not route.path.startswith("/api/"):
                route.include_in_schema = False
        app.include_router(router)
    install_error_handlers(app)
    # Innermost: a request for a name the DNS filter blocked gets the block page, never
    # the app; errors and security headers still wrap it.
    app.add_middleware(BlockPageMiddleware, inst=inst)
    app.add_middleware(LastResortMiddleware)
    app.add_middleware(SecurityHeadersMiddleware)
    return app
