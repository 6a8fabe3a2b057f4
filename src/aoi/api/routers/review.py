"""The review queue over the whole backlog, its leases, undo, and the verification crops of a defect."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from aoi.api.auth import READ_RESPONSES, WriteKey, require_read_key, require_scope
from aoi.api.crops import MAX_MARGIN_PX, CropSide
from aoi.api.review import QueueAnswer, Reviewer, ReviewService
from aoi.api.review_models import PendingOut, ReleasedOut, ReviewNextOut, review_item_out
from aoi.api.routers.deps import Services, services
from aoi.storage.keys import Scope
from aoi.storage.review_queue import QueueCursor, QueueOrder, ReviewFilter

router = APIRouter(tags=["review"])

REVIEW_RESPONSES: dict[int | str, dict[str, object]] = {
    401: {"description": "no API key, or an unknown, revoked or expired one"},
    403: {"description": "the API key lacks the review scope"},
}


def review_service(svc: Annotated[Services, Depends(services)]) -> ReviewService:
    """The app's review service, made at its first use (it keeps a small cache of decoded images)."""
    reviews = svc.extra.get("reviews")
    if reviews is None:
        reviews = svc.extra.setdefault("reviews", ReviewService(svc.storage, svc.products, svc.settings.review_lease_s))
    return reviews  # type: ignore[no-any-return]


ReviewSvc = Annotated[ReviewService, Depends(review_service)]


def queue_filter(
    reviews: ReviewSvc,
    product: Annotated[str | None, Query(description="product id or name")] = None,
    type: Annotated[str | None, Query(description="defect type as the model called it (e.g. short)")] = None,
    min_confidence: Annotated[float | None, Query(description="inclusive, 0 to 1")] = None,
    max_confidence: Annotated[float | None, Query(description="inclusive, 0 to 1")] = None,
) -> ReviewFilter:
    return reviews.filters(product, type, min_confidence, max_confidence)


def queue_cursor(
    reviews: ReviewSvc,
    after: Annotated[str | None, Query(description="a defect id: the next one after it (wraps round)")] = None,
    before: Annotated[str | None, Query(description="a defect id: the one before it (wraps round)")] = None,
    at: Annotated[str | None, Query(description="a defect id: itself while it is available, else the next")] = None,
) -> QueueCursor | None:
    return reviews.cursor(after, before, at)


Filter = Annotated[ReviewFilter, Depends(queue_filter)]
Cursor = Annotated[QueueCursor | None, Depends(queue_cursor)]
Order = Annotated[QueueOrder, Query(description="oldest inspection first (default) or newest first")]


def _reviewer(key: WriteKey) -> Reviewer:
    return Reviewer(key.owner, key.label, key.scopes)


def _next_out(answer: QueueAnswer) -> ReviewNextOut:
    item = review_item_out(answer.item) if answer.item is not None else None
    return ReviewNextOut(item=item, pending=answer.pending, leased=answer.leased)


@router.get("/review/next", response_model=ReviewNextOut, responses=READ_RESPONSES)
def look_at_next(
    reviews: ReviewSvc,
    filters: Filter,
    cursor: Cursor,
    key: Annotated[WriteKey | None, Depends(require_read_key)],
    order: Order = QueueOrder.OLDEST,
) -> ReviewNextOut:
    """The next pending defect the queue would hand out, without leasing it (defects leased to other
    operators are skipped), and how many defects await review. A look only: claim with POST."""
    return _next_out(reviews.peek(filters, order, cursor, _reviewer(key) if key is not None else None))


@router.post(
    "/review/next",
    response_model=ReviewNextOut,
    responses={**REVIEW_RESPONSES, 503: {"description": "other operators took every candidate meanwhile; retry"}},
)
def claim_next(
    reviews: ReviewSvc,
    filters: Filter,
    cursor: Cursor,
    key: Annotated[WriteKey, Depends(require_scope(Scope.REVIEW))],
    order: Order = QueueOrder.OLDEST,
) -> ReviewNextOut:
    """Lease the next pending defect to this API key (the oldest by default; `after` / `before` / `at`
    walk from a defect) for the service's lease time, and release the key's previous lease: no other
    operator is handed it until the lease expires or a review of it is recorded. Claiming the defect
    the key holds already (`at`) renews its lease."""
    return _next_out(reviews.claim(filters, order, cursor, _reviewer(key)))


@router.get("/review/pending", response_model=PendingOut, responses=READ_RESPONSES)
def pending_count(
    reviews: ReviewSvc, filters: Filter, _key: Annotated[WriteKey | None, Depends(require_read_key)]
) -> PendingOut:
    """Defects awaiting review: the dashboard's badge, the same count as /stats' `reviews.pending`."""
    pending, leased = reviews.pending(filters)
    return PendingOut(pending=pending, leased=leased)


@router.delete("/review/lease", response_model=ReleasedOut, responses=REVIEW_RESPONSES)
def release_lease(reviews: ReviewSvc, key: Annotated[WriteKey, Depends(require_scope(Scope.REVIEW))]) -> ReleasedOut:
    """Give back this API key's lease (the operator left the queue): the defect is free at once."""
    return ReleasedOut(released=reviews.release(_reviewer(key)))


@router.delete(
    "/defects/{defect_id}/review",
    response_model=ReviewNextOut,
    responses={
        **REVIEW_RESPONSES,
        403: {"description": "the API key lacks the review scope, or did not record this review (and is not admin)"},
        409: {"description": "the defect has no review to undo (pending, or added by an operator)"},
    },
)
def undo_review(
    defect_id: str, reviews: ReviewSvc, key: Annotated[WriteKey, Depends(require_scope(Scope.REVIEW))]
) -> ReviewNextOut:
    """Undo a review: the defect is pending again and leased to this API key, which decides it anew.
    Only the reviewer who recorded it may undo it (or an admin key)."""
    return _next_out(reviews.withdraw(defect_id, _reviewer(key)))


@router.get(
    "/defects/{defect_id}/crops",
    response_class=Response,
    dependencies=[Depends(require_read_key)],
    responses={
        200: {"content": {"image/png": {}}, "description": "grey PNG; X-Crop-Window: x1,y1,x2,y2 in image pixels"},
        404: {"description": "no such defect, or its image (or, for template/difference, its template) is not stored"},
        **READ_RESPONSES,
    },
)
def defect_crop(
    defect_id: str,
    reviews: ReviewSvc,
    side: Annotated[CropSide, Query(description="test (captured), template (golden, registered) or difference")] = (
        CropSide.TEST
    ),
    margin_px: Annotated[
        int | None, Query(ge=0, le=MAX_MARGIN_PX, description="context around the box (default: from its size)")
    ] = None,
) -> Response:
    """One side of a defect's verification crops, unannotated: the captured pixels, the golden template
    registered onto them, or their difference, over the same window (the X-Crop-Window header)."""
    crop = reviews.crop(defect_id, side, margin_px)
    headers = {
        "Cache-Control": "private, max-age=3600",
        "X-Crop-Window": ",".join(str(v) for v in crop.window),
        "Access-Control-Expose-Headers": "X-Crop-Window",
    }
    return Response(crop.png, media_type="image/png", headers=headers)
