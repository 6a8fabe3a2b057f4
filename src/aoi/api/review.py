"""The review queue as the API offers it: look at or claim the next pending defect, undo a review,
and the verification crops of a defect (captured | golden | difference).

Raises `ApiError` for request problems and never touches HTTP objects (like `services.py`).
"""

from __future__ import annotations

import logging
import math
import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
from sqlalchemy import select

from aoi.api import crops, validation
from aoi.api.errors import ApiError, not_found
from aoi.api.services import ProductService
from aoi.data.images import ImageError
from aoi.schema import DefectType, SchemaError
from aoi.storage import Storage
from aoi.storage.images import ImageStoreError
from aoi.storage.inspections import InspectionFilter
from aoi.storage.keys import Scope
from aoi.storage.models import PRODUCT_NAME_MAX_CHARS, DefectRow, InspectionRow
from aoi.storage.records import DefectOrigin
from aoi.storage.review_queue import (
    CursorSide,
    QueueContention,
    QueueCursor,
    QueueItem,
    QueueOrder,
    ReviewFilter,
    ReviewQueue,
    count_pending,
)

log = logging.getLogger(__name__)

RECENT_TEST_IMAGES = 8  # decoded tested images kept for the crops (three sides are asked for at once)


@dataclass(frozen=True)
class Reviewer:
    """Who asks: `holder` identifies the lease (an API key's owner id), `name` is shown to others and
    recorded as the reviewer; `scopes` say whether an undo may touch another reviewer's decision."""

    holder: str
    name: str
    scopes: frozenset[Scope] = frozenset()


@dataclass(frozen=True)
class QueueAnswer:
    item: QueueItem | None
    pending: int
    leased: int


@dataclass(frozen=True)
class Crop:
    png: bytes
    window: crops.Window


@dataclass(frozen=True)
class CropSource:
    """Where a defect's crops come from: its inspection's images and registration, and its box."""

    inspection_id: str
    test_image_path: str
    template_path: str | None
    registration: dict[str, float]
    image_wh: tuple[int, int]
    box_px: tuple[float, float, float, float]


class ReviewService:
    """One per app (its decoded-image cache is shared by the requests)."""

    def __init__(self, storage: Storage, products: ProductService, lease_s: float) -> None:
        self.storage = storage
        self.products = products
        self.lease_s = lease_s
        self._recent: OrderedDict[str, np.ndarray] = OrderedDict()  # tested images of the latest crops
        self._lock = threading.Lock()

    def filters(
        self,
        product_ref: str | None,
        defect_type: str | None,
        min_confidence: float | None,
        max_confidence: float | None,
    ) -> ReviewFilter:
        """422 for an unknown type or an empty confidence band; 404 for an unknown product."""
        product_id = None
        if product_ref:
            validation.plain_text(product_ref, "product", PRODUCT_NAME_MAX_CHARS)
            product_id = self.products.get(product_ref).id
        parsed = None
        if defect_type:
            try:
                parsed = DefectType.parse(defect_type)
            except SchemaError as exc:
                raise ApiError(422, "invalid_type", str(exc)) from None
        for name, value in (("min_confidence", min_confidence), ("max_confidence", max_confidence)):
            if value is not None and not (math.isfinite(value) and 0.0 <= value <= 1.0):
                raise ApiError(422, "invalid_request", f"{name} must be between 0 and 1, got {value}")
        if min_confidence is not None and max_confidence is not None and min_confidence > max_confidence:
            raise ApiError(422, "invalid_request", "min_confidence must not be above max_confidence")
        return ReviewFilter(InspectionFilter(product_id=product_id), parsed, min_confidence, max_confidence)

    def cursor(self, after: str | None, before: str | None, at: str | None) -> QueueCursor | None:
        given = [(side, value) for side, value in (("after", after), ("before", before), ("at", at)) if value]
        if len(given) > 1:
            raise ApiError(422, "invalid_request", "give at most one of 'after', 'before' and 'at'")
        if not given:
            return None
        side, defect_id = given[0]
        if not validation.is_record_id(defect_id):
            raise ApiError(422, "invalid_request", f"'{side}' must be a defect id (32 hex digits)")
        return QueueCursor(defect_id, CursorSide(side))

    def pending(self, filters: ReviewFilter) -> tuple[int, int]:
        """(pending, leased): the defects awaiting review (the same count as the stats') and how many
        of them are leased to an operator now."""
        with self.storage.db.session() as session:
            return count_pending(session, filters), ReviewQueue(session).leased_count(filters)

    def peek(
        self, filters: ReviewFilter, order: QueueOrder, cursor: QueueCursor | None, reviewer: Reviewer | None
    ) -> QueueAnswer:
        """The next pending defect for `reviewer` (anyone's when None), not leased."""
        with self.storage.db.session() as session:
            queue = ReviewQueue(session)
            item = queue.peek(filters, order, cursor, reviewer.holder if reviewer else None)
            return QueueAnswer(item, count_pending(session, filters), queue.leased_count(filters))

    def claim(
        self, filters: ReviewFilter, order: QueueOrder, cursor: QueueCursor | None, reviewer: Reviewer
    ) -> QueueAnswer:
        """The next pending defect, leased to `reviewer` for `lease_s` (its other lease released)."""
        try:
            with self.storage.db.transaction() as session:
                queue = ReviewQueue(session)
                item = queue.claim(filters, reviewer.holder, reviewer.name, self.lease_s, order, cursor)
                return QueueAnswer(item, count_pending(session, filters), queue.leased_count(filters))
        except QueueContention as exc:
            raise ApiError(503, "queue_busy", str(exc)) from None

    def release(self, reviewer: Reviewer) -> int:
        with self.storage.db.transaction() as session:
            return ReviewQueue(session).release_holder(reviewer.holder)

    def withdraw(self, defect_id: str, reviewer: Reviewer) -> QueueAnswer:
        """Undo a review: the defect is pending again and leased to `reviewer`, who decides it anew.
        Only the reviewer who recorded the decision may withdraw it (or an admin key): 403 otherwise;
        409 when the defect has no review to withdraw, or was added by an operator (it was never pending)."""
        if not validation.is_record_id(defect_id):
            raise not_found("defect", defect_id[:80])
        with self.storage.db.transaction() as session:
            row = session.get(DefectRow, defect_id, with_for_update=True)
            if row is None:
                raise not_found("defect", defect_id)
            if row.review_status is None:
                raise ApiError(409, "not_reviewed", f"defect {defect_id} has no review to undo: it is pending")
            if row.origin == DefectOrigin.OPERATOR:  # undone, it would be pending: an operator's own finding
                raise ApiError(
                    409,
                    "operator_defect",
                    f"defect {defect_id} was added by an operator (a defect the machine missed): it has no review"
                    " to undo; mark it a false call (POST /defects/{id}/review) to withdraw it",
                )
            if row.reviewed_by != reviewer.name and Scope.ADMIN not in reviewer.scopes:
                raise ApiError(
                    403,
                    "reviewer_mismatch",
                    f"defect {defect_id} was reviewed by {row.reviewed_by!r}, not by this API key ({reviewer.name!r});"
                    " only its reviewer (or an admin key) may undo it",
                )
            previous = row.review_status
            queue = ReviewQueue(session)
            lease = queue.withdraw_review(defect_id, reviewer.holder, reviewer.name, self.lease_s)
            item = queue.item(defect_id, ReviewFilter(), QueueOrder.OLDEST, lease)
        log.info("review of defect %s (%s) withdrawn by %s", defect_id, previous, reviewer.name)
        pending, leased = self.pending(ReviewFilter())
        return QueueAnswer(item, pending, leased)

    # --- verification crops --------------------------------------------------------------------

    def _source(self, defect_id: str) -> CropSource:
        """What a crop of the defect needs, in one query; 404 for an unknown defect."""
        if not validation.is_record_id(defect_id):
            raise not_found("defect", defect_id[:80])
        with self.storage.db.session() as session:
            row = session.execute(
                select(
                    InspectionRow.id,
                    InspectionRow.test_image_path,
                    InspectionRow.template_path,
                    InspectionRow.registration,
                    InspectionRow.width_px,
                    InspectionRow.height_px,
                    DefectRow.x1_px,
                    DefectRow.y1_px,
                    DefectRow.x2_px,
                    DefectRow.y2_px,
                )
                .join(DefectRow, DefectRow.inspection_id == InspectionRow.id)
                .where(DefectRow.id == defect_id)
            ).first()
        if row is None:
            raise not_found("defect", defect_id)
        inspection_id, test_path, template_path, registration, w, h, x1, y1, x2, y2 = row
        return CropSource(inspection_id, test_path, template_path, dict(registration or {}), (w, h), (x1, y1, x2, y2))

    def crop(self, defect_id: str, side: crops.CropSide, margin_px: int | None) -> Crop:
        """One side of the defect's verification crops as PNG; 404 when its image (or, for the template
        and difference sides, its template) is not stored."""
        source = self._source(defect_id)
        margin = crops.default_margin_px(source.box_px) if margin_px is None else margin_px
        window = crops.crop_window(source.box_px, source.image_wh, margin)
        if side is crops.CropSide.TEST:
            return Crop(crops.crop_png(crops.captured_crop(self._test_image(source), window)), window)
        template = crops.template_crop(self._template_image(source), source.registration, window)
        if side is crops.CropSide.TEMPLATE:
            return Crop(crops.crop_png(template), window)
        captured = crops.captured_crop(self._test_image(source), window)
        return Crop(crops.crop_png(crops.difference_crop(captured, template)), window)

    def _test_image(self, source: CropSource) -> np.ndarray:
        """Decoded once for the sides of one defect (they are asked for together): a few kept."""
        with self._lock:
            cached = self._recent.get(source.test_image_path)
            if cached is not None:
                self._recent.move_to_end(source.test_image_path)
                return cached
        try:
            image = self.storage.images.load(source.test_image_path)
        except (ImageError, ImageStoreError) as exc:
            detail = f"the tested image of inspection {source.inspection_id} is missing: {exc}"
            raise ApiError(404, "image_missing", detail) from None
        image.setflags(write=False)
        with self._lock:
            self._recent[source.test_image_path] = image
            while len(self._recent) > RECENT_TEST_IMAGES:
                self._recent.popitem(last=False)
        return image

    def _template_image(self, source: CropSource) -> np.ndarray:
        if source.template_path is None:
            raise ApiError(
                404,
                "no_template",
                f"inspection {source.inspection_id} was stored without its template (stored before templates"
                " were kept with every board, or its template file could not be read): only the captured side"
                " can be shown",
            )
        images = self.storage.images
        try:  # a product's template is read for many crops: cached; an uploaded one is read from its file
            if source.template_path.startswith("templates/"):
                return images.load_template(source.template_path)
            return images.load(source.template_path)
        except (ImageError, ImageStoreError) as exc:
            detail = f"the template of inspection {source.inspection_id} is missing: {exc}"
            raise ApiError(404, "image_missing", detail) from None
