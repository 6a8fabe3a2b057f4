"""The live line inside `aoi serve`: the capture pipeline wired to the results database.

Sources: the hot folder `<data dir>/inbox/` (on unless `--no-hot-folder`), an OpenCV camera or video
(optional) and the synthetic demo feeder (`--demo`); and HTTP uploads, which the API hands to the same
line (`LinePipeline.submit`). Results go through `DatabaseSink`; recipes come from the product table.
Queue depths and dropped frames are exposed on /metrics.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from aoi.api.metrics import ServiceMetrics
from aoi.api.routers.deps import Services
from aoi.detection.protocol import InspectorLike
from aoi.detection.tiling import TiledInspector
from aoi.pipeline import (
    DemoSource,
    HotFolderSource,
    LinePipeline,
    PipelineConfig,
    ProductRecipe,
    TemplateOrigin,
    UnknownProductError,
    UploadExtras,
    VideoSource,
)
from aoi.schema import DEFAULT_PX_PER_MM, InspectionFailure, InspectionResult
from aoi.storage import Storage
from aoi.storage.products import ProductRepository
from aoi.storage.recorder import DatabaseSink
from aoi.storage.records import StoredInspection

log = logging.getLogger(__name__)

INBOX_DIR_NAME = "inbox"
DEMO_PRODUCT = "demo"


@dataclass(frozen=True)
class LineOptions:
    """What `aoi serve` attaches to the line. `camera`: a device index, video file or stream URL.

    `inspect_workers` (`--workers`): the line's inspect threads, the one CPU budget of the process: hot
    folder, camera, demo and HTTP uploads are all inspected by them. `inspect_queue`: images accepted
    and waiting for a worker; an upload that finds it full for `ServiceSettings.upload_wait_s` is a 503.
    """

    hot_folder: bool = True
    camera: str | None = None
    camera_product: str | None = None
    camera_max_fps: float | None = None
    demo: bool = False
    demo_rate_hz: float = 2.0
    inspect_workers: int = 2
    inspect_queue: int = PipelineConfig.inspect_queue
    stop_timeout_s: float = 60.0


class DatabaseTemplateProvider:
    """The pipeline's `TemplateProvider` over the product table and the image store."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    def recipe(self, product: str) -> ProductRecipe:
        with self.storage.db.session() as session:
            found = ProductRepository(session).get(product)
        if found is None:
            raise UnknownProductError(f"unknown product {product!r}; register it with POST /api/v1/products")
        return self.storage.recipe(found)


class MeteredSink:
    """Counts what the pipeline stores in /metrics, then delegates to the database sink."""

    def __init__(self, sink: DatabaseSink, metrics: ServiceMetrics) -> None:
        self.sink = sink
        self.metrics = metrics

    def store(
        self,
        result: InspectionResult,
        test_image: np.ndarray,
        template: TemplateOrigin,
        source_key: str,
        *,
        upload: UploadExtras | None = None,
    ) -> str | StoredInspection:
        started = time.perf_counter()
        stored = self.sink.store(result, test_image, template, source_key, upload=upload)
        source = self.sink.source_of(source_key, upload)
        total_ms = float(result.timings_ms.get("total", 0.0))
        self.metrics.observe_inspection(result.verdict.value, source, total_ms / 1000.0 + time.perf_counter() - started)
        return stored

    def already_done(self, source_key: str) -> bool:
        return self.sink.already_done(source_key)

    def store_failure(self, failure: InspectionFailure, source_key: str) -> str | None:
        return self.sink.store_failure(failure, source_key)


class ServiceLine:
    """Adapter between the app lifespan (start/stop/health) and `LinePipeline`.

    `owned`: a tiled inspector only this line uses, closed once the line has stopped.
    """

    def __init__(self, pipeline: LinePipeline, stop_timeout_s: float, owned: TiledInspector | None = None) -> None:
        self.pipeline = pipeline
        self.stop_timeout_s = stop_timeout_s
        self.owned = owned

    def start(self) -> None:
        self.pipeline.start()

    def stop(self) -> None:
        self.pipeline.stop(self.stop_timeout_s)
        if self.owned is not None:
            self.owned.close()

    def health(self) -> dict[str, Any]:
        snapshot = self.pipeline.metrics()
        return {"running": snapshot["running"], "in_flight": snapshot["in_flight"], "counts": snapshot["counts"]}


def ensure_demo_product(storage: Storage) -> None:
    """Register the `demo` product once (a synthetic template), so the demo line shows up per product."""
    with storage.db.session() as session:
        if ProductRepository(session).get(DEMO_PRODUCT) is not None:
            return
    import cv2

    from aoi.api.services import ProductService, Upload  # local: only the demo needs it
    from aoi.data.synthetic import generate_template

    template = generate_template(np.random.default_rng(0))
    ok, encoded = cv2.imencode(".png", template)
    if ok:
        upload = Upload(encoded.tobytes(), "demo-template.png")
        ProductService(storage).create(DEMO_PRODUCT, DEFAULT_PX_PER_MM, None, upload)


def build_line(svc: Services, options: LineOptions, inspector: InspectorLike | None = None) -> ServiceLine:
    """Compose the pipeline for one `aoi serve` process; HTTP uploads are handed to it from now on.

    The line inspects through the service's own `TiledInspector`, the one uploads use (one tiling, one
    pool of tile threads), when `inspector` is None or the engine that one wraps; any other inspector
    (a test double) is wrapped with the same `ServiceSettings.tiling` and closed with the line.
    """
    storage = svc.storage
    shared = svc.inspections.inspector
    owned: TiledInspector | None = None
    if inspector is None or inspector is shared or inspector is shared.inspector:
        tiled = shared
    else:
        tiled = owned = TiledInspector(inspector, svc.settings.tiling)
    config = PipelineConfig(
        inspect_workers=options.inspect_workers,
        inspect_queue=options.inspect_queue,
        px_per_mm=svc.settings.default_px_per_mm,
        line_name=svc.settings.line_name,
    )
    sink = MeteredSink(storage.sink(), svc.metrics)
    pipeline = LinePipeline(tiled, sink, DatabaseTemplateProvider(storage), config)
    if options.hot_folder:
        inbox = Path(storage.data_dir) / INBOX_DIR_NAME
        pipeline.add_source(HotFolderSource(inbox))
        log.info("hot folder: %s (drop images there, or in <product name>/ subfolders)", inbox)
    svc.inspections.attach_line(pipeline, options.inspect_workers)
    if options.camera is not None:
        pipeline.add_source(
            VideoSource(options.camera, options.camera_product, name="camera", max_fps=options.camera_max_fps)
        )
    if options.demo:
        try:
            ensure_demo_product(storage)
        except Exception:  # the demo product only labels demo boards; the line runs without it
            log.exception("could not register the demo product")
        pipeline.add_source(DemoSource(DEMO_PRODUCT, rate_hz=options.demo_rate_hz))

    def queue_depths() -> dict[str, float]:
        return {name: float(q["depth"]) for name, q in pipeline.metrics()["queues"].items()}

    def dropped_frames() -> dict[str, float]:
        return {name: float(s["dropped"]) for name, s in pipeline.metrics()["sources"].items()}

    svc.metrics.add_gauge("queue_depth", "Items waiting in each pipeline queue.", queue_depths)
    svc.metrics.add_gauge(
        "source_dropped_frames", "Frames a live source dropped because the line was behind.", dropped_frames
    )
    return ServiceLine(pipeline, options.stop_timeout_s, owned)
