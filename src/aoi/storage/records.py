"""Stored inspections as the service sees them: an `InspectionResult` plus where and when it was stored.

`InspectionResult` is the engine's result type; the database adds an id, a source, a time and the
operators' reviews. The mappers here are the only place ORM rows and schema objects meet.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aoi.pipeline.capture import CaptureSettings
from aoi.pipeline.trace import TraceSettings
from aoi.schema import Defect, DefectType, InspectionResult, Trace, Verdict
from aoi.storage.models import DefectRow, InspectionRow, ProductRow
from aoi.verdict import VerdictRules


class ReviewDecision(enum.StrEnum):
    CONFIRM = "confirm"
    FALSE_CALL = "false_call"
    RECLASSIFY = "reclassify"


# Decision -> stored status (a past participle: what the defect *is* after review).
REVIEW_STATUS = {
    ReviewDecision.CONFIRM: "confirmed",
    ReviewDecision.FALSE_CALL: "false_call",
    ReviewDecision.RECLASSIFY: "reclassified",
}


class DefectOrigin(enum.StrEnum):
    """Who reported a defect: the engine, or an operator who found one the engine missed (an escape)."""

    ENGINE = "engine"
    OPERATOR = "operator"


@dataclass(frozen=True)
class DefectReview:
    status: str
    reviewed_type: DefectType | None
    reviewed_by: str
    reviewed_at: datetime

    @property
    def is_real(self) -> bool:
        return self.status in ("confirmed", "reclassified")


@dataclass(frozen=True)
class StoredInspection:
    id: str
    result: InspectionResult
    created_at: datetime
    source: str
    product_id: str | None
    product_name: str | None
    test_image_path: str
    template_path: str | None
    reviews: dict[str, DefectReview] = field(default_factory=dict)
    operator_added: frozenset[str] = frozenset()  # ids of the defects an operator added (the rest: the engine's)

    def origin(self, defect_id: str | None) -> DefectOrigin:
        return DefectOrigin.OPERATOR if defect_id in self.operator_added else DefectOrigin.ENGINE


@dataclass(frozen=True)
class Product:
    id: str
    name: str
    template_path: str
    template_size_wh: tuple[int, int]
    px_per_mm: float
    rules: VerdictRules
    created_at: datetime
    capture: CaptureSettings | None = None  # engine settings of its captures; None: the bundle's own
    trace: TraceSettings | None = None  # how its boards' lot and panel are read; None: not at all


def as_utc(moment: datetime) -> datetime:
    """SQLite returns naive datetimes; every stored time is UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def product_from_row(row: ProductRow) -> Product:
    return Product(
        id=row.id,
        name=row.name,
        template_path=row.template_path,
        template_size_wh=(row.template_width_px, row.template_height_px),
        px_per_mm=row.px_per_mm,
        rules=VerdictRules.from_dict(row.rules),
        created_at=as_utc(row.created_at),
        capture=None if row.capture is None else CaptureSettings.from_dict(row.capture),
        trace=None if row.trace is None else TraceSettings.from_dict(row.trace),
    )


def defect_to_row(defect: Defect, defect_id: str, position: int) -> DefectRow:
    x1, y1, x2, y2 = defect.box_px
    mm: tuple[float | None, ...] = defect.box_mm if defect.box_mm is not None else (None, None, None, None)
    return DefectRow(
        id=defect_id,
        position=position,
        type=defect.type.value,
        confidence=defect.confidence,
        x1_px=x1,
        y1_px=y1,
        x2_px=x2,
        y2_px=y2,
        x1_mm=mm[0],
        y1_mm=mm[1],
        x2_mm=mm[2],
        y2_mm=mm[3],
    )


def defect_from_row(row: DefectRow) -> Defect:
    box_mm: Any = None
    if row.x1_mm is not None:
        box_mm = (row.x1_mm, row.y1_mm, row.x2_mm, row.y2_mm)
    return Defect(
        type=DefectType(row.type),
        confidence=row.confidence,
        box_px=(row.x1_px, row.y1_px, row.x2_px, row.y2_px),
        box_mm=box_mm,
        id=row.id,
    )


def review_from_row(row: DefectRow) -> DefectReview | None:
    if row.review_status is None or row.reviewed_at is None:
        return None
    return DefectReview(
        status=row.review_status,
        reviewed_type=DefectType(row.reviewed_type) if row.reviewed_type else None,
        reviewed_by=row.reviewed_by or "",
        reviewed_at=as_utc(row.reviewed_at),
    )


def inspection_to_row(
    result: InspectionResult,
    inspection_id: str,
    defect_ids: list[str],
    *,
    product_id: str | None,
    source: str,
    source_key: str | None,
    test_image_path: str,
    template_path: str | None,
) -> InspectionRow:
    row = InspectionRow(
        id=inspection_id,
        image_id=result.image_id,
        product_id=product_id,
        source=source,
        source_key=source_key,
        verdict=result.verdict.value,
        width_px=result.image_size_wh[0],
        height_px=result.image_size_wh[1],
        px_per_mm=result.px_per_mm,
        model_version=result.model_version,
        timings_ms={k: float(v) for k, v in result.timings_ms.items()},
        registration={k: float(v) for k, v in result.registration.items()},
        defect_count=len(result.defects),
        test_image_path=test_image_path,
        template_path=template_path,
    )
    # Set only when known: an unset column is left out of the INSERT, so a database not yet at 0008 still stores
    for name, value in result.trace.to_dict().items():
        if value is not None:
            setattr(row, name, value)
    row.defects = [defect_to_row(d, did, n) for n, (d, did) in enumerate(zip(result.defects, defect_ids, strict=True))]
    return row


def inspection_from_row(row: InspectionRow) -> StoredInspection:
    product_name = row.product.name if row.product is not None else None
    result = InspectionResult(
        image_id=row.image_id,
        image_size_wh=(row.width_px, row.height_px),
        defects=tuple(defect_from_row(d) for d in row.defects),
        verdict=Verdict(row.verdict),
        px_per_mm=row.px_per_mm,
        model_version=row.model_version,
        timings_ms=dict(row.timings_ms or {}),
        registration=dict(row.registration or {}),
        product=product_name,
        trace=Trace(lot=row.lot, panel_id=row.panel_id, line=row.line),
    )
    reviews = {d.id: r for d in row.defects if (r := review_from_row(d)) is not None}
    operator_added = frozenset(d.id for d in row.defects if d.origin == DefectOrigin.OPERATOR)
    return StoredInspection(
        id=row.id,
        result=result,
        created_at=as_utc(row.created_at),
        source=row.source,
        product_id=row.product_id,
        product_name=product_name,
        test_image_path=row.test_image_path,
        template_path=row.template_path,
        reviews=reviews,
        operator_added=operator_added,
    )


def utc_now_aware() -> datetime:
    return datetime.now(UTC)
