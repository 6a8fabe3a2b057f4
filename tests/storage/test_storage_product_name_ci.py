"""Migration 0006: product names unique whatever their case, enforced by the database, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from tests.support.databases import current_revision, migrate, scratch_postgres

from aoi.storage.database import Database, resolve_database_url
from aoi.storage.records import utc_now_aware

INDEX = "uq_products_name_lower"


@pytest.fixture
def database(backend: str, tmp_path: Path) -> Iterator[Database]:
    """A database with no tables yet (each test migrates it as far as it needs)."""
    if backend == "sqlite":
        db = Database(resolve_database_url(tmp_path))
        yield db
        db.dispose()
        return
    with scratch_postgres("aoi_ci") as url:
        db = Database(resolve_database_url(".", url))
        try:
            yield db
        finally:
            db.dispose()


def _add_product(db: Database, name: str) -> str:
    """A product row written with plain SQL (only the columns every revision since 0003 has)."""
    product_id = uuid.uuid4().hex
    with db.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO products (id, name, template_path, template_width_px, template_height_px, px_per_mm,"
                " rules, created_at) VALUES (:id, :name, 'templates/t.png', 64, 64, 20.0, :rules, :created_at)"
            ),
            {"id": product_id, "name": name, "rules": json.dumps({}), "created_at": utc_now_aware()},
        )
    return product_id


def _names(db: Database) -> list[str]:
    with db.engine.connect() as conn:
        return sorted(conn.execute(text("SELECT name FROM products")).scalars())


def _has_index(db: Database) -> bool:
    """Read from the catalogue: SQLAlchemy's SQLite reflection skips expression indexes."""
    catalogue = (
        "SELECT name FROM sqlite_master WHERE type = 'index'"
        if db.is_sqlite
        else "SELECT indexname FROM pg_indexes WHERE tablename = 'products'"
    )
    with db.engine.connect() as conn:
        return INDEX in set(conn.execute(text(catalogue)).scalars())


def test_upgrade_keeps_the_products_and_then_refuses_a_case_duplicate(database: Database) -> None:
    migrate(database, "0005")
    _add_product(database, "DeepPCB")
    _add_product(database, "board-a")
    assert not _has_index(database)

    migrate(database, "0006")

    assert current_revision(database) == "0006" and _has_index(database)
    assert _names(database) == ["DeepPCB", "board-a"]
    for clash in ("deeppcb", "DEEPPCB", "Board-A"):  # the database itself refuses, whoever inserts
        with pytest.raises(IntegrityError):
            _add_product(database, clash)
    _add_product(database, "deeppcb-2")
    assert _names(database) == ["DeepPCB", "board-a", "deeppcb-2"]

    migrate(database, "0005", down=True)  # and back: the index goes, the rows stay
    assert not _has_index(database)
    _add_product(database, "deeppcb")
    assert len(_names(database)) == 4


def test_upgrade_over_case_duplicates_stops_naming_them_and_changes_nothing(database: Database) -> None:
    """Names are what lines and people refer to: the migration does not rename; it says which to rename."""
    migrate(database, "0005")
    first = _add_product(database, "DeepPCB")
    second = _add_product(database, "deeppcb")
    _add_product(database, "board-a")

    with pytest.raises(RuntimeError) as stopped:
        migrate(database, "0006")

    message = str(stopped.value)
    assert "differ only in case" in message
    assert f"'DeepPCB' (id {first})" in message and f"'deeppcb' (id {second})" in message
    assert "board-a" not in message and "nothing was changed" in message
    assert current_revision(database) == "0005" and not _has_index(database)
    assert _names(database) == ["DeepPCB", "board-a", "deeppcb"]

    with database.engine.begin() as conn:  # what the message tells the operator to do
        conn.execute(text("UPDATE products SET name = 'deeppcb-2' WHERE id = :id"), {"id": second})
    migrate(database, "0006")
    assert current_revision(database) == "0006" and _has_index(database)


def test_a_product_is_found_by_its_id_or_by_its_name_in_any_case(database: Database) -> None:
    from aoi.storage.products import ProductRepository

    migrate(database, "head")
    board = _add_product(database, "Board-A")
    _add_product(database, "board-b")
    with database.session() as session:
        products = ProductRepository(session)
        assert products.get(board) is not None and products.get(board).name == "Board-A"  # type: ignore[union-attr]
        for spelling in ("Board-A", "board-a", "BOARD-A"):
            found = products.get(spelling)
            assert found is not None and found.id == board
        assert products.get("board-c") is None
