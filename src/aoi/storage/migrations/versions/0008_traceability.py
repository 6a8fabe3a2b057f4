"""Traceability: lot, panel and line of each inspection, and each product's way of reading them.

Adds nullable `inspections.lot`, `inspections.panel_id` and `inspections.line` (indexed: reports and
searches look boards up by lot and by panel) and a nullable JSON `products.trace` (the file-name
pattern and QR code setup, `TraceSettings.to_dict()` shape). Columns only: inspections stored before
keep every value and get NULL (not known), products keep reading no lot or panel until one is set.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-10
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

TRACE_COLUMNS = ("lot", "panel_id", "line")


def upgrade() -> None:
    for name in TRACE_COLUMNS:
        op.add_column("inspections", sa.Column(name, sa.String(64), nullable=True))
        op.create_index(f"ix_inspections_{name}", "inspections", [name])
    op.add_column("products", sa.Column("trace", sa.JSON(none_as_null=True), nullable=True))


def downgrade() -> None:
    op.drop_column("products", "trace")
    for name in TRACE_COLUMNS:
        op.drop_index(f"ix_inspections_{name}", table_name="inspections")
    for name in reversed(TRACE_COLUMNS):
        op.drop_column("inspections", name)
