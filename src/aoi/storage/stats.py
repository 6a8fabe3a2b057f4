"""Line statistics: yield, the defect Pareto by type, per hour and per product, and review counts.

Aggregation runs in SQL (GROUP BY) so that the cost does not grow with what is sent to the client.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import ColumnElement, and_, case, func, or_, select
from sqlalchemy.orm import Session

from aoi.storage.inspections import InspectionFilter
from aoi.storage.models import DefectRow, InspectionRow, ProductRow
from aoi.storage.records import DefectOrigin, as_utc
from aoi.storage.review_queue import ReviewFilter, count_pending


@dataclass(frozen=True)
class YieldCount:
    total: int
    passed: int

    @property
    def failed(self) -> int:
        return self.total - self.passed

    @property
    def yield_ratio(self) -> float | None:
        return None if self.total == 0 else self.passed / self.total


@dataclass(frozen=True)
class HourCount:
    hour: datetime
    counts: YieldCount


@dataclass(frozen=True)
class ProductCount:
    product_id: str | None
    product_name: str | None
    counts: YieldCount


@dataclass(frozen=True)
class ReviewCounts:
    """Decisions on the engine's defects (operator-added ones are escapes, counted by the reports);
    `pending`: defects awaiting review, from `review_queue.count_pending` (the queue's own count)."""

    defects: int
    confirmed: int
    false_calls: int
    reclassified: int
    pending: int

    @property
    def reviewed(self) -> int:
        return self.confirmed + self.false_calls + self.reclassified


@dataclass(frozen=True)
class LineStats:
    overall: YieldCount
    defects_by_type: dict[str, int]
    per_hour: list[HourCount]
    per_product: list[ProductCount]
    reviews: ReviewCounts


def _passed_sum() -> ColumnElement[int]:
    return func.coalesce(func.sum(case((InspectionRow.verdict == "pass", 1), else_=0)), 0)


def _hour_bucket(session: Session) -> ColumnElement[object]:
    if session.get_bind().dialect.name == "sqlite":
        return func.strftime("%Y-%m-%d %H:00:00", InspectionRow.created_at)
    return func.date_trunc("hour", InspectionRow.created_at)


def _parse_hour(value: object) -> datetime:
    if isinstance(value, datetime):
        return as_utc(value)
    return datetime.strptime(str(value), "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)


def compute_stats(session: Session, filters: InspectionFilter) -> LineStats:
    total, passed = session.execute(
        filters.apply(select(func.count(InspectionRow.id), _passed_sum()).select_from(InspectionRow))
    ).one()
    overall = YieldCount(int(total), int(passed))

    hour = _hour_bucket(session).label("hour")
    hour_rows = session.execute(
        filters.apply(select(hour, func.count(InspectionRow.id), _passed_sum()).select_from(InspectionRow))
        .group_by(hour)
        .order_by(hour)
    ).all()
    per_hour = [HourCount(_parse_hour(h), YieldCount(int(n), int(p))) for h, n, p in hour_rows]

    product_rows = session.execute(
        filters.apply(
            select(InspectionRow.product_id, ProductRow.name, func.count(InspectionRow.id), _passed_sum())
            .select_from(InspectionRow)
            .outerjoin(ProductRow, ProductRow.id == InspectionRow.product_id)
        )
        .group_by(InspectionRow.product_id, ProductRow.name)
        .order_by(ProductRow.name)
    ).all()
    per_product = [ProductCount(pid, name, YieldCount(int(n), int(p))) for pid, name, n, p in product_rows]

    # A reclassified defect counts as its new type; false calls are not defects.
    effective_type = func.coalesce(DefectRow.reviewed_type, DefectRow.type).label("effective_type")
    not_false_call = or_(DefectRow.review_status.is_(None), DefectRow.review_status != "false_call")
    joined = select(effective_type, func.count(DefectRow.id)).join(
        InspectionRow, InspectionRow.id == DefectRow.inspection_id
    )
    type_rows = session.execute(
        filters.apply(joined.where(not_false_call)).group_by(effective_type).order_by(func.count(DefectRow.id).desc())
    ).all()
    defects_by_type = {str(t): int(n) for t, n in type_rows}

    def status_sum(status: str) -> ColumnElement[int]:
        return func.coalesce(func.sum(case((and_(DefectRow.review_status == status), 1), else_=0)), 0)

    n_defects, confirmed, false_calls, reclassified = session.execute(
        filters.apply(
            select(
                func.count(DefectRow.id),
                status_sum("confirmed"),
                status_sum("false_call"),
                status_sum("reclassified"),
            )
            .join(InspectionRow, InspectionRow.id == DefectRow.inspection_id)
            .where(DefectRow.origin == DefectOrigin.ENGINE.value)  # decisions on the machine's calls only
        )
    ).one()
    pending = count_pending(session, ReviewFilter(inspections=filters))  # the review queue's badge reads this too
    reviews = ReviewCounts(int(n_defects), int(confirmed), int(false_calls), int(reclassified), pending)
    return LineStats(overall, defects_by_type, per_hour, per_product, reviews)
