"""Product capture setup: a nullable JSON `capture` on products (`CaptureSettings.to_dict()` shape).

Adds a column only; existing products get NULL, which means the model bundle's settings (what they
were inspected with before).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("products", sa.Column("capture", sa.JSON(none_as_null=True), nullable=True))


def downgrade() -> None:
    op.drop_column("products", "capture")
