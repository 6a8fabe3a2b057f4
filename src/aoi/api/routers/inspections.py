from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Query, UploadFile
from fastapi.responses import FileResponse, Response

from aoi.api import validation
from aoi.api.auth import READ_RESPONSES, WriteKey, require_read_key, require_scope
from aoi.api.errors import ApiError
from aoi.api.models import (
    AddedDefectOut,
    InspectionOut,
    InspectionPage,
    MissedDefectIn,
    ReviewedDefectOut,
    ReviewIn,
    inspection_out,
)
from aoi.api.overlay import overlay_png
from aoi.api.routers.deps import IdempotencyKeyHeader, Services, create_once, read_upload, services
from aoi.api.services import AddedDefect, trace_fields
from aoi.detection.overlay import OVERLAY_MARGIN_TOP_PX
from aoi.schema import Verdict
from aoi.storage.keys import Scope

router = APIRouter(tags=["inspections"])

TRACE_FORM_HELP = (
    "the board's {what}: 1 to 64 letters, digits or . _ - : # +; default: read as the product says (QR code,"
    " file-name pattern)"
)
MAX_OFFSET = 10**9  # a 64-bit OFFSET overflows SQLite and PostgreSQL (a 500); no line stores this many


@router.post(
    "/inspections",
    response_model=InspectionOut,
    status_code=201,
    responses={
        200: {"description": "a retry with the same Idempotency-Key: the first request's inspection"},
        403: {"description": "the API key lacks the inspect scope"},
        409: {"description": "the Idempotency-Key was already used for a different request"},
        503: {
            "description": "retry after Retry-After: the line is full or stopping, or did not answer within"
            " upload_result_timeout_s (it still stores the upload: retry with the same Idempotency-Key)"
        },
    },
)
def create_inspection(
    key: Annotated[WriteKey, Depends(require_scope(Scope.INSPECT))],
    svc: Annotated[Services, Depends(services)],
    response: Response,
    image: Annotated[UploadFile, File(description="the tested image")],
    product: Annotated[str | None, Form(description="product id (or name) whose recipe to use")] = None,
    template: Annotated[UploadFile | None, File(description="golden template, when no product is given")] = None,
    px_per_mm: Annotated[float | None, Form(description="overrides the product's calibration")] = None,
    image_id: Annotated[str | None, Form(description="defaults to the uploaded file's name")] = None,
    lot: Annotated[str | None, Form(description=TRACE_FORM_HELP.format(what="production lot"))] = None,
    panel_id: Annotated[str | None, Form(description=TRACE_FORM_HELP.format(what="panel (serial) id"))] = None,
    line: Annotated[str | None, Form(description="the line's name; default: the service's --line-name")] = None,
    idempotency_key: IdempotencyKeyHeader = None,
) -> InspectionOut:
    """Inspect one image and store it with its result (runs in the threadpool, off the event loop).

    Lot and panel not given are read as the product says (QR code on the panel, file-name pattern)."""
    trace = trace_fields(lot, panel_id, line)  # 422 before any pixel is decoded
    upload = read_upload(image)
    template_upload = read_upload(template) if template is not None else None
    fields: dict[str, str | float | bytes | None] = {
        "image": upload.data,
        "image_name": upload.filename,
        "template": template_upload.data if template_upload else None,
        "template_name": template_upload.filename if template_upload else None,
        "product": product,
        "px_per_mm": px_per_mm,
        "image_id": image_id,
        **{name: value for name, value in trace.to_dict().items() if value is not None},  # none: as before 0008
    }
    stored = create_once(
        response,
        svc.storage,
        key=idempotency_key,
        owner=key.owner,
        endpoint="POST /inspections",
        fields=fields,
        resource="inspection",
        write=lambda c: svc.inspections.inspect_upload(
            upload, product, template_upload, px_per_mm=px_per_mm, image_id=image_id, claim=c, trace=trace
        ),
        load=svc.inspections.get,
    )
    return inspection_out(stored)


@router.get(
    "/inspections",
    response_model=InspectionPage,
    dependencies=[Depends(require_read_key)],
    responses=READ_RESPONSES,
)
def list_inspections(
    svc: Annotated[Services, Depends(services)],
    product: Annotated[str | None, Query(description="product id or name")] = None,
    verdict: Verdict | None = None,
    since: Annotated[datetime | None, Query(description="ISO 8601; naive times are UTC")] = None,
    until: Annotated[datetime | None, Query(description="ISO 8601, exclusive")] = None,
    has_defects: bool | None = None,
    lot: Annotated[str | None, Query(description="exactly this production lot")] = None,
    panel_id: Annotated[str | None, Query(description="exactly this panel id")] = None,
    line: Annotated[str | None, Query(description="exactly this line")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> InspectionPage:
    """Stored inspections, newest first."""
    filters = svc.inspections.filters(product, verdict, since, until, has_defects, lot, panel_id, line)
    items, total = svc.inspections.list(filters, limit, offset)
    return InspectionPage(items=[inspection_out(s) for s in items], total=total, limit=limit, offset=offset)


@router.get(
    "/inspections/{inspection_id}",
    response_model=InspectionOut,
    dependencies=[Depends(require_read_key)],
    responses=READ_RESPONSES,
)
def get_inspection(inspection_id: str, svc: Annotated[Services, Depends(services)]) -> InspectionOut:
    return inspection_out(svc.inspections.get(inspection_id))


@router.get(
    "/inspections/{inspection_id}/overlay.png",
    response_class=Response,
    dependencies=[Depends(require_read_key)],
    responses={200: {"content": {"image/png": {}}}, **READ_RESPONSES},
)
def get_overlay(inspection_id: str, svc: Annotated[Services, Depends(services)]) -> Response:
    """The stored tested image with its defects drawn on it, below a banner margin of
    `X-Overlay-Margin-Top` pixels (the board's pixels start there; boxes and labels keep off them)."""
    test, result = svc.inspections.overlay_image(inspection_id)
    headers = {"Cache-Control": "private, max-age=3600", "X-Overlay-Margin-Top": str(OVERLAY_MARGIN_TOP_PX)}
    return Response(overlay_png(test, result), media_type="image/png", headers=headers)


@router.get(
    "/inspections/{inspection_id}/image.png",
    response_class=Response,
    dependencies=[Depends(require_read_key)],
    responses={200: {"content": {"image/png": {}, "image/jpeg": {}}}, **READ_RESPONSES},
)
def get_tested_image(inspection_id: str, svc: Annotated[Services, Depends(services)]) -> Response:
    """The stored tested image as it was captured, unannotated (the dashboard draws its markers over it):
    the uploaded PNG or JPEG as received (its content type says which), else a lossless PNG."""
    stored = svc.inspections.get(inspection_id)
    path = svc.storage.images.path(stored.test_image_path)  # served as stored, never re-encoded
    if not path.is_file():
        raise ApiError(404, "image_missing", f"the tested image of inspection {inspection_id} is missing")
    media_type = "image/jpeg" if path.suffix == ".jpg" else "image/png"
    return FileResponse(path, media_type=media_type, headers={"Cache-Control": "private, max-age=3600"})


@router.post(
    "/defects/{defect_id}/review",
    response_model=ReviewedDefectOut,
    tags=["review"],
    responses={
        403: {"description": "the API key lacks the review scope, or `reviewer` is not the key's name"},
        409: {"description": "the defect is leased to another operator (GET /review/next)"},
    },
)
def review_defect(
    defect_id: str,
    body: ReviewIn,
    key: Annotated[WriteKey, Depends(require_scope(Scope.REVIEW))],
    svc: Annotated[Services, Depends(services)],
) -> ReviewedDefectOut:
    """Confirm a defect, mark it a false call, or reclassify it (`type` = the new defect type). This
    releases the defect's review lease; a defect leased to another operator is a 409 until it expires.

    The reviewer recorded is the API key's name. `reviewer` is still accepted for older clients, but
    only when it is that name: a review cannot be signed as somebody else (403)."""
    given = validation.plain_text((body.reviewer or "").strip(), "reviewer", 200)
    if given and given != key.label:
        raise ApiError(
            403,
            "reviewer_mismatch",
            f"reviewer {given!r} is not this API key's name ({key.label!r}); the reviewer recorded is the"
            " key's name: leave `reviewer` out, or use a key created for that reviewer",
        )
    stored = svc.inspections.review(defect_id, body.decision, body.type, key.label, key.owner)
    out = inspection_out(stored)
    defect = next(d for d in out.defects if d.id == defect_id)
    return ReviewedDefectOut(inspection_id=stored.id, defect=defect)


@router.post(
    "/inspections/{inspection_id}/defects",
    response_model=AddedDefectOut,
    status_code=201,
    tags=["review"],
    responses={
        200: {"description": "a retry with the same Idempotency-Key: the first request's defect"},
        401: {"description": "no API key, or an unknown, revoked or expired one"},
        403: {"description": "the API key lacks the review scope"},
        404: {"description": "no such inspection"},
        409: {"description": "the Idempotency-Key was already used for a different request"},
    },
)
def add_missed_defect(
    inspection_id: str,
    body: MissedDefectIn,
    key: Annotated[WriteKey, Depends(require_scope(Scope.REVIEW))],
    svc: Annotated[Services, Depends(services)],
    response: Response,
    idempotency_key: IdempotencyKeyHeader = None,
) -> AddedDefectOut:
    """Add a defect the machine missed (an escape), found by the operator on the inspected image: stored
    with origin `operator`, confidence 1 and already confirmed by this API key's name, so it never enters
    the review queue. The board's defect count follows, and its verdict: a board that passed fails when its
    product's rules count the new defect. Reports count these defects as escapes; `aoi export` labels them."""
    fields: dict[str, str | float | bytes | None] = {
        "inspection_id": inspection_id,
        "type": body.type,
        "box_px": ",".join(repr(float(v)) for v in body.box_px),
    }
    added = create_once(
        response,
        svc.storage,
        key=idempotency_key,
        owner=key.owner,
        endpoint="POST /inspections/{id}/defects",
        fields=fields,
        resource="defect",
        write=lambda c: svc.inspections.add_missed_defect(inspection_id, body.type, body.box_px, key.label, c),
        load=svc.inspections.added_defect,
    )
    return _added_out(added)


def _added_out(added: AddedDefect) -> AddedDefectOut:
    out = inspection_out(added.inspection)
    defect = next(d for d in out.defects if d.id == added.defect_id)
    return AddedDefectOut(inspection_id=out.id, verdict=out.verdict, defect=defect)
