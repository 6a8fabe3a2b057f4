"""API key scopes: a `scopes` column on api_keys (comma-separated: read, inspect, review, admin).

Keys stored before this revision could do every write, so they get every scope and keep working.
The server default only fills those rows: it is dropped afterwards, so a key stored later always
says which scopes it was given.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

EXISTING_KEYS_SCOPES = "read,inspect,review,admin"  # every scope: what one key could do before


def upgrade() -> None:
    op.add_column(
        "api_keys",
        sa.Column("scopes", sa.String(100), nullable=False, server_default=EXISTING_KEYS_SCOPES),
    )
    with op.batch_alter_table("api_keys") as batch:
        batch.alter_column("scopes", existing_type=sa.String(100), existing_nullable=False, server_default=None)


def downgrade() -> None:
    op.drop_column("api_keys", "scopes")
