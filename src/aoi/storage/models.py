"""ORM rows of the results database. Rows are converted to and from `aoi.schema` objects in `mappers`.

Identifiers are 32-character hex strings (uuid4) so that the same rows work on SQLite and PostgreSQL
and ids can be made before the transaction that stores them (image files are named after them).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Float, ForeignKey, Index, Integer, String, Text, func
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

IMAGE_ID_MAX_CHARS = 500  # the image_id columns; longer ids are refused before they reach the database
PRODUCT_NAME_MAX_CHARS = 200
IDEMPOTENCY_KEY_MAX_CHARS = 255  # the Idempotency-Key header; longer keys are refused with a 422
TRACE_ID_MAX_CHARS = 64  # lot, panel and line ids (aoi.schema.TRACE_ID_PATTERN)


def utc_now() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


class ApiKeyRow(Base):
    """An API key, stored only as the sha256 of its token. `scopes`: comma-separated `keys.Scope` values;
    `expires_at`: when it stops working (NULL: never)."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    label: Mapped[str] = mapped_column(String(200), nullable=False, default="")
    scopes: Mapped[str] = mapped_column(String(100), nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utc_now)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)  # NULL: never


class ProductRow(Base):
    """A recipe: golden template, calibration, pass/fail rules (`VerdictRules.to_dict()` shape) and the
    capture setup (`CaptureSettings.to_dict()` shape; NULL: the model bundle's settings). `name` is
    unique whatever its case (the index below)."""

    __tablename__ = "products"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(PRODUCT_NAME_MAX_CHARS), unique=True, nullable=False)
    template_path: Mapped[str] = mapped_column(Text, nullable=False)
    template_width_px: Mapped[int] = mapped_column(Integer, nullable=False)
    template_height_px: Mapped[int] = mapped_column(Integer, nullable=False)
    px_per_mm: Mapped[float] = mapped_column(Float, nullable=False)
    rules: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    capture: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utc_now)
    # `TraceSettings.to_dict()` shape: how lot and panel are read (file name, QR code); NULL: not at all
    trace: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True), nullable=True)


# Names are unique whatever their case (migration 0006): `DeepPCB` and `deeppcb` would share a hot-folder
# subfolder on a case-insensitive file system. The API checks first; this refuses a concurrent second insert.
Index("uq_products_name_lower", func.lower(ProductRow.name), unique=True)


class InspectionRow(Base):
    """One inspected image. `source_key` is unique so a hot-folder file is stored exactly once."""

    __tablename__ = "inspections"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    image_id: Mapped[str] = mapped_column(String(IMAGE_ID_MAX_CHARS), nullable=False)
    product_id: Mapped[str | None] = mapped_column(ForeignKey("products.id"), nullable=True, index=True)
    source: Mapped[str] = mapped_column(String(32), nullable=False, default="upload")
    source_key: Mapped[str | None] = mapped_column(String(1000), nullable=True, unique=True)
    verdict: Mapped[str] = mapped_column(String(8), nullable=False, index=True)
    width_px: Mapped[int] = mapped_column(Integer, nullable=False)
    height_px: Mapped[int] = mapped_column(Integer, nullable=False)
    px_per_mm: Mapped[float] = mapped_column(Float, nullable=False)
    model_version: Mapped[str] = mapped_column(String(200), nullable=False)
    timings_ms: Mapped[dict[str, float]] = mapped_column(JSON, nullable=False)
    registration: Mapped[dict[str, float]] = mapped_column(JSON, nullable=False)
    defect_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    test_image_path: Mapped[str] = mapped_column(Text, nullable=False)
    template_path: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utc_now, index=True)
    # Traceability (migration 0008): NULL when the source did not say
    lot: Mapped[str | None] = mapped_column(String(TRACE_ID_MAX_CHARS), nullable=True, index=True)
    panel_id: Mapped[str | None] = mapped_column(String(TRACE_ID_MAX_CHARS), nullable=True, index=True)
    line: Mapped[str | None] = mapped_column(String(TRACE_ID_MAX_CHARS), nullable=True, index=True)

    defects: Mapped[list[DefectRow]] = relationship(
        back_populates="inspection", cascade="all, delete-orphan", order_by="DefectRow.position"
    )
    product: Mapped[ProductRow | None] = relationship()


class DefectRow(Base):
    """A reported defect plus the operator's review of it (confirm, false call or reclassify).

    `origin` (migration 0009): 'engine' for a defect the machine reported, 'operator' for one an operator
    added because the machine missed it (an escape; stored already confirmed). Set by the database's
    default unless given, so the INSERT of an engine defect need not name it."""

    __tablename__ = "defects"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    inspection_id: Mapped[str] = mapped_column(
        ForeignKey("inspections.id", ondelete="CASCADE"), nullable=False, index=True
    )
    position: Mapped[int] = mapped_column(Integer, nullable=False)
    type: Mapped[str] = mapped_column(String(32), nullable=False, index=True)
    confidence: Mapped[float] = mapped_column(Float, nullable=False)
    x1_px: Mapped[float] = mapped_column(Float, nullable=False)
    y1_px: Mapped[float] = mapped_column(Float, nullable=False)
    x2_px: Mapped[float] = mapped_column(Float, nullable=False)
    y2_px: Mapped[float] = mapped_column(Float, nullable=False)
    x1_mm: Mapped[float | None] = mapped_column(Float, nullable=True)
    y1_mm: Mapped[float | None] = mapped_column(Float, nullable=True)
    x2_mm: Mapped[float | None] = mapped_column(Float, nullable=True)
    y2_mm: Mapped[float | None] = mapped_column(Float, nullable=True)
    review_status: Mapped[str | None] = mapped_column(String(16), nullable=True, index=True)
    reviewed_type: Mapped[str | None] = mapped_column(String(32), nullable=True)
    reviewed_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    reviewed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    origin: Mapped[str] = mapped_column(String(16), nullable=False, server_default="engine")

    inspection: Mapped[InspectionRow] = relationship(back_populates="defects")


class FailureRow(Base):
    """A captured image that could not be inspected (corrupt file, wrong template, unknown product).

    Kept so that a hot-folder file that fails is not retried at every restart.
    """

    __tablename__ = "inspection_failures"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    source_key: Mapped[str | None] = mapped_column(String(1000), nullable=True, unique=True)
    image_id: Mapped[str] = mapped_column(String(IMAGE_ID_MAX_CHARS), nullable=False)
    error: Mapped[str] = mapped_column(String(200), nullable=False)
    message: Mapped[str] = mapped_column(Text, nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utc_now, index=True)


class IdempotencyKeyRow(Base):
    """An `Idempotency-Key` a client sent with a write, scoped to the API key that sent it.

    Stored in the same transaction as what the write created, so that of two concurrent requests with
    one key only one stores (the primary key refuses the other). `request_sha256` tells a retry (same
    request) from a different request under a reused key.
    """

    __tablename__ = "idempotency_keys"

    owner: Mapped[str] = mapped_column(String(64), primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(IDEMPOTENCY_KEY_MAX_CHARS), primary_key=True)
    request_sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    resource: Mapped[str] = mapped_column(String(32), nullable=False)  # "inspection" or "product"
    resource_id: Mapped[str] = mapped_column(String(32), nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utc_now, index=True)


class ReviewLeaseRow(Base):
    """A pending defect handed to one operator by the review queue: nobody else is handed it until
    `expires_at`, a review of it is recorded, or its holder takes another (one lease per holder).

    `holder`: the API key's owner id (`api-key-<id>`); `holder_name`: the key's name, shown to others."""

    __tablename__ = "review_leases"

    defect_id: Mapped[str] = mapped_column(ForeignKey("defects.id", ondelete="CASCADE"), primary_key=True)
    holder: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    holder_name: Mapped[str] = mapped_column(String(200), nullable=False)
    leased_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utc_now)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, index=True)
