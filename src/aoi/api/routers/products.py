from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, File, Form, Response, UploadFile

from aoi.api.auth import READ_RESPONSES, WriteKey, require_read_key, require_scope
from aoi.api.models import ProductList, ProductOut, product_out
from aoi.api.routers.deps import IdempotencyKeyHeader, Services, create_once, read_upload, services
from aoi.storage.keys import Scope

router = APIRouter(prefix="/products", tags=["products"])

TRACE_HELP = (
    "JSON traceability setup: {'file_pattern': a regex searched in the file name (no folder, no extension)"
    " with the named groups (?P<lot>...) and/or (?P<panel>...), 'code': 'qr' to read a QR code or 'datamatrix'"
    " to read a Data Matrix (ECC200) on the panel (its text is the panel id), 'code_pattern': a regex with"
    " the same groups for the code's text};"
    " omitted: lot and panel come only from the upload's form fields"
)


@router.post(
    "",
    response_model=ProductOut,
    status_code=201,
    responses={
        200: {"description": "a retry with the same Idempotency-Key: the first request's product"},
        403: {"description": "the API key lacks the admin scope"},
        409: {"description": "the name is taken, or the Idempotency-Key was used for a different request"},
    },
)
def create_product(
    key: Annotated[WriteKey, Depends(require_scope(Scope.ADMIN))],
    svc: Annotated[Services, Depends(services)],
    response: Response,
    name: Annotated[str, Form(description="unique product name")],
    px_per_mm: Annotated[float, Form(description="calibration: pixels per mm")],
    template: Annotated[UploadFile, File(description="golden template image (tile or whole panel)")],
    rules: Annotated[str | None, Form(description="JSON pass/fail rules, VerdictRules.to_dict() shape")] = None,
    capture: Annotated[
        str | None,
        Form(
            description="JSON capture setup as `aoi tolerance --fine-pitch` prints it: {'registration': {...},"
            " 'candidates': {...}} (its good_captures and edge_pixels are ignored); omitted: the model's settings"
        ),
    ] = None,
    trace: Annotated[str | None, Form(description=TRACE_HELP)] = None,
    idempotency_key: IdempotencyKeyHeader = None,
) -> ProductOut:
    """Register a product (recipe): golden template, px/mm calibration, pass/fail rules and capture setup."""
    upload = read_upload(template)
    fields: dict[str, str | float | bytes | None] = {
        "name": name,
        "px_per_mm": px_per_mm,
        "template": upload.data,
        "template_name": upload.filename,
        "rules": rules,
        "capture": capture,
        **({"trace": trace} if trace is not None else {}),  # absent: the fingerprint of requests before it
    }
    product = create_once(
        response,
        svc.storage,
        key=idempotency_key,
        owner=key.owner,
        endpoint="POST /products",
        fields=fields,
        resource="product",
        write=lambda c: svc.products.create(
            name, px_per_mm, rules, upload, claim=c, capture_json=capture, trace_json=trace
        ),
        load=svc.products.get,
    )
    return product_out(product)


@router.get("", response_model=ProductList, dependencies=[Depends(require_read_key)], responses=READ_RESPONSES)
def list_products(svc: Annotated[Services, Depends(services)]) -> ProductList:
    items = [product_out(p) for p in svc.products.list()]
    return ProductList(items=items, total=len(items))


@router.get(
    "/{product_id}", response_model=ProductOut, dependencies=[Depends(require_read_key)], responses=READ_RESPONSES
)
def get_product(product_id: str, svc: Annotated[Services, Depends(services)]) -> ProductOut:
    return product_out(svc.products.get(product_id))


@router.put(
    "/{product_id}/trace",
    response_model=ProductOut,
    responses={403: {"description": "the API key lacks the admin scope"}, 422: {"description": "a bad setup"}},
)
def set_product_trace(
    product_id: str,
    _key: Annotated[WriteKey, Depends(require_scope(Scope.ADMIN))],
    svc: Annotated[Services, Depends(services)],
    body: Annotated[dict[str, Any] | None, Body(description=TRACE_HELP)] = None,
) -> ProductOut:
    """Set (or, with null or {}, clear) how a product's boards' lot and panel are read."""
    return product_out(svc.products.set_trace(product_id, body))
