"""Product names unique whatever their case: a unique index on lower(name).

`DeepPCB` and `deeppcb` would share one hot-folder subfolder on a case-insensitive file system, and
the API's own check (look the name up, then insert) lets two concurrent requests through; the index
makes the database refuse the second insert (the API answers 409).

A database that already holds names differing only in case is not changed: the upgrade stops with
the clashing names and ids, and the operator renames all but one of each set (they are recipes that
lines and people refer to by name; renaming one behind their back would send its hot-folder files
to no product). Nothing of this revision is applied then, and the upgrade runs again once renamed.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-09
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

INDEX_NAME = "uq_products_name_lower"


class CaseDuplicateProductNames(RuntimeError):
    """Stored product names that differ only in case: the unique index cannot be built over them."""


def upgrade() -> None:
    clashes = _case_duplicates(op.get_bind())
    if clashes:
        listed = "; ".join(", ".join(f"{name!r} (id {pid})" for pid, name in group) for group in clashes)
        raise CaseDuplicateProductNames(
            f"migration 0006 (product names unique whatever their case) stopped: these products have names"
            f" that differ only in case: {listed}. Rename all but one of each set, e.g."
            " UPDATE products SET name = 'deeppcb-2' WHERE id = '<id>' (and its hot-folder subfolder with it),"
            " then start the service again; nothing was changed."
        )
    op.create_index(INDEX_NAME, "products", [sa.text("lower(name)")], unique=True)


def downgrade() -> None:
    op.drop_index(INDEX_NAME, table_name="products")


def _case_duplicates(connection: sa.engine.Connection) -> list[list[tuple[str, str]]]:
    """Groups of (id, name) whose lower(name) is shared, oldest first within a group."""
    rows = connection.execute(
        sa.text(
            "SELECT lower(name), id, name FROM products WHERE lower(name) IN"
            " (SELECT lower(name) FROM products GROUP BY lower(name) HAVING COUNT(*) > 1)"
            " ORDER BY lower(name), created_at, id"
        )
    ).all()
    groups: dict[str, list[tuple[str, str]]] = {}
    for folded, product_id, name in rows:  # grouped as the database folds case (the index will)
        groups.setdefault(folded, []).append((product_id, name))
    return list(groups.values())
