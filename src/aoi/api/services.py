"""What the routers ask for, in domain terms: decode and check input, inspect, store, query, review.

Services raise `ApiError` for request problems and never touch HTTP objects, so the same code can be
called from scripts and tests.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from concurrent.futures import wait
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError, IntegrityError

from aoi.api import validation
from aoi.api.errors import ApiError, not_found
from aoi.api.metrics import ServiceMetrics
from aoi.api.settings import ServiceSettings
from aoi.api.upload_line import InspectionPending, LineNotRunning, UploadLine
from aoi.data.image_header import KNOWN_FORMATS
from aoi.data.images import ImageError, UnknownImageFormat, decode_image
from aoi.detection.tiling import TiledInspector
from aoi.pipeline import LinePipeline, PipelineBusy, PipelineStopped, ProductRecipe, UploadExtras, UploadReceipt
from aoi.pipeline.capture import CaptureSettings
from aoi.pipeline.trace import TraceSettings
from aoi.schema import DefectType, InspectionInputError, InspectionResult, SchemaError, Trace, Verdict, check_trace_id
from aoi.storage import Storage
from aoi.storage.database import is_unavailable
from aoi.storage.idempotency import IdempotencyClaim, IdempotencyKeyTaken, add_claim, claim_exists
from aoi.storage.inspections import InspectionFilter, InspectionRepository, MissedDefectError, ReviewError
from aoi.storage.models import IMAGE_ID_MAX_CHARS, PRODUCT_NAME_MAX_CHARS, DefectRow, ProductRow
from aoi.storage.products import ProductRepository
from aoi.storage.records import Product, ReviewDecision, StoredInspection
from aoi.storage.review_queue import LeaseHeld, ReviewQueue
from aoi.storage.stats import LineStats, compute_stats
from aoi.verdict import VerdictRules

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AddedDefect:
    """An operator-added defect and its inspection as stored after the addition."""

    inspection: StoredInspection
    defect_id: str


@dataclass(frozen=True)
class Upload:
    """An uploaded file: its bytes and the name the client gave it."""

    data: bytes
    filename: str


def decode_upload(upload: Upload, role: str) -> np.ndarray:
    """Decode an uploaded image; 415 when it is not an image at all, 422 when it is a broken or unusable one."""
    name = f"{role} {upload.filename!r}" if upload.filename else role
    if not upload.data:
        raise ApiError(422, "bad_image", f"{name}: file is empty")
    try:
        return decode_image(upload.data, name)
    except UnknownImageFormat:
        raise ApiError(415, "not_an_image", f"{name}: not an image (expected {KNOWN_FORMATS})") from None
    except ImageError as exc:
        raise ApiError(422, "bad_image", str(exc)) from exc


class ProductService:
    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    def create(
        self,
        name: str,
        px_per_mm: float,
        rules_json: str | None,
        template: Upload,
        claim: IdempotencyClaim | None = None,
        capture_json: str | None = None,
        trace_json: str | None = None,
    ) -> Product:
        """Names are unique whatever their case: `DeepPCB` and `deeppcb` would share a hot-folder subfolder
        on a case-insensitive file system. `claim`: the request's idempotency key, stored with the row.
        `capture_json`: the product's capture setup (`aoi tolerance --fine-pitch` output).
        `trace_json`: how its boards' lot and panel are read (`TraceSettings.to_dict()` shape)."""
        name = validation.product_name(name)
        validation.px_per_mm(px_per_mm)
        rules = parse_rules(rules_json)
        capture = parse_capture(capture_json)
        trace = parse_trace_settings(trace_json)
        template_image = decode_upload(template, "template")
        product_id = uuid.uuid4().hex
        with self.storage.db.session() as session:
            taken = ProductRepository(session).name_taken(name)
        if taken is not None:
            self._raise_if_claimed(claim)  # a concurrent retry of this very request created it
            raise ApiError(409, "conflict", f"a product named {taken!r} already exists (names ignore case)")
        template_path = self.storage.images.save_template(product_id, template_image)
        try:
            with self.storage.db.transaction() as session:
                h, w = template_image.shape
                product = ProductRepository(session).add(
                    ProductRow(
                        id=product_id,
                        name=name,
                        template_path=template_path,
                        template_width_px=w,
                        template_height_px=h,
                        px_per_mm=float(px_per_mm),
                        rules=rules.to_dict(),
                        capture=None if capture is None else capture.to_dict(),
                        trace=None if trace is None else trace.to_dict(),
                    )
                )
                if claim is not None:
                    add_claim(session, claim, "product", product_id)
                return product
        except IntegrityError:  # a concurrent request stored the name (any case) first: the index refused ours
            self.storage.images.delete(template_path)
            self._raise_if_claimed(claim)
            with self.storage.db.session() as session:
                taken = ProductRepository(session).name_taken(name) or name
            raise ApiError(409, "conflict", f"a product named {taken!r} already exists (names ignore case)") from None
        except DBAPIError as exc:  # keep the template unless the row surely is not there (see the recorder)
            if not is_unavailable(exc) or self.storage.db.row_exists(ProductRow, product_id) is False:
                self.storage.images.delete(template_path)
            raise
        except BaseException:
            self.storage.images.delete(template_path)
            raise

    def _raise_if_claimed(self, claim: IdempotencyClaim | None) -> None:
        """IdempotencyKeyTaken when a concurrent request with this key committed first (it is answered
        with that request's product, or a 409 if the request differs)."""
        if claim is None:
            return
        with self.storage.db.session() as session:
            if claim_exists(session, claim):
                raise IdempotencyKeyTaken(claim)

    def list(self) -> list[Product]:
        with self.storage.db.session() as session:
            return ProductRepository(session).all()

    def get(self, id_or_name: str) -> Product:
        """404 for any reference no product can have (a control character, longer than a name)."""
        if validation.has_control_chars(id_or_name) or len(id_or_name) > PRODUCT_NAME_MAX_CHARS:
            raise not_found("product", id_or_name[:80])
        with self.storage.db.session() as session:
            product = ProductRepository(session).get(id_or_name)
        if product is None:
            raise not_found("product", id_or_name)
        return product

    def set_trace(self, id_or_name: str, data: dict[str, Any] | None) -> Product:
        """Replace a product's traceability setup (None or empty: read no lot or panel); 422 for a bad one.
        The line picks it up within its recipe cache time (`PipelineConfig.recipe_cache_ttl_s`)."""
        trace = trace_settings_from(data)
        product_id = self.get(id_or_name).id
        with self.storage.db.transaction() as session:
            row = session.get(ProductRow, product_id)
            if row is None:  # deleted between the two looks
                raise not_found("product", id_or_name)
            row.trace = None if trace is None else trace.to_dict()
        return self.get(product_id)


def parse_trace_settings(trace_json: str | None) -> TraceSettings | None:
    """A traceability setup, or None when absent or empty; 422 naming a bad key, a regex that does not
    compile, or group names other than `lot` and `panel`."""
    if trace_json is None or not trace_json.strip():
        return None
    return trace_settings_from(validation.json_object(trace_json, "trace"))


def trace_settings_from(data: dict[str, Any] | None) -> TraceSettings | None:
    if not data:
        return None
    try:
        settings = TraceSettings.from_dict(data)
    except SchemaError as exc:
        raise ApiError(422, "invalid_trace", str(exc)) from None
    return None if settings.is_empty else settings


def trace_fields(lot: str | None, panel_id: str | None, line: str | None) -> Trace:
    """Lot, panel and line as a client sent them (blank: not given); 422 for a value no board can carry."""
    values = {"lot": lot, "panel_id": panel_id, "line": line}
    given = {name: value.strip() for name, value in values.items() if value is not None and value.strip()}
    try:
        for name, value in given.items():
            check_trace_id(value, name)
        return Trace(**given)
    except SchemaError as exc:
        raise ApiError(422, "invalid_trace", str(exc)) from None


def parse_rules(rules_json: str | None) -> VerdictRules:
    if rules_json is None or not rules_json.strip():
        return VerdictRules()
    data = validation.json_object(rules_json, "rules")
    try:
        return VerdictRules.from_dict(data)
    except SchemaError as exc:
        raise ApiError(422, "invalid_rules", str(exc)) from None


def parse_capture(capture_json: str | None) -> CaptureSettings | None:
    """A capture setup, or None (the bundle's settings) when absent or empty; 422 naming any bad key."""
    if capture_json is None or not capture_json.strip():
        return None
    data = validation.json_object(capture_json, "capture")
    try:
        capture = CaptureSettings.from_dict(data)
    except SchemaError as exc:
        raise ApiError(422, "invalid_capture", str(exc)) from None
    return None if capture.is_empty else capture


class InspectionService:
    """Uploads: decoded and checked in the request, then inspected and stored by the line (one path, one
    CPU budget: the line's inspect workers), the request waiting on the answer. `inspector` is the
    process's one `TiledInspector` (`create_app` builds it from `ServiceSettings.tiling`; the line
    `build_line` composes inspects through it unless given an inspector of its own)."""

    def __init__(
        self,
        storage: Storage,
        inspector: TiledInspector,
        settings: ServiceSettings,
        metrics: ServiceMetrics,
        products: ProductService,
    ) -> None:
        self.storage = storage
        self.inspector = inspector
        self.settings = settings
        self.metrics = metrics
        self.products = products
        self.line: LinePipeline | None = None  # set by `aoi.api.line.build_line`
        self.uploads = UploadLine(
            settings.upload_concurrency,
            settings.upload_queue_depth,
            settings.upload_wait_s,
            latency_budget_s=settings.upload_latency_budget_s,
        )
        metrics.add_gauge(
            "upload_slots",
            "Uploads in the inspection line (busy: queued or being inspected, their request waiting), waiting"
            " for room in its inspect queue, and admitted in all (the HTTP door's count).",
            self.uploads.counts,
        )

    def attach_line(self, line: LinePipeline | None, workers: int = 1) -> None:
        """The line uploads are handed to (None: none; uploads are then answered 503)."""
        self.line = line
        self.uploads.workers = workers

    def inspect_upload(
        self,
        image: Upload,
        product_ref: str | None,
        template: Upload | None,
        px_per_mm: float | None = None,
        image_id: str | None = None,
        claim: IdempotencyClaim | None = None,
        trace: Trace | None = None,
    ) -> StoredInspection:
        """Inspect one uploaded image against its product's template (or an uploaded one) and store it.

        Everything a request can get wrong is checked here (415, 422, 404); then the line inspects and
        stores it and this waits for the answer. 503 (UploadLineFull) when the line's inspect queue stays
        full for `upload_wait_s`; 503 (InspectionPending) when the line does not answer within
        `upload_result_timeout_s` (it still stores the upload); 422 when the engine refuses the image
        (another board's template).
        `claim`: the request's idempotency key, stored with the inspection (see `aoi.api.idempotency`).
        `trace`: lot, panel and line sent with the image (`trace_fields`); what it leaves unknown is read
        as the product says (QR code, file name), and the line is this service's `line_name`.
        """
        product_ref = (product_ref or "").strip() or None
        if product_ref is None and template is None:
            raise ApiError(422, "missing_template", "give either 'product' (a product id) or a 'template' file")
        if product_ref is not None and template is not None:
            raise ApiError(422, "ambiguous_template", "give either 'product' or a 'template' file, not both")
        if px_per_mm is not None:
            validation.px_per_mm(px_per_mm)
        image_id = _image_id(image_id, image.filename)
        if product_ref is not None:
            validation.plain_text(product_ref, "product", PRODUCT_NAME_MAX_CHARS)
        product = self.products.get(product_ref) if product_ref is not None else None
        test, recipe, uploaded_template = self._decode(image, product, template)
        extras = UploadExtras(
            recipe=recipe,
            trace=trace or Trace(),
            px_per_mm=px_per_mm,
            filename=image.filename,
            product=product,
            claim=claim,
            test_received=image.data,
        )
        stored = self._through_the_line(test, uploaded_template, product, image_id, extras)
        if isinstance(stored.record, StoredInspection):
            return stored.record
        return self.get(stored.inspection_id)  # a sink that returns only the id

    def _decode(
        self, image: Upload, product: Product | None, template: Upload | None
    ) -> tuple[np.ndarray, ProductRecipe | None, np.ndarray | None]:
        """The test image; the product's recipe (its template loaded) or the uploaded template; 415/422
        for what cannot be inspected (not an image, a broken one, a template of another size)."""
        test = decode_upload(image, "image")
        recipe: ProductRecipe | None = None
        uploaded_template: np.ndarray | None = None
        if product is not None:
            recipe = self.storage.recipe(product)
            template_image = recipe.template
        else:
            if template is None:  # narrowed by the caller; kept for the type checker
                raise ApiError(422, "missing_template", "a 'template' file is required without a product")
            template_image = uploaded_template = decode_upload(template, "template")
        if template_image.shape != test.shape:
            th, tw = template_image.shape
            h, w = test.shape
            raise ApiError(422, "template_size_mismatch", f"the template is {tw}x{th} px but the image is {w}x{h} px")
        return test, recipe, uploaded_template

    def _through_the_line(
        self,
        test: np.ndarray,
        uploaded_template: np.ndarray | None,
        product: Product | None,
        image_id: str,
        extras: UploadExtras,
    ) -> UploadReceipt:
        """Hand the upload to the line and wait, at most `upload_result_timeout_s`, for it to be inspected and
        stored. What the sink raised (database unavailable or full, IdempotencyKeyTaken) is raised here as it
        was raised."""
        line = self.line
        if line is None:
            raise LineNotRunning("the inspection line is not running; retry later", self.uploads.retry_after_s())
        try:
            with self.uploads.waiting_for_room():
                future = line.submit(
                    test,
                    template=uploaded_template,
                    product=product.name if product is not None else None,
                    image_id=image_id,
                    timeout_s=self.settings.upload_wait_s,
                    upload=extras,
                )
        except PipelineBusy:
            raise self.uploads.refused_after_wait() from None
        except PipelineStopped:
            raise LineNotRunning(
                "the inspection line is stopping (the service shuts down); retry later", self.uploads.retry_after_s()
            ) from None
        with self.uploads.in_line():
            timeout_s = self.settings.upload_result_timeout_s
            if not wait([future], timeout=timeout_s).done:
                log.warning(
                    "upload %s not answered within %g s; the line still inspects and stores it", image_id, timeout_s
                )
                raise InspectionPending(
                    f"the inspection line did not answer within {timeout_s:g} s; it still inspects and stores this"
                    " upload: retry with the same Idempotency-Key to get its result",
                    self.uploads.retry_after_s(),
                )
            try:
                return future.result()
            except InspectionInputError as exc:
                raise ApiError(422, type(exc).__name__, str(exc)) from exc

    def get(self, inspection_id: str) -> StoredInspection:
        if not validation.is_record_id(inspection_id):
            raise not_found("inspection", inspection_id[:80])
        with self.storage.db.session() as session:
            stored = InspectionRepository(session).get(inspection_id)
        if stored is None:
            raise not_found("inspection", inspection_id)
        return stored

    def list(self, filters: InspectionFilter, limit: int, offset: int) -> tuple[list[StoredInspection], int]:
        with self.storage.db.session() as session:
            return InspectionRepository(session).page(filters, limit, offset)

    def filters(
        self,
        product_ref: str | None,
        verdict: Verdict | None,
        since: datetime | None,
        until: datetime | None,
        has_defects: bool | None,
        lot: str | None = None,
        panel_id: str | None = None,
        line: str | None = None,
    ) -> InspectionFilter:
        trace = trace_fields(lot, panel_id, line)
        if product_ref:
            validation.plain_text(product_ref, "product", PRODUCT_NAME_MAX_CHARS)
        product_id = self.products.get(product_ref).id if product_ref else None
        since, until = validation.utc_moment(since, "since"), validation.utc_moment(until, "until")
        if since is not None and until is not None and until < since:
            raise ApiError(422, "invalid_request", "'until' must not be before 'since'")
        return InspectionFilter(product_id, verdict, since, until, has_defects, trace.lot, trace.panel_id, trace.line)

    def overlay_image(self, inspection_id: str) -> tuple[np.ndarray, InspectionResult]:
        stored = self.get(inspection_id)
        try:
            test = self.storage.images.load(stored.test_image_path)
        except ImageError as exc:
            raise ApiError(
                404, "image_missing", f"the tested image of inspection {inspection_id} is missing: {exc}"
            ) from None
        return test, stored.result

    def review(
        self, defect_id: str, decision: ReviewDecision, new_type: str | None, reviewer: str, holder: str | None = None
    ) -> StoredInspection:
        """Record a decision and release the defect's review lease. `holder`: the reviewer's lease identity
        (an API key's owner id); a live lease of another holder on the defect is a 409."""
        if not validation.is_record_id(defect_id):
            raise not_found("defect", defect_id[:80])
        validation.plain_text(reviewer, "reviewer", 200)
        parsed_type = None if new_type is None else _defect_type(new_type)
        try:
            with self.storage.db.transaction() as session:
                inspection_id = InspectionRepository(session).review_defect(defect_id, decision, reviewer, parsed_type)
                if inspection_id is None:
                    raise not_found("defect", defect_id)
                ReviewQueue(session).settle_for_review(defect_id, holder)  # after the row lock of the update
        except ReviewError as exc:
            raise ApiError(422, "invalid_review", str(exc)) from None
        except LeaseHeld as exc:
            until = exc.lease.expires_at.isoformat(timespec="seconds")
            raise ApiError(
                409,
                "leased",
                f"defect {defect_id} is being reviewed by {exc.lease.holder_name!r} (leased until {until}); nothing"
                " was recorded",
            ) from None
        return self.get(inspection_id)

    def add_missed_defect(
        self,
        inspection_id: str,
        defect_type: str,
        box_px: Sequence[float],
        reviewer: str,
        claim: IdempotencyClaim | None = None,
    ) -> AddedDefect:
        """Store a defect the engine missed on an inspection (an escape), confirmed by `reviewer`; it never
        enters the review queue. 404 for an unknown inspection, 422 for an unknown type or a box that is not
        on the image. `claim`: the request's idempotency key, stored in the same transaction."""
        if not validation.is_record_id(inspection_id):
            raise not_found("inspection", inspection_id[:80])
        validation.plain_text(reviewer, "reviewer", 200)
        parsed = _defect_type(defect_type)
        try:
            with self.storage.db.transaction() as session:
                defect_id = InspectionRepository(session).add_missed_defect(inspection_id, parsed, box_px, reviewer)
                if defect_id is None:
                    raise not_found("inspection", inspection_id)
                if claim is not None:
                    add_claim(session, claim, "defect", defect_id)
        except MissedDefectError as exc:
            raise ApiError(422, "invalid_box", str(exc)) from None
        except IntegrityError:
            if claim is not None:
                with self.storage.db.session() as session:
                    if claim_exists(session, claim):
                        raise IdempotencyKeyTaken(claim) from None
            raise
        return AddedDefect(self.get(inspection_id), defect_id)

    def added_defect(self, defect_id: str) -> AddedDefect:
        """An added defect by its id, with its inspection (what a replayed request answers)."""
        with self.storage.db.session() as session:
            inspection_id = session.scalar(select(DefectRow.inspection_id).where(DefectRow.id == defect_id))
        if inspection_id is None:
            raise not_found("defect", defect_id)
        return AddedDefect(self.get(inspection_id), defect_id)

    def stats(self, filters: InspectionFilter) -> LineStats:
        with self.storage.db.session() as session:
            return compute_stats(session, filters)


def _image_id(image_id: str | None, filename: str) -> str:
    """The given image id, else the uploaded file's name without its extension, else a random one."""
    given = (image_id or "").strip()
    if given:
        return validation.plain_text(given, "image_id", IMAGE_ID_MAX_CHARS)
    stem = Path(validation.plain_text(filename or "", "the image file name")).stem
    return (
        validation.plain_text(stem, "image_id (the file name)", IMAGE_ID_MAX_CHARS) if stem else uuid.uuid4().hex[:12]
    )


def _defect_type(name: str) -> DefectType:
    """A defect type from a request, or the 422 that names the known ones."""
    try:
        return DefectType.parse(name)
    except SchemaError as exc:
        raise ApiError(422, "invalid_type", str(exc)) from None
