"""The small contracts the capture pipeline is built from: what a source yields, where results go.

Sources, sinks and template providers are plain objects that satisfy these Protocols; nothing
registers itself at import time: the service composes its sources and sinks explicitly (`aoi.api.line`).
The inspector the line calls is the engine's contract, `aoi.detection.protocol.InspectorLike`.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

from aoi.pipeline.capture import CaptureSettings
from aoi.pipeline.template_origin import ProductRef, TemplateOrigin
from aoi.pipeline.trace import TraceSettings
from aoi.schema import InspectionFailure, InspectionInputError, InspectionResult, Trace
from aoi.verdict import VerdictRules

if TYPE_CHECKING:  # the storage types an upload carries through the line to the database sink, untouched
    from aoi.storage.idempotency import IdempotencyClaim
    from aoi.storage.records import Product


class SourceError(Exception):
    """A source cannot run (folder not creatable, camera or stream cannot be opened)."""


class UnknownProductError(InspectionInputError):
    """An image names a product that has no registered recipe (template, calibration, rules)."""


class QueuePolicy(enum.StrEnum):
    """What a producer does when the next stage's queue is full.

    BLOCK waits (back-pressure: hot folder, upload: a board is never dropped).
    DROP_OLDEST evicts the oldest waiting frame, DROP_NEWEST discards the new one (live camera),
    and both count the drop.
    """

    BLOCK = "block"
    DROP_OLDEST = "drop_oldest"
    DROP_NEWEST = "drop_newest"


class OutcomeStatus(enum.StrEnum):
    STORED = "stored"  # inspected and stored by the sink
    FAILED = "failed"  # per-image error, recorded as an InspectionFailure
    SKIPPED = "skipped"  # the sink already holds this source_key (resume after a crash)
    DROPPED = "dropped"  # live-source frame evicted by the queue policy
    NOT_STORED = "not_stored"  # the sink raised: the source must keep the item for a retry


@dataclass(frozen=True)
class Outcome:
    """What happened to one captured image; handed to its source's `on_done` callback."""

    status: OutcomeStatus
    source_key: str
    inspection_id: str | None = None
    result: InspectionResult | None = None
    failure: InspectionFailure | None = None


@dataclass(frozen=True)
class UploadExtras:
    """What an HTTP upload brings through the line besides its pixels (`LinePipeline.submit(upload=)`).

    The request has decoded and checked everything; the line inspects with these and hands them to the sink:

    - `recipe`: the product's recipe as the request resolved it (its template loaded): the line does not
      look the product up again. None: the upload brought its own template (`CapturedImage.template`).
    - `trace`: lot, panel and line from the request's form; what it leaves unknown is read as the
      recipe's trace settings say (`resolve_trace`), `filename` being the name its patterns match.
    - `px_per_mm`: the request's calibration, over the recipe's (or the line's default).
    - `product`, `claim`, `test_received`, `source`: for the sink only (`aoi.storage.recorder.DatabaseSink`):
      the product record to link, the request's idempotency claim (stored in the same transaction),
      the image's bytes as received (stored without re-encoding) and the source recorded.

    An upload the engine refuses (`InspectionInputError`) is answered to its request through its future;
    it is not recorded with the sink's `store_failure` (nothing of a refused request is stored).
    """

    recipe: ProductRecipe | None = None
    trace: Trace = field(default_factory=Trace)
    px_per_mm: float | None = None
    filename: str = ""
    product: Product | None = None
    claim: IdempotencyClaim | None = None
    test_received: bytes | None = None
    source: str = "upload"


@dataclass
class CapturedImage:
    """One image handed from a source to the pipeline.

    Either `image` holds the pixels already, or `load` decodes them lazily (in an inspect
    worker, so that decoding runs in parallel and a bad file becomes a per-image failure).
    `load` returns (test image, template or None). A template given here wins over the
    product's recipe template; `product` still selects calibration and rules when registered.
    `template_file`: the file that template is read from (a hot-folder `_temp` file), so a sink copies
    that file; None: a template given here is the capture's own pixels.
    """

    source_key: str
    image: np.ndarray | None = None
    product: str | None = None
    template: np.ndarray | None = None
    captured_at: float = field(default_factory=time.time)
    image_id: str | None = None
    template_file: Path | None = None
    load: Callable[[], tuple[np.ndarray, np.ndarray | None]] | None = None
    on_done: Callable[[Outcome], None] | None = None
    upload: UploadExtras | None = None  # an HTTP upload's request-side extras; None for every source

    def pixels(self) -> tuple[np.ndarray, np.ndarray | None]:
        """The test image and the explicit template (if any), decoding now when deferred."""
        if self.image is not None:
            return self.image, self.template
        if self.load is None:
            raise InspectionInputError(f"{self.source_key}: captured item has neither pixels nor a loader")
        image, template = self.load()
        return image, template if template is not None else self.template

    def ack(self, outcome: Outcome) -> None:
        if self.on_done is not None:
            self.on_done(outcome)


class FrameSource(Protocol):
    """Something that produces images: a hot folder, a camera, a synthetic demo line.

    `frames` runs in the pipeline's capture thread and must return soon after `stop` is set.
    `policy` states what happens when the inspect queue is full.
    """

    name: str
    policy: QueuePolicy

    def frames(self, stop: StopFlag) -> Iterator[CapturedImage]: ...


class StopFlag(Protocol):
    def is_set(self) -> bool: ...

    def wait(self, timeout: float | None = None) -> bool: ...


class SinkRecord(Protocol):
    """A sink's own record of a stored upload (the database's `StoredInspection`): it has an id."""

    @property
    def id(self) -> str: ...


@runtime_checkable
class ResultSink(Protocol):
    """Where inspected boards go (the database, a test list). Must be safe to call from one thread.

    `store` is idempotent per `source_key` (a UNIQUE key): storing a key twice returns the first id.
    `already_done` is true when a result is stored for the key. A recorded failure does not count:
    a file whose cause was fixed (product registered, template supplied) and that is queued again must
    be inspected again, not skipped.
    A sink may also offer `store_failure(failure, source_key) -> str | None`; the pipeline calls it
    when present.

    `template` says which template the board was inspected against (`TemplateOrigin`: the product's
    recipe template, referenced, not copied; a template file; or the pixels the capture brought) and the
    registered product the board belongs to: a sink that keeps templates keeps each, so every stored board
    has the template it was inspected against (the retraining loop needs the pair).

    `upload`: an HTTP upload's extras (`UploadExtras`), None for every other source. A sink that stores
    uploads honours them (product, idempotency claim, bytes as received) and may return its own record of
    the stored upload (anything with an `id`) instead of the bare id; the upload's future carries it.
    Whatever `store` raises for an upload reaches the request as it is.
    """

    def store(
        self,
        result: InspectionResult,
        test_image: np.ndarray,
        template: TemplateOrigin,
        source_key: str,
        *,
        upload: UploadExtras | None = None,
    ) -> str | SinkRecord: ...

    def already_done(self, source_key: str) -> bool: ...


@dataclass(frozen=True)
class ProductRecipe:
    """What the pipeline needs about a product: golden template, calibration, pass/fail rules, its
    capture setup (engine settings that differ from the bundle's; None: the bundle's own), how its
    boards' lot and panel are read (None: they are not) and which registered product it is (`product`,
    set by the provider that resolved it; None: a recipe kept in no product table, whose template a
    sink then keeps as pixels)."""

    template: np.ndarray
    px_per_mm: float
    rules: VerdictRules
    capture: CaptureSettings | None = None
    trace: TraceSettings | None = None
    product: ProductRef | None = None


class TemplateProvider(Protocol):
    """Looks a product id up. Raises UnknownProductError when it has no recipe."""

    def recipe(self, product: str) -> ProductRecipe: ...
