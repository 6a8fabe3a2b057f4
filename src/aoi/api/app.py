"""The app factory: storage, inspector, services, routers, error handlers and the inspection line."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from aoi import __version__
from aoi.api.admission import install_admission_control
from aoi.api.docs import install_offline_docs
from aoi.api.errors import install_error_handlers
from aoi.api.line import LineOptions, build_line
from aoi.api.metrics import ServiceMetrics
from aoi.api.model_follow import RegistryFollower, close_engine, load_engine
from aoi.api.models import API_PREFIX
from aoi.api.routers import catalogue, inspections, ops, products, reports, review, stats
from aoi.api.routers.deps import Line, Services
from aoi.api.services import InspectionService, ProductService
from aoi.api.settings import ServiceSettings
from aoi.detection.bundle import ModelBundle
from aoi.detection.model_registry import ModelRegistry
from aoi.detection.protocol import InspectorLike
from aoi.detection.tiling import TiledInspector
from aoi.storage import Storage

log = logging.getLogger(__name__)


LineFactory = Callable[[Services], Line]


def create_app(
    settings: ServiceSettings,
    *,
    inspector: InspectorLike | None = None,
    storage: Storage | None = None,
    line_factory: LineFactory | None = None,
) -> FastAPI:
    """Build the service. Storage is opened (migrations run) and the model loaded here, so a bad
    configuration fails at start, not at the first request. The line starts in the lifespan.

    There is always a line: HTTP uploads are inspected by it. `line_factory` None: a line with no
    sources (no hot folder, camera or demo) and `LineOptions`' default inspect workers, for uploads only.
    The inspector is wrapped once in a `TiledInspector` with `settings.tiling`: the line `build_line`
    composes inspects through it (unless it is given an inspector of its own).
    """
    storage = storage or Storage.open(settings.data_dir, settings.database_url)
    if inspector is None:
        inspector = load_engine(ModelBundle.load(settings.model_bundle), settings.engine_processes)
    tiled = TiledInspector(inspector, settings.tiling)
    metrics = ServiceMetrics()
    product_service = ProductService(storage)
    svc = Services(
        settings=settings,
        storage=storage,
        metrics=metrics,
        products=product_service,
        inspections=InspectionService(storage, tiled, settings, metrics, product_service),
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        try:  # before the line and the first request: nothing of this process is being stored yet
            storage.sweep_orphans()
        except Exception:  # housekeeping: a failed sweep must not keep the line from starting
            log.exception("orphan sweep failed; the service starts anyway")
        svc.line = (line_factory or uploads_only_line)(svc)
        svc.line.start()
        log.info("inspection line started")
        follower = None
        if settings.model_bundle is None and settings.registry_poll_s > 0:
            follower = RegistryFollower(
                ModelRegistry.in_data_dir(storage.data_dir),
                tiled,
                settings.registry_poll_s,
                load=lambda bundle: load_engine(bundle, settings.engine_processes),
            )
            follower.start()
        try:
            yield
        finally:
            if follower is not None:
                follower.stop()
            if svc.line is not None:
                log.info("stopping the inspection line (finishing accepted work)")
                svc.line.stop()
                svc.line = None
            svc.inspections.attach_line(None)
            tiled.close()
            close_engine(tiled.inspector)

    app = FastAPI(
        title="aoi line service",
        version=__version__,
        description="Real-time automated optical inspection: capture, inspect, store, review.",
        lifespan=lifespan,
        docs_url=None,  # FastAPI's pages load from CDNs; install_offline_docs serves them from here
        redoc_url=None,
    )
    install_offline_docs(app)
    app.state.services = svc
    install_error_handlers(app)
    for router in (products.router, inspections.router, stats.router, reports.router, catalogue.router, review.router):
        app.include_router(router, prefix=API_PREFIX)
    app.include_router(ops.router)
    if settings.serve_dashboard:
        try:
            from aoi.web.router import router as dashboard
        except ImportError:
            log.warning("dashboard package not available; serving the API only")
        else:
            app.include_router(dashboard)
    install_admission_control(app, svc)  # key, rate, upload line and body limits, before any body is read
    app.add_middleware(RejectionCounter, metrics=metrics)
    return app


class RejectionCounter:
    """Counts 4xx answers for /metrics (a pure ASGI wrapper: no per-request task overhead)."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def counting_send(message: Message) -> None:
            if message["type"] == "http.response.start" and 400 <= int(message["status"]) < 500:
                self.metrics.observe_rejected(int(message["status"]))
            await send(message)

        await self.app(scope, receive, counting_send)


def uploads_only_line(svc: Services) -> Line:
    """The line of an app built without a `line_factory`: no sources, HTTP uploads only."""
    return build_line(svc, LineOptions(hot_folder=False))


def services_of(app: FastAPI) -> Services:
    services: Any = app.state.services
    return services  # type: ignore[no-any-return]
