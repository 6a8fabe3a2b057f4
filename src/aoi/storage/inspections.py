"""Inspection repository: add, fetch, filter with pagination, record defect reviews, and add the defects an
operator found that the engine missed (escapes)."""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session, selectinload

from aoi.schema import Defect, DefectType, Verdict
from aoi.storage.models import DefectRow, InspectionRow, utc_now
from aoi.storage.records import (
    REVIEW_STATUS,
    DefectOrigin,
    ReviewDecision,
    StoredInspection,
    defect_to_row,
    inspection_from_row,
)
from aoi.verdict import VerdictRules


class ReviewError(ValueError):
    """A review request that contradicts itself (reclassify without a type, or a type with confirm)."""


class MissedDefectError(ValueError):
    """An operator-added defect whose box is not a box on the inspected image."""


def check_box_on_image(box_px: Sequence[float], image_wh: tuple[int, int]) -> tuple[float, float, float, float]:
    """`box_px` as [x1, y1, x2, y2] of finite numbers with x1 < x2, y1 < y2, inside a `image_wh` image."""
    if len(box_px) != 4:
        raise MissedDefectError(f"box_px must be 4 numbers [x1, y1, x2, y2], got {len(box_px)}")
    x1, y1, x2, y2 = (float(v) for v in box_px)
    if not all(math.isfinite(v) for v in (x1, y1, x2, y2)):
        raise MissedDefectError("box_px must hold finite numbers (no NaN or infinity)")
    if not (x1 < x2 and y1 < y2):
        raise MissedDefectError(f"box_px must have x1 < x2 and y1 < y2, got [{x1:g}, {y1:g}, {x2:g}, {y2:g}]")
    width, height = image_wh
    if x1 < 0 or y1 < 0 or x2 > width or y2 > height:
        raise MissedDefectError(f"box_px [{x1:g}, {y1:g}, {x2:g}, {y2:g}] is not inside the {width}x{height} px image")
    return (x1, y1, x2, y2)


def verdict_with(row: InspectionRow, rules: VerdictRules) -> Verdict:
    """The inspection's verdict once its defects include operator-added ones: the stored verdict when it
    failed (a review never passes a board the engine failed), else what `rules` give the defects that count
    after review (false calls left out, reclassified ones under their new type)."""
    if row.verdict == Verdict.FAIL.value:
        return Verdict.FAIL
    counted = [
        Defect(
            type=DefectType(d.reviewed_type or d.type),
            confidence=d.confidence,
            box_px=(d.x1_px, d.y1_px, d.x2_px, d.y2_px),
        )
        for d in row.defects
        if d.review_status != REVIEW_STATUS[ReviewDecision.FALSE_CALL]
    ]
    return rules.verdict(counted, row.px_per_mm)


@dataclass(frozen=True)
class InspectionFilter:
    product_id: str | None = None
    verdict: Verdict | None = None
    since: datetime | None = None
    until: datetime | None = None
    has_defects: bool | None = None
    lot: str | None = None
    panel_id: str | None = None
    line: str | None = None

    def apply(self, query: Select) -> Select:  # type: ignore[type-arg]
        if self.product_id is not None:
            query = query.where(InspectionRow.product_id == self.product_id)
        if self.verdict is not None:
            query = query.where(InspectionRow.verdict == self.verdict.value)
        if self.since is not None:
            query = query.where(InspectionRow.created_at >= self.since)
        if self.until is not None:
            query = query.where(InspectionRow.created_at < self.until)
        if self.has_defects is True:
            query = query.where(InspectionRow.defect_count > 0)
        elif self.has_defects is False:
            query = query.where(InspectionRow.defect_count == 0)
        if self.lot is not None:
            query = query.where(InspectionRow.lot == self.lot)
        if self.panel_id is not None:
            query = query.where(InspectionRow.panel_id == self.panel_id)
        if self.line is not None:
            query = query.where(InspectionRow.line == self.line)
        return query


class InspectionRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, row: InspectionRow) -> None:
        self.session.add(row)
        self.session.flush()

    def get(self, inspection_id: str) -> StoredInspection | None:
        row = self.session.scalar(
            select(InspectionRow)
            .where(InspectionRow.id == inspection_id)
            .options(selectinload(InspectionRow.defects), selectinload(InspectionRow.product))
        )
        return None if row is None else inspection_from_row(row)

    def id_for_source_key(self, source_key: str) -> str | None:
        return self.session.scalar(select(InspectionRow.id).where(InspectionRow.source_key == source_key))

    def page(self, filters: InspectionFilter, limit: int, offset: int) -> tuple[list[StoredInspection], int]:
        """One page, newest first, and the total number of matches."""
        total = self.session.scalar(filters.apply(select(func.count()).select_from(InspectionRow))) or 0
        rows = self.session.scalars(
            filters.apply(select(InspectionRow))
            .order_by(InspectionRow.created_at.desc(), InspectionRow.id.desc())
            .limit(limit)
            .offset(offset)
            .options(selectinload(InspectionRow.defects), selectinload(InspectionRow.product))
        )
        return [inspection_from_row(r) for r in rows], int(total)

    def review_defect(
        self, defect_id: str, decision: ReviewDecision, reviewer: str, new_type: DefectType | None = None
    ) -> str | None:
        """Store the operator's decision on a defect; returns its inspection id, or None if no such defect."""
        if decision is ReviewDecision.RECLASSIFY and new_type is None:
            raise ReviewError("reclassify needs the new defect type in 'type'")
        if decision is not ReviewDecision.RECLASSIFY and new_type is not None:
            raise ReviewError(f"'type' is only allowed with 'reclassify', not with {decision.value!r}")
        row = self.session.get(DefectRow, defect_id)
        if row is None:
            return None
        row.review_status = REVIEW_STATUS[decision]
        row.reviewed_type = new_type.value if new_type is not None else None
        row.reviewed_by = reviewer
        row.reviewed_at = utc_now()
        self.session.flush()
        return row.inspection_id

    def add_missed_defect(
        self, inspection_id: str, defect_type: DefectType, box_px: Sequence[float], reviewer: str
    ) -> str | None:
        """Store a defect the engine missed, found by `reviewer`: origin 'operator', confidence 1, already
        confirmed, after the inspection's defects; its defect count and verdict follow (a board that passed
        fails when its product's rules count the new defect). Returns the new defect's id, or None when
        there is no such inspection; MissedDefectError for a box that is not on the image."""
        row = self.session.get(InspectionRow, inspection_id, with_for_update=True)
        if row is None:
            return None
        box = check_box_on_image(box_px, (row.width_px, row.height_px))
        defect = Defect(defect_type, 1.0, box).with_mm(row.px_per_mm)
        position = max((d.position for d in row.defects), default=-1) + 1
        added = defect_to_row(defect, uuid.uuid4().hex, position)
        added.origin = DefectOrigin.OPERATOR.value
        added.review_status = REVIEW_STATUS[ReviewDecision.CONFIRM]
        added.reviewed_by = reviewer
        added.reviewed_at = utc_now()
        row.defects.append(added)
        row.defect_count = len(row.defects)
        rules = VerdictRules.from_dict(row.product.rules) if row.product is not None else VerdictRules()
        row.verdict = verdict_with(row, rules).value
        self.session.flush()
        return added.id

    def reviewed_inspection_ids(self) -> list[str]:
        """Inspections with at least one reviewed defect, oldest first."""
        query = (
            select(DefectRow.inspection_id)
            .where(DefectRow.review_status.is_not(None))
            .group_by(DefectRow.inspection_id)
            .order_by(DefectRow.inspection_id)
        )
        return list(self.session.scalars(query))
