"""Operator-added defects: `defects.origin` says who reported a defect, the engine or an operator.

An operator who finds a defect the machine missed (an escape) adds it to the inspection; it is stored
as a defect like the engine's, already confirmed, with origin 'operator'. Adds a non-null
`defects.origin` (String(16), server default 'engine'): every defect stored before was the engine's and
reads back so, and rows written without the column (older code) keep getting 'engine'.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-17
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The server default fills the rows there and stays: a plain ADD COLUMN on SQLite and PostgreSQL alike
    # (no table copy, so the review leases that refer to defects are left alone).
    op.add_column("defects", sa.Column("origin", sa.String(16), nullable=False, server_default="engine"))


def downgrade() -> None:
    # Operator-added defects become defects like any other (confirmed): the counts they fed stay.
    op.drop_column("defects", "origin")
