"""The API application: routers behind the access check, the health check, the page."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import import_module
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.staticfiles import StaticFiles

from dharma.api.auth import authorize
from dharma.api.context import ApiContext
from dharma.api.live_state import open_live
from dharma.api.routes import ROUTE_MODULES
from dharma.streams.settings import Settings

__all__ = ["STATIC_DIR", "create_app"]

STATIC_DIR = Path(__file__).with_name("static")


def create_app(settings: Settings) -> FastAPI:
    """The API over the stores and topics ``settings`` name (connects when served)."""
    context = ApiContext(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        open_live(context)
        try:
            yield
        finally:
            for resource in reversed(list(context.resources.values())):
                close = getattr(resource, "close", None)
                if close is not None:
                    result = close()
                    if hasattr(result, "__await__"):
                        await result

    # No public document or Swagger UI (which loads its code from a CDN): only the
    # health check answers without a token, and the page's static files hold no data.
    app = FastAPI(title="Dharma Streams", version="1", lifespan=lifespan,
                  openapi_url=None, docs_url=None, redoc_url=None)
    app.state.context = context

    @app.get("/api/health", tags=["health"])
    async def health() -> dict[str, str]:
        """Liveness: answers without a token."""
        return {"status": "ok"}

    @app.get("/api/v1/openapi.json", include_in_schema=False,
             dependencies=[Depends(authorize)])
    async def openapi() -> dict[str, Any]:
        """The OpenAPI document (any role may read it)."""
        return app.openapi()

    for name in ROUTE_MODULES:
        router = import_module(f"dharma.api.routes.{name}").router
        app.include_router(router, prefix="/api/v1", dependencies=[Depends(authorize)])
    if STATIC_DIR.is_dir():
        app.mount("/", StaticFiles(directory=STATIC_DIR, html=True), name="page")
    return app
