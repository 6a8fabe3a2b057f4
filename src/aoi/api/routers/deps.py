"""Per-app service objects, reached from a request (no module-level singletons)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, Protocol, TypeVar

from fastapi import Header, Request, Response, UploadFile

from aoi.api import idempotency
from aoi.api.metrics import ServiceMetrics
from aoi.api.services import InspectionService, ProductService, Upload
from aoi.api.settings import ServiceSettings
from aoi.storage import Storage
from aoi.storage.idempotency import IdempotencyClaim

T = TypeVar("T")


class Line(Protocol):
    """The running capture pipeline as the app sees it: started after the app, stopped before it."""

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def health(self) -> dict[str, Any]: ...


@dataclass
class Services:
    settings: ServiceSettings
    storage: Storage
    metrics: ServiceMetrics
    products: ProductService
    inspections: InspectionService
    line: Line | None = None  # set while the app runs a capture line
    extra: dict[str, Any] = field(default_factory=dict)


def services(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


def read_upload(upload: UploadFile) -> Upload:
    """Read an UploadFile synchronously (routes run in the threadpool, off the event loop)."""
    upload.file.seek(0)
    return Upload(upload.file.read(), upload.filename or "")


IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias=idempotency.HEADER,
        description="optional: a retry with the same key gets the first answer (200) and stores nothing new;"
        " 1 to 255 printable ASCII characters, e.g. a UUID",
    ),
]


def mark_replay(response: Response, replayed: bool) -> None:
    """A replayed answer is 200, not 201: nothing was created by this request."""
    if replayed:
        response.status_code = 200
        response.headers[idempotency.REPLAYED_HEADER] = "true"


def create_once(
    response: Response,
    storage: Storage,
    *,
    key: str | None,
    owner: str,
    endpoint: str,
    fields: dict[str, str | float | bytes | None],
    resource: str,
    write: Callable[[IdempotencyClaim | None], T],
    load: Callable[[str], T],
) -> T:
    """What a creating request made, once per `Idempotency-Key` (`key`: the header as sent, None without it)
    and request (`endpoint` and its parsed `fields`): a retry gets what the first made, answered 200."""
    claim = idempotency.claim_for(idempotency.parse_key(key), owner, endpoint, fields)
    created, replayed = idempotency.run_once(storage, claim, resource, write, load)
    mark_replay(response, replayed)
    return created
