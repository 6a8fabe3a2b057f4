"""The figures of a lot or shift report: yield, defect Pareto, a heat map of defect positions, and what
operators say about the machine: false calls (reported defects they rejected) and escapes (defects the
machine missed, which they added).

Counting follows the line statistics (`stats.py`): a reclassified defect counts as its new type, a
false call is not a defect. The review figures (confirmed, reclassified, false calls, the false-call
rate) are about the engine's defects only; an operator-added defect is an escape (unless later marked a
false call: withdrawn), counted among the defects, the Pareto and the heat map. Totals are aggregated in
SQL; the heat map bins defect centres in Python (one row per defect of the scope, streamed), since SQLite
has no portable FLOOR.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, or_, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from aoi.storage.inspections import InspectionFilter
from aoi.storage.models import DefectRow, InspectionRow, ProductRow
from aoi.storage.records import DefectOrigin, as_utc
from aoi.storage.stats import YieldCount

HEAT_MAP_COLS = 10
HEAT_MAP_ROWS = 10
FAILED_BOARDS_SHOWN = 100
ESCAPES_NOTE = (
    "escapes are defects the machine missed that operators added; escape rate = escapes / (confirmed +"
    " reclassified + escapes), the share of the real defects found that the machine did not report"
)


@dataclass(frozen=True)
class ReportScope:
    """What a report covers: `kind` "lot" or "shift", its title and the inspections it counts."""

    kind: str
    title: str
    filters: InspectionFilter
    shift: str | None = None
    shift_hours: str | None = None
    date: str | None = None


@dataclass(frozen=True)
class ReviewFigures:
    """Operators' decisions on the engine's reported defects of the scope (`defects`), and the defects
    they added because the engine missed them (`escapes`, withdrawn ones left out)."""

    defects: int
    confirmed: int
    false_calls: int
    reclassified: int
    escapes: int = 0

    @property
    def reviewed(self) -> int:
        return self.confirmed + self.false_calls + self.reclassified

    @property
    def pending(self) -> int:
        return self.defects - self.reviewed


@dataclass(frozen=True)
class ParetoRow:
    """One defect type: `count` after review (reclassified defects under their new type, false calls out,
    operator-added ones in), `reported` by the machine under this type, how many of those operators
    rejected (false calls), and how many of this type operators added because the machine missed them."""

    type: str
    count: int
    reported: int
    false_calls: int
    escapes: int = 0


@dataclass(frozen=True)
class HeatMap:
    """Defect centres binned on a `cols` x `rows` grid over the board (positions relative to each
    image's size, so boards of one product line up); `counts[row][col]`. `board_wh`: the most common
    image size in the scope, for drawing cells at the board's aspect."""

    cols: int
    rows: int
    counts: tuple[tuple[int, ...], ...]
    board_wh: tuple[int, int] | None

    @property
    def total(self) -> int:
        return sum(sum(row) for row in self.counts)

    @property
    def peak(self) -> int:
        return max((max(row) for row in self.counts), default=0)


@dataclass(frozen=True)
class FailedBoard:
    inspection_id: str
    created_at: datetime
    image_id: str
    lot: str | None
    panel_id: str | None
    line: str | None
    defects: int
    false_calls: int


@dataclass(frozen=True)
class QualityReport:
    scope: ReportScope
    generated_at: datetime
    inspections: YieldCount
    first_at: datetime | None
    last_at: datetime | None
    panels: int  # distinct panel ids among the inspections (a panel inspected twice counts once)
    lots: list[str]
    lines: list[str]
    products: list[str]
    model_versions: list[str]
    reviewers: list[str]
    pareto: list[ParetoRow]
    reviews: ReviewFigures
    heat_map: HeatMap
    failed_boards: list[FailedBoard]
    failed_boards_total: int

    @property
    def defects_counted(self) -> int:
        """Defects after review: reported ones that are not false calls, and the escapes operators added."""
        return self.reviews.defects - self.reviews.false_calls + self.reviews.escapes

    @property
    def escape_rate(self) -> float | None:
        """Escapes among the real defects found (confirmed, reclassified and escapes); None without any."""
        found = self.reviews.confirmed + self.reviews.reclassified + self.reviews.escapes
        return None if found == 0 else self.reviews.escapes / found

    @property
    def false_call_rate(self) -> float | None:
        """False calls among the reviewed defects (None before any review)."""
        reviewed = self.reviews.reviewed
        return None if reviewed == 0 else self.reviews.false_calls / reviewed

    @property
    def false_calls_per_board(self) -> float | None:
        return None if self.inspections.total == 0 else self.reviews.false_calls / self.inspections.total

    @property
    def review_coverage(self) -> float | None:
        """Share of reported defects an operator has decided on."""
        return None if self.reviews.defects == 0 else self.reviews.reviewed / self.reviews.defects


def _status_sum(status: str) -> ColumnElement[int]:
    return func.coalesce(func.sum(case((DefectRow.review_status == status, 1), else_=0)), 0)


def _not_false_call() -> ColumnElement[bool]:
    return or_(DefectRow.review_status.is_(None), DefectRow.review_status != "false_call")


def _from_engine() -> ColumnElement[bool]:
    return DefectRow.origin == DefectOrigin.ENGINE.value


def _escape() -> ColumnElement[bool]:
    """An operator-added defect that was not withdrawn (marked a false call afterwards)."""
    return and_(DefectRow.origin == DefectOrigin.OPERATOR.value, _not_false_call())


def _distinct(session: Session, filters: InspectionFilter, column: InstrumentedAttribute[Any]) -> list[str]:
    rows = session.scalars(
        filters.apply(select(column).select_from(InspectionRow).where(column.is_not(None))).distinct()
    )
    return sorted(str(v) for v in rows)


def compute_report(session: Session, scope: ReportScope, now: datetime) -> QualityReport:
    filters = scope.filters
    total, passed, first_at, last_at, panels = session.execute(
        filters.apply(
            select(
                func.count(InspectionRow.id),
                func.coalesce(func.sum(case((InspectionRow.verdict == "pass", 1), else_=0)), 0),
                func.min(InspectionRow.created_at),
                func.max(InspectionRow.created_at),
                func.count(func.distinct(InspectionRow.panel_id)),
            ).select_from(InspectionRow)
        )
    ).one()
    products = sorted(
        str(name)
        for name in session.scalars(
            filters.apply(
                select(ProductRow.name)
                .select_from(InspectionRow)
                .join(ProductRow, ProductRow.id == InspectionRow.product_id)
            ).distinct()
        )
    )
    with_defects = select().select_from(DefectRow).join(InspectionRow, InspectionRow.id == DefectRow.inspection_id)
    reviewers = sorted(
        str(v)
        for v in session.scalars(
            filters.apply(
                with_defects.add_columns(DefectRow.reviewed_by).where(DefectRow.reviewed_by.is_not(None))
            ).distinct()
        )
    )
    n_defects, confirmed, false_calls, reclassified = session.execute(
        filters.apply(
            with_defects.add_columns(
                func.count(DefectRow.id),
                _status_sum("confirmed"),
                _status_sum("false_call"),
                _status_sum("reclassified"),
            ).where(_from_engine())
        )
    ).one()
    escapes = session.scalar(filters.apply(with_defects.add_columns(func.count(DefectRow.id)).where(_escape())))
    return QualityReport(
        scope=scope,
        generated_at=now,
        inspections=YieldCount(int(total), int(passed)),
        first_at=as_utc(first_at) if first_at is not None else None,
        last_at=as_utc(last_at) if last_at is not None else None,
        panels=int(panels),
        lots=_distinct(session, filters, InspectionRow.lot),
        lines=_distinct(session, filters, InspectionRow.line),
        products=products,
        model_versions=_distinct(session, filters, InspectionRow.model_version),
        reviewers=reviewers,
        pareto=_pareto(session, filters),
        reviews=ReviewFigures(int(n_defects), int(confirmed), int(false_calls), int(reclassified), int(escapes or 0)),
        heat_map=_heat_map(session, filters),
        failed_boards=_failed_boards(session, filters),
        failed_boards_total=int(total) - int(passed),
    )


def _pareto(session: Session, filters: InspectionFilter) -> list[ParetoRow]:
    joined = select().select_from(DefectRow).join(InspectionRow, InspectionRow.id == DefectRow.inspection_id)
    effective = func.coalesce(DefectRow.reviewed_type, DefectRow.type).label("effective_type")
    counted_rows = session.execute(
        filters.apply(joined.add_columns(effective, func.count(DefectRow.id)).where(_not_false_call())).group_by(
            effective
        )
    )
    counted = {str(t): int(n) for t, n in counted_rows}
    reported = {
        str(t): (int(n), int(f))
        for t, n, f in session.execute(
            filters.apply(
                joined.add_columns(DefectRow.type, func.count(DefectRow.id), _status_sum("false_call")).where(
                    _from_engine()
                )
            ).group_by(DefectRow.type)
        )
    }
    escaped = {
        str(t): int(n)
        for t, n in session.execute(
            filters.apply(joined.add_columns(effective, func.count(DefectRow.id)).where(_escape())).group_by(effective)
        )
    }
    types = set(counted) | set(reported)
    rows = [
        ParetoRow(t, counted.get(t, 0), reported.get(t, (0, 0))[0], reported.get(t, (0, 0))[1], escaped.get(t, 0))
        for t in types
    ]
    return sorted(rows, key=lambda r: (-r.count, -r.reported, r.type))


def _heat_map(session: Session, filters: InspectionFilter) -> HeatMap:
    sizes = session.execute(
        filters.apply(
            select(InspectionRow.width_px, InspectionRow.height_px, func.count(InspectionRow.id)).select_from(
                InspectionRow
            )
        )
        .group_by(InspectionRow.width_px, InspectionRow.height_px)
        .order_by(func.count(InspectionRow.id).desc(), InspectionRow.width_px, InspectionRow.height_px)
        .limit(1)
    ).first()
    counts = [[0] * HEAT_MAP_COLS for _ in range(HEAT_MAP_ROWS)]
    query = filters.apply(
        select(
            DefectRow.x1_px,
            DefectRow.y1_px,
            DefectRow.x2_px,
            DefectRow.y2_px,
            InspectionRow.width_px,
            InspectionRow.height_px,
        )
        .join(InspectionRow, InspectionRow.id == DefectRow.inspection_id)
        .where(_not_false_call())
    )
    for x1, y1, x2, y2, width, height in session.execute(query.execution_options(yield_per=2000)):
        col = _cell((x1 + x2) / 2.0 / max(width, 1), HEAT_MAP_COLS)
        row = _cell((y1 + y2) / 2.0 / max(height, 1), HEAT_MAP_ROWS)
        counts[row][col] += 1
    return HeatMap(
        cols=HEAT_MAP_COLS,
        rows=HEAT_MAP_ROWS,
        counts=tuple(tuple(r) for r in counts),
        board_wh=(int(sizes[0]), int(sizes[1])) if sizes is not None else None,
    )


def _cell(ratio: float, cells: int) -> int:
    return min(cells - 1, max(0, int(ratio * cells)))


def _failed_boards(session: Session, filters: InspectionFilter) -> list[FailedBoard]:
    false_calls = (
        select(func.count(DefectRow.id))
        .where(DefectRow.inspection_id == InspectionRow.id, DefectRow.review_status == "false_call", _from_engine())
        .scalar_subquery()
    )
    rows = session.execute(
        filters.apply(
            select(
                InspectionRow.id,
                InspectionRow.created_at,
                InspectionRow.image_id,
                InspectionRow.lot,
                InspectionRow.panel_id,
                InspectionRow.line,
                InspectionRow.defect_count,
                false_calls,
            ).where(InspectionRow.verdict == "fail")
        )
        .order_by(InspectionRow.created_at, InspectionRow.id)
        .limit(FAILED_BOARDS_SHOWN)
    )
    return [
        FailedBoard(id_, as_utc(created), image_id, lot, panel, line, int(n), int(fc))
        for id_, created, image_id, lot, panel, line, n, fc in rows
    ]
