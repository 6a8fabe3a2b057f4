"""Initial schema: api keys, products, inspections, defects with their reviews, failures.

Revision ID: 0001
Revises:
Create Date: 2024-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("label", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_table(
        "products",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("template_path", sa.Text(), nullable=False),
        sa.Column("template_width_px", sa.Integer(), nullable=False),
        sa.Column("template_height_px", sa.Integer(), nullable=False),
        sa.Column("px_per_mm", sa.Float(), nullable=False),
        sa.Column("rules", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "inspections",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("image_id", sa.String(500), nullable=False),
        sa.Column("product_id", sa.String(32), sa.ForeignKey("products.id"), nullable=True),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("source_key", sa.String(1000), nullable=True, unique=True),
        sa.Column("verdict", sa.String(8), nullable=False),
        sa.Column("width_px", sa.Integer(), nullable=False),
        sa.Column("height_px", sa.Integer(), nullable=False),
        sa.Column("px_per_mm", sa.Float(), nullable=False),
        sa.Column("model_version", sa.String(200), nullable=False),
        sa.Column("timings_ms", sa.JSON(), nullable=False),
        sa.Column("registration", sa.JSON(), nullable=False),
        sa.Column("defect_count", sa.Integer(), nullable=False),
        sa.Column("test_image_path", sa.Text(), nullable=False),
        sa.Column("template_path", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_inspections_product_id", "inspections", ["product_id"])
    op.create_index("ix_inspections_verdict", "inspections", ["verdict"])
    op.create_index("ix_inspections_created_at", "inspections", ["created_at"])
    op.create_table(
        "defects",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("inspection_id", sa.String(32), sa.ForeignKey("inspections.id", ondelete="CASCADE"), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("x1_px", sa.Float(), nullable=False),
        sa.Column("y1_px", sa.Float(), nullable=False),
        sa.Column("x2_px", sa.Float(), nullable=False),
        sa.Column("y2_px", sa.Float(), nullable=False),
        sa.Column("x1_mm", sa.Float(), nullable=True),
        sa.Column("y1_mm", sa.Float(), nullable=True),
        sa.Column("x2_mm", sa.Float(), nullable=True),
        sa.Column("y2_mm", sa.Float(), nullable=True),
        sa.Column("review_status", sa.String(16), nullable=True),
        sa.Column("reviewed_type", sa.String(32), nullable=True),
        sa.Column("reviewed_by", sa.String(200), nullable=True),
        sa.Column("reviewed_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_defects_inspection_id", "defects", ["inspection_id"])
    op.create_index("ix_defects_type", "defects", ["type"])
    op.create_index("ix_defects_review_status", "defects", ["review_status"])
    op.create_table(
        "inspection_failures",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("source_key", sa.String(1000), nullable=True, unique=True),
        sa.Column("image_id", sa.String(500), nullable=False),
        sa.Column("error", sa.String(200), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_inspection_failures_created_at", "inspection_failures", ["created_at"])


def downgrade() -> None:
    op.drop_table("inspection_failures")
    op.drop_table("defects")
    op.drop_table("inspections")
    op.drop_table("products")
    op.drop_table("api_keys")
