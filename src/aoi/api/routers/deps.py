"""Per-app service objects, reached from a request (no module-level singletons)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fastapi import Request, UploadFile

from aoi.api.metrics import ServiceMetrics
from aoi.api.services import InspectionService, ProductService, Upload
from aoi.api.settings import ServiceSettings
from aoi.storage import Storage


@dataclass
class Services:
    settings: ServiceSettings
    storage: Storage
    metrics: ServiceMetrics
    products: ProductService
    inspections: InspectionService
    line: Any = None
    extra: dict[str, Any] = field(default_factory=dict)


def services(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


def read_upload(upload: UploadFile) -> Upload:
    """Read an UploadFile synchronously (routes run in the threadpool, off the event loop)."""
    upload.file.seek(0)
    return Upload(upload.file.read(), upload.filename or "")
