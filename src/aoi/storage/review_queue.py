"""The review queue: pending (unreviewed) defects over the whole backlog, in a stable order, handed to
operators one at a time under a lease.

`count_pending` is the one count of defects awaiting review: the line statistics and the review
queue (the dashboard's badge) both read it, so they cannot disagree.

A lease (`review_leases`, one row per leased defect) keeps the defect an operator is looking at away
from every other operator until it expires, its review is recorded, or its holder takes another (one
lease per holder). Two operators claiming at once never get the same defect: a claim locks the
defect row first (PostgreSQL: `FOR UPDATE SKIP LOCKED`; SQLite: one writer at a time), then writes
the lease with an upsert that only succeeds on a free, expired or own lease, then checks that the
defect is still pending. A review locks the defect row (its UPDATE) before it looks at the lease, so
the two meet in the same order and cannot deadlock.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, delete, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from aoi.schema import DefectType
from aoi.storage.inspections import InspectionFilter, InspectionRepository
from aoi.storage.models import DefectRow, InspectionRow, ReviewLeaseRow, utc_now
from aoi.storage.records import StoredInspection, as_utc

MAX_CLAIM_TRIES = 64  # candidates tried by one claim before it gives up (others took them meanwhile)


class QueueOrder(enum.StrEnum):
    """The queue's order: the oldest inspection's defects first (the default), or the newest's."""

    OLDEST = "oldest"
    NEWEST = "newest"


class CursorSide(enum.StrEnum):
    """Where to look from a defect: strictly after it, strictly before it, or from it (itself first)."""

    AFTER = "after"
    BEFORE = "before"
    AT = "at"


@dataclass(frozen=True)
class QueueCursor:
    defect_id: str
    side: CursorSide = CursorSide.AFTER


@dataclass(frozen=True)
class ReviewFilter:
    """Which pending defects a queue (or a count) covers: the inspections' filter plus the defect's
    own type (as the model called it) and confidence band (inclusive)."""

    inspections: InspectionFilter = field(default_factory=InspectionFilter)
    defect_type: DefectType | None = None
    min_confidence: float | None = None
    max_confidence: float | None = None

    def apply(self, query: Select[Any]) -> Select[Any]:
        """`query` must select from defects joined to inspections."""
        query = self.inspections.apply(query)
        if self.defect_type is not None:
            query = query.where(DefectRow.type == self.defect_type.value)
        if self.min_confidence is not None:
            query = query.where(DefectRow.confidence >= self.min_confidence)
        if self.max_confidence is not None:
            query = query.where(DefectRow.confidence <= self.max_confidence)
        return query


@dataclass(frozen=True)
class Lease:
    defect_id: str
    holder: str
    holder_name: str
    leased_at: datetime
    expires_at: datetime


@dataclass(frozen=True)
class QueueItem:
    """One pending defect with its inspection; `position`: its 1-based rank among the pending defects
    of the filter in queue order; `lease`: the caller's lease on it (None for a look without one)."""

    inspection: StoredInspection
    defect_id: str
    position: int
    lease: Lease | None = None


class LeaseHeld(RuntimeError):
    """The defect is leased to another operator whose lease has not expired."""

    def __init__(self, lease: Lease) -> None:
        super().__init__(f"defect {lease.defect_id} is leased to {lease.holder_name!r} until {lease.expires_at}")
        self.lease = lease


class QueueContention(RuntimeError):
    """Every candidate a claim tried was taken by other operators meanwhile; retry."""


def is_pending() -> ColumnElement[bool]:
    """A defect no operator has decided on yet."""
    return DefectRow.review_status.is_(None)


def count_pending(session: Session, filters: ReviewFilter | None = None) -> int:
    """Defects awaiting review: the count the statistics ("awaiting review") and the queue both give."""
    query = select(func.count(DefectRow.id)).join(InspectionRow, InspectionRow.id == DefectRow.inspection_id)
    return int(session.scalar((filters or ReviewFilter()).apply(query.where(is_pending()))) or 0)


def _lease_from_row(row: ReviewLeaseRow) -> Lease:
    return Lease(row.defect_id, row.holder, row.holder_name, as_utc(row.leased_at), as_utc(row.expires_at))


def _order_keys(order: QueueOrder) -> list[tuple[Any, bool]]:
    """(column, ascending) from most to least significant; the last two make the order total."""
    ascending = order is QueueOrder.OLDEST
    return [(InspectionRow.created_at, ascending), (InspectionRow.id, ascending), (DefectRow.position, True)]


def _beyond(keys: Sequence[tuple[Any, bool]], values: Sequence[Any], forward: bool) -> ColumnElement[bool]:
    """Rows strictly after `values` in the order of `keys` (forward) or strictly before them."""
    clauses = []
    for j, (column, ascending) in enumerate(keys):
        equal = [k == v for (k, _), v in zip(keys[:j], values[:j], strict=True)]
        later = column > values[j] if ascending == forward else column < values[j]
        clauses.append(and_(*equal, later))
    return or_(*clauses)


class ReviewQueue:
    """The queue over one session. `holder`: the caller's identity (an API key's owner id), None for
    an anonymous look; its own leases count as free to it."""

    def __init__(self, session: Session) -> None:
        self.session = session

    # --- reading -------------------------------------------------------------------------------

    def leased_count(self, filters: ReviewFilter, now: datetime | None = None) -> int:
        """Pending defects of the filter under a live lease (anyone's)."""
        now = now or utc_now()
        query = (
            select(func.count(DefectRow.id))
            .join(InspectionRow, InspectionRow.id == DefectRow.inspection_id)
            .join(ReviewLeaseRow, ReviewLeaseRow.defect_id == DefectRow.id)
            .where(is_pending(), ReviewLeaseRow.expires_at > now)
        )
        return int(self.session.scalar(filters.apply(query)) or 0)

    def peek(
        self,
        filters: ReviewFilter,
        order: QueueOrder = QueueOrder.OLDEST,
        cursor: QueueCursor | None = None,
        holder: str | None = None,
        now: datetime | None = None,
    ) -> QueueItem | None:
        """The defect the queue would hand `holder` next, without leasing it."""
        now = now or utc_now()
        defect_id = self._candidate(filters, order, cursor, holder, now, frozenset())
        if defect_id is None:
            return None
        return self._item(defect_id, filters, order, self._lease_of(defect_id, holder, now))

    def lease_of(self, defect_id: str) -> Lease | None:
        row = self.session.get(ReviewLeaseRow, defect_id)
        return None if row is None else _lease_from_row(row)

    def _lease_of(self, defect_id: str, holder: str | None, now: datetime) -> Lease | None:
        """`holder`'s live lease on the defect, if it has one."""
        if holder is None:
            return None
        row = self.session.scalars(
            select(ReviewLeaseRow).where(
                ReviewLeaseRow.defect_id == defect_id, ReviewLeaseRow.holder == holder, ReviewLeaseRow.expires_at > now
            )
        ).first()
        return None if row is None else _lease_from_row(row)

    def _available(self, holder: str | None, now: datetime) -> ColumnElement[bool]:
        """Not under another holder's live lease."""
        free = or_(ReviewLeaseRow.defect_id.is_(None), ReviewLeaseRow.expires_at <= now)
        return free if holder is None else or_(free, ReviewLeaseRow.holder == holder)

    def _candidate(
        self,
        filters: ReviewFilter,
        order: QueueOrder,
        cursor: QueueCursor | None,
        holder: str | None,
        now: datetime,
        excluded: frozenset[str],
    ) -> str | None:
        """The first available pending defect from the cursor on, wrapping round at the queue's end."""
        keys = _order_keys(order)
        forward = cursor is None or cursor.side is not CursorSide.BEFORE
        base = (
            select(DefectRow.id)
            .join(InspectionRow, InspectionRow.id == DefectRow.inspection_id)
            .outerjoin(ReviewLeaseRow, ReviewLeaseRow.defect_id == DefectRow.id)
            .where(is_pending(), self._available(holder, now))
        )
        if excluded:
            base = base.where(DefectRow.id.not_in(excluded))
        base = filters.apply(base).order_by(
            *(column.asc() if ascending == forward else column.desc() for column, ascending in keys)
        )
        if cursor is not None:
            anchor = self._anchor(cursor.defect_id, keys)
            if anchor is not None:
                beyond = _beyond(keys, anchor, forward)
                if cursor.side is CursorSide.AT:
                    beyond = or_(beyond, DefectRow.id == cursor.defect_id)
                found = self.session.scalar(base.where(beyond).limit(1))
                if found is not None:
                    return found
        return self.session.scalar(base.limit(1))  # from the start (or, going back, from the end)

    def _anchor(self, defect_id: str, keys: Sequence[tuple[Any, bool]]) -> tuple[Any, ...] | None:
        row = self.session.execute(
            select(*(column for column, _ in keys))
            .select_from(DefectRow)
            .join(InspectionRow, InspectionRow.id == DefectRow.inspection_id)
            .where(DefectRow.id == defect_id)
        ).first()
        return None if row is None else tuple(row)

    def _position(self, defect_id: str, filters: ReviewFilter, order: QueueOrder) -> int:
        keys = _order_keys(order)
        anchor = self._anchor(defect_id, keys)
        if anchor is None:
            return 0
        query = (
            select(func.count(DefectRow.id))
            .join(InspectionRow, InspectionRow.id == DefectRow.inspection_id)
            .where(is_pending(), _beyond(keys, anchor, forward=False))
        )
        return int(self.session.scalar(filters.apply(query)) or 0) + 1

    def _item(self, defect_id: str, filters: ReviewFilter, order: QueueOrder, lease: Lease | None) -> QueueItem:
        inspection_id = self.session.scalar(select(DefectRow.inspection_id).where(DefectRow.id == defect_id))
        stored = InspectionRepository(self.session).get(str(inspection_id))
        if stored is None:  # the defect's row was read in this session a moment ago
            raise LookupError(f"inspection {inspection_id} of defect {defect_id} vanished")
        return QueueItem(stored, defect_id, self._position(defect_id, filters, order), lease)

    # --- writing (call inside a transaction) ----------------------------------------------------

    def claim(
        self,
        filters: ReviewFilter,
        holder: str,
        holder_name: str,
        lease_s: float,
        order: QueueOrder = QueueOrder.OLDEST,
        cursor: QueueCursor | None = None,
        now: datetime | None = None,
    ) -> QueueItem | None:
        """Lease the next available pending defect to `holder` for `lease_s` (renewing it when the
        holder has it already) and release the holder's other leases. None when nothing is available;
        QueueContention when other operators took every candidate tried."""
        now = now or utc_now()
        excluded: set[str] = set()
        for _ in range(MAX_CLAIM_TRIES):
            defect_id = self._candidate(filters, order, cursor, holder, now, frozenset(excluded))
            if defect_id is None:
                self.release_holder(holder)
                return None
            lease = self._take(defect_id, holder, holder_name, now, now + timedelta(seconds=lease_s))
            if lease is not None:
                return self._item(defect_id, filters, order, lease)
            excluded.add(defect_id)
        raise QueueContention(f"the review queue is busy: {MAX_CLAIM_TRIES} candidates were taken by others; retry")

    def _take(self, defect_id: str, holder: str, holder_name: str, now: datetime, until: datetime) -> Lease | None:
        """The lease of one pending defect for `holder`, or None if it is not pending or not free."""
        lock = select(DefectRow.id).where(DefectRow.id == defect_id, is_pending())
        if self.session.scalar(lock.with_for_update(skip_locked=True)) is None:  # taken, reviewed, or under review
            return None
        self._upsert(defect_id, holder, holder_name, now, until, only_if_free=True)
        mine = self._lease_of(defect_id, holder, now)
        if mine is None:
            return None
        if self.session.scalar(lock) is None:  # reviewed meanwhile (SQLite: before this transaction wrote)
            self.session.execute(delete(ReviewLeaseRow).where(ReviewLeaseRow.defect_id == defect_id))
            return None
        self.release_holder(holder, keep=defect_id)
        return mine

    def _upsert(
        self, defect_id: str, holder: str, holder_name: str, now: datetime, until: datetime, only_if_free: bool
    ) -> None:
        """Insert the lease, or take over the existing row: when `only_if_free`, only an expired lease or
        the holder's own (a live lease of another stays as it is)."""
        values = {
            "defect_id": defect_id,
            "holder": holder,
            "holder_name": holder_name,
            "leased_at": now,
            "expires_at": until,
        }
        insert = pg_insert if self.session.get_bind().dialect.name == "postgresql" else sqlite_insert
        statement = insert(ReviewLeaseRow).values(**values)
        table = ReviewLeaseRow.__table__.c
        where = or_(table.expires_at <= now, table.holder == holder) if only_if_free else None
        self.session.execute(
            statement.on_conflict_do_update(
                index_elements=[table.defect_id],
                set_={k: statement.excluded[k] for k in ("holder", "holder_name", "leased_at", "expires_at")},
                where=where,
            )
        )

    def release_holder(self, holder: str, keep: str | None = None) -> int:
        """Drop `holder`'s leases (all, or all but `keep`); returns how many."""
        statement = delete(ReviewLeaseRow).where(ReviewLeaseRow.holder == holder)
        if keep is not None:
            statement = statement.where(ReviewLeaseRow.defect_id != keep)
        return int(self.session.execute(statement).rowcount or 0)  # type: ignore[attr-defined]

    def settle_for_review(self, defect_id: str, holder: str | None, now: datetime | None = None) -> None:
        """Called in a review's transaction after the defect row was written (and so locked): LeaseHeld
        when another holder's live lease is on it, else its lease (if any) is released."""
        now = now or utc_now()
        row = self.session.get(ReviewLeaseRow, defect_id, populate_existing=True)
        if row is not None and holder is not None and row.holder != holder and as_utc(row.expires_at) > now:
            raise LeaseHeld(_lease_from_row(row))
        self.session.execute(delete(ReviewLeaseRow).where(ReviewLeaseRow.defect_id == defect_id))

    def withdraw_review(
        self, defect_id: str, holder: str, holder_name: str, lease_s: float, now: datetime | None = None
    ) -> Lease:
        """Undo: the defect's review is cleared (it is pending again) and it is leased to `holder`, who
        decides it anew. The caller checked that the review is there and may be withdrawn."""
        now = now or utc_now()
        self.session.execute(
            update(DefectRow)
            .where(DefectRow.id == defect_id)
            .values(review_status=None, reviewed_type=None, reviewed_by=None, reviewed_at=None)
        )
        self._upsert(defect_id, holder, holder_name, now, now + timedelta(seconds=lease_s), only_if_free=False)
        self.release_holder(holder, keep=defect_id)
        lease = self._lease_of(defect_id, holder, now)
        if lease is None:  # just written in this transaction
            raise LookupError(f"the lease of defect {defect_id} was not stored")
        return lease

    def item(
        self, defect_id: str, filters: ReviewFilter, order: QueueOrder = QueueOrder.OLDEST, lease: Lease | None = None
    ) -> QueueItem:
        """A given defect as a queue item (after an undo)."""
        return self._item(defect_id, filters, order, lease)
