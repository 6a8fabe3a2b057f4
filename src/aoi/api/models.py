"""Request and response bodies of the HTTP API, with explicit mappers from the storage/schema objects."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from aoi.schema import Defect
from aoi.storage.records import DefectOrigin, DefectReview, Product, ReviewDecision, StoredInspection
from aoi.storage.stats import LineStats, YieldCount

API_PREFIX = "/api/v1"


class ReviewOut(BaseModel):
    status: str = Field(description="confirmed | false_call | reclassified")
    type: str | None = Field(None, description="the new defect type of a reclassified defect")
    reviewed_by: str
    reviewed_at: datetime


class DefectOut(BaseModel):
    id: str
    type: str
    confidence: float
    box_px: list[float] = Field(description="[x1, y1, x2, y2] in image pixels")
    box_mm: list[float] | None = Field(None, description="[x1, y1, x2, y2] in mm")
    review: ReviewOut | None = None
    origin: DefectOrigin = Field(
        DefectOrigin.ENGINE,
        description="engine: reported by the machine; operator: added by an operator because the machine missed"
        " it (an escape, stored confirmed)",
    )


class InspectionOut(BaseModel):
    id: str
    image_id: str
    product: str | None = Field(None, description="product id")
    product_name: str | None = None
    verdict: str
    defects: list[DefectOut]
    timings_ms: dict[str, float]
    model_version: str
    px_per_mm: float
    image_size_wh: list[int]
    registration: dict[str, float]
    source: str
    created_at: datetime
    overlay_url: str
    lot: str | None = Field(None, description="production lot (null: not known)")
    panel_id: str | None = Field(None, description="panel (serial) id (null: not known)")
    line: str | None = Field(None, description="the line that inspected it (null: not known)")


class InspectionPage(BaseModel):
    items: list[InspectionOut]
    total: int
    limit: int
    offset: int


class ProductOut(BaseModel):
    id: str
    name: str
    px_per_mm: float
    rules: dict[str, Any] = Field(description="aoi.verdict.VerdictRules.to_dict() shape")
    capture: dict[str, dict[str, Any]] | None = Field(
        None,
        description="capture setup: {'registration': {...}, 'candidates': {...}}, the engine settings that"
        " differ from the model bundle's (what `aoi tolerance --fine-pitch` prints); null: the bundle's own",
    )
    template_size_wh: list[int]
    created_at: datetime
    trace: dict[str, str | None] | None = Field(
        None,
        description="how its boards' lot and panel are read: {'file_pattern': regex with (?P<lot>...) and/or"
        " (?P<panel>...), 'code': 'qr', 'datamatrix' or null, 'code_pattern': regex for the code's text};"
        " null: not read",
    )


class ProductList(BaseModel):
    items: list[ProductOut]
    total: int


class ReviewIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    decision: ReviewDecision
    type: str | None = Field(None, description="new defect type; required with decision=reclassify")
    reviewer: str | None = Field(
        None,
        max_length=200,
        description="deprecated: the reviewer recorded is the API key's name; if given, it must be that name (403)",
    )


class ReviewedDefectOut(BaseModel):
    inspection_id: str
    defect: DefectOut


class MissedDefectIn(BaseModel):
    """A defect the machine missed, marked by an operator on the inspected image."""

    model_config = ConfigDict(extra="forbid")

    type: str = Field(max_length=32, description="defect type (GET /api/v1/defect-types), e.g. short")
    box_px: list[float] = Field(
        min_length=4,
        max_length=4,
        description="[x1, y1, x2, y2] in image pixels, x1 < x2 and y1 < y2, inside the image",
    )


class AddedDefectOut(BaseModel):
    inspection_id: str
    verdict: str = Field(description="the inspection's verdict after the addition (a missed defect may fail it)")
    defect: DefectOut


class YieldOut(BaseModel):
    total: int
    passed: int
    failed: int
    yield_: float | None = Field(None, alias="yield", serialization_alias="yield")

    model_config = ConfigDict(populate_by_name=True)


class HourOut(YieldOut):
    hour: datetime


class ProductYieldOut(YieldOut):
    product: str | None
    product_name: str | None


class ReviewCountsOut(BaseModel):
    defects: int
    reviewed: int
    pending: int
    confirmed: int
    false_calls: int
    reclassified: int


class StatsOut(BaseModel):
    inspections: YieldOut
    defects_by_type: dict[str, int] = Field(description="by type after review; false calls excluded")
    per_hour: list[HourOut]
    per_product: list[ProductYieldOut]
    reviews: ReviewCountsOut


# --- mappers --------------------------------------------------------------------------------------


def review_out(review: DefectReview) -> ReviewOut:
    return ReviewOut(
        status=review.status,
        type=review.reviewed_type.value if review.reviewed_type else None,
        reviewed_by=review.reviewed_by,
        reviewed_at=review.reviewed_at,
    )


def defect_out(defect: Defect, review: DefectReview | None, origin: DefectOrigin = DefectOrigin.ENGINE) -> DefectOut:
    data = defect.to_dict()
    return DefectOut(
        id=data["id"],
        type=data["type"],
        confidence=data["confidence"],
        box_px=data["box_px"],
        box_mm=data["box_mm"],
        review=review_out(review) if review is not None else None,
        origin=origin,
    )


def inspection_out(stored: StoredInspection) -> InspectionOut:
    result = stored.result.to_dict()
    return InspectionOut(
        id=stored.id,
        image_id=result["image_id"],
        product=stored.product_id,
        product_name=stored.product_name,
        verdict=result["verdict"],
        defects=[defect_out(d, stored.reviews.get(d.id or ""), stored.origin(d.id)) for d in stored.result.defects],
        timings_ms=result["timings_ms"],
        model_version=result["model_version"],
        px_per_mm=result["px_per_mm"],
        image_size_wh=result["image_size_wh"],
        registration=result["registration"],
        source=stored.source,
        created_at=stored.created_at,
        overlay_url=f"{API_PREFIX}/inspections/{stored.id}/overlay.png",
        lot=stored.result.trace.lot,
        panel_id=stored.result.trace.panel_id,
        line=stored.result.trace.line,
    )


def product_out(product: Product) -> ProductOut:
    return ProductOut(
        id=product.id,
        name=product.name,
        px_per_mm=product.px_per_mm,
        rules=product.rules.to_dict(),
        capture=None if product.capture is None else product.capture.to_dict(),
        template_size_wh=list(product.template_size_wh),
        created_at=product.created_at,
        trace=None if product.trace is None else product.trace.to_dict(),
    )


def _yield_fields(counts: YieldCount) -> dict[str, Any]:
    ratio = counts.yield_ratio
    return {
        "total": counts.total,
        "passed": counts.passed,
        "failed": counts.failed,
        "yield_": None if ratio is None else round(ratio, 6),
    }


def stats_out(stats: LineStats) -> StatsOut:
    return StatsOut(
        inspections=YieldOut(**_yield_fields(stats.overall)),
        defects_by_type=stats.defects_by_type,
        per_hour=[HourOut(hour=h.hour, **_yield_fields(h.counts)) for h in stats.per_hour],
        per_product=[
            ProductYieldOut(product=p.product_id, product_name=p.product_name, **_yield_fields(p.counts))
            for p in stats.per_product
        ],
        reviews=ReviewCountsOut(
            defects=stats.reviews.defects,
            reviewed=stats.reviews.reviewed,
            pending=stats.reviews.pending,
            confirmed=stats.reviews.confirmed,
            false_calls=stats.reviews.false_calls,
            reclassified=stats.reviews.reclassified,
        ),
    )
