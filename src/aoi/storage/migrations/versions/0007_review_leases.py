"""Review leases: the pending defect the review queue handed to one operator, until it expires.

Adds a table only; existing rows are untouched. A lease row goes with its defect (ON DELETE CASCADE).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-10
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "review_leases",
        sa.Column("defect_id", sa.String(32), sa.ForeignKey("defects.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("holder", sa.String(64), nullable=False),
        sa.Column("holder_name", sa.String(200), nullable=False),
        sa.Column("leased_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_review_leases_holder", "review_leases", ["holder"])
    op.create_index("ix_review_leases_expires_at", "review_leases", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_review_leases_expires_at", table_name="review_leases")
    op.drop_index("ix_review_leases_holder", table_name="review_leases")
    op.drop_table("review_leases")
