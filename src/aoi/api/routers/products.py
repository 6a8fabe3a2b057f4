from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, UploadFile

from aoi.api.auth import require_write_key
from aoi.api.models import ProductList, ProductOut, product_out
from aoi.api.routers.deps import Services, read_upload, services

router = APIRouter(prefix="/products", tags=["products"])


@router.post("", response_model=ProductOut, status_code=201)
def create_product(
    _key: Annotated[str, Depends(require_write_key)],
    svc: Annotated[Services, Depends(services)],
    name: Annotated[str, Form(description="unique product name")],
    px_per_mm: Annotated[float, Form(description="calibration: pixels per mm")],
    template: Annotated[UploadFile, File(description="golden template image (tile or whole panel)")],
    rules: Annotated[str | None, Form(description="JSON pass/fail rules, VerdictRules.to_dict() shape")] = None,
) -> ProductOut:
    """Register a product (recipe): golden template, px/mm calibration and pass/fail rules."""
    return product_out(svc.products.create(name, px_per_mm, rules, read_upload(template)))


@router.get("", response_model=ProductList)
def list_products(svc: Annotated[Services, Depends(services)]) -> ProductList:
    items = [product_out(p) for p in svc.products.list()]
    return ProductList(items=items, total=len(items))


@router.get("/{product_id}", response_model=ProductOut)
def get_product(product_id: str, svc: Annotated[Services, Depends(services)]) -> ProductOut:
    return product_out(svc.products.get(product_id))
