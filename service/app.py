"""The FastAPI app over an engine: the JSON API, the gallery at / and the OpenAPI docs at /docs.

`create_app(engine, folder, config)` wires the routes (`routes_items`, `routes_queries`),
the error answers (`errors`), the write guard (`auth`), the size limits and the saving
(`persistence`); `load_app(folder, config)` loads the model folder first. Endpoints are
plain `def` functions, run by FastAPI in its thread pool: each engine call reads the
snapshot it starts with, so answers stay correct while writes go on (see `service.server`
for why one process).

Example:
    >>> from fastapi.testclient import TestClient                       # doctest: +SKIP
    >>> with TestClient(load_app("models/sample")) as client:            # doctest: +SKIP
    ...     client.get("/items/food-red-apple/similar", params={"k": 5}).json()["items"][0]["item_id"]
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import fastapi_offline
from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from engine import Engine

from .auth import write_guard
from .config import ServiceConfig
from .errors import BodyLimit, error_response, install_error_handlers
from .persistence import Persister
from .routes_items import items_router
from .routes_queries import queries_router
from .schemas import WRITE_ERRORS, Health, Saved

STATIC = Path(__file__).resolve().parent / "static"
DOCS_ASSETS = Path(fastapi_offline.__file__).resolve().parent / "static"


def package_version() -> str:
    """The installed shopvec version ('unknown' when run from a source tree that was never installed)."""
    try:
        return importlib.metadata.version("shopvec")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def create_app(engine: Engine, folder: str | Path | None, config: ServiceConfig | None = None) -> FastAPI:
    """The HTTP API over `engine`; writes are saved to `folder` (on POST /save, on shutdown, every `save_every_s`).

    Args:
        engine: what the API serves; the app changes it on PUT/DELETE /items and POST /events.
        folder: the model folder writes are saved to; None runs without saving (POST /save answers 422).
        config: key, limits, CORS, save interval (default `ServiceConfig()`).

    Example:
        >>> engine = Engine.load("models/sample")                                     # doctest: +SKIP
        >>> app = create_app(engine, "models/sample", ServiceConfig(api_key="s3cret"))  # doctest: +SKIP
    """
    config = config or ServiceConfig()
    persister = Persister(engine, folder, config.save_every_s)
    version = package_version()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if engine.trained is not None:  # the model's first request would otherwise build its caches
            await run_in_threadpool(engine.trained.model.warm_up)
        persister.start()
        try:
            yield
        finally:
            await run_in_threadpool(persister.close)  # the shutdown save

    app = FastAPI(
        title="shopvec",
        version=version,
        description=(
            "Similar items, text and photo search and personalised recommendations over a shopvec model folder. "
            "Every list answer is `{\"items\": [{item_id, score, fields, source, because}]}` in the order the "
            "Python API gives; every error is `{\"error\": message}`. Writes (PUT/DELETE /items, POST /events, "
            "POST /save) need the API key when the service has one."
        ),
        lifespan=lifespan,
        docs_url=None,  # served by mount_docs from local files: the default page loads them from a CDN
    )
    app.state.engine, app.state.config, app.state.persister = engine, config, persister
    install_error_handlers(app)
    app.add_middleware(BodyLimit, max_bytes=config.max_request_bytes)
    if config.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(config.cors_origins),
            allow_methods=["GET", "POST", "PUT", "DELETE"],
            allow_headers=["Content-Type", "X-API-Key", "Authorization"],
        )
    guard = write_guard(config)

    @app.get("/health", response_model=Health, tags=["service"])
    def health() -> dict[str, Any]:
        """The service is up: items served, the personalisation model, the version, events recorded."""
        state = engine.state
        return {
            "status": "ok",
            "items": len(state.index),
            "model": state.trained.model.name if state.trained is not None else None,
            "version": version,
            "events": len(state.events),
        }

    @app.post("/save", response_model=Saved, dependencies=[Depends(guard)], responses=WRITE_ERRORS, tags=["service"])
    def save() -> dict[str, Any]:
        """Write the model folder now when there were writes since the last save; it then holds every earlier write."""
        persister.save()
        return {"saved": str(persister.folder)}

    app.include_router(items_router(engine, config, persister, guard))
    app.include_router(queries_router(engine, config, persister, guard))
    mount_gallery(app)
    mount_docs(app)
    return app


def mount_docs(app: FastAPI) -> None:
    """The interactive API docs at /docs, with Swagger UI's files served from the fastapi-offline package.

    FastAPI's default /docs page fetches Swagger UI from a CDN, so it is blank on a
    machine without internet, where shops often run this service.
    """
    app.mount("/docs-assets", StaticFiles(directory=DOCS_ASSETS), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def docs() -> Response:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} API",
            swagger_js_url="/docs-assets/swagger-ui-bundle.js",
            swagger_css_url="/docs-assets/swagger-ui.css",
            swagger_favicon_url="/docs-assets/favicon.png",
        )


def mount_gallery(app: FastAPI) -> None:
    """Serve service/static at /static and its index.html at /."""
    if STATIC.is_dir():
        app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False, response_model=None)
    def gallery() -> Response:
        page = STATIC / "index.html"
        if not page.is_file():
            missing = "the gallery is not installed (service/static/index.html is missing); the API is at /docs"
            return error_response(404, missing)
        return FileResponse(page, media_type="text/html")


def load_app(folder: str | Path, config: ServiceConfig | None = None) -> FastAPI:
    """Load the model folder and serve it; writes are saved back to it.

    Raises:
        ModelNotFoundError, FormatVersionError, DamagedModelError: the folder cannot be served (see `Engine.load`).

    Example:
        >>> app = load_app("models/sample")  # doctest: +SKIP
    """
    return create_app(Engine.load(folder), folder, config)


__all__ = ["ServiceConfig", "create_app", "load_app"]
