"""Inspection repository: add, fetch, filter with pagination, and record defect reviews."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session, selectinload

from aoi.schema import DefectType, Verdict
from aoi.storage.models import DefectRow, InspectionRow, utc_now
from aoi.storage.records import REVIEW_STATUS, ReviewDecision, StoredInspection, inspection_from_row


class ReviewError(ValueError):
    """A review request that contradicts itself (reclassify without a type, or a type with confirm)."""


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

    def reviewed_inspection_ids(self) -> list[str]:
        """Inspections with at least one reviewed defect, oldest first."""
        query = (
            select(DefectRow.inspection_id)
            .where(DefectRow.review_status.is_not(None))
            .group_by(DefectRow.inspection_id)
            .order_by(DefectRow.inspection_id)
        )
        return list(self.session.scalars(query))
