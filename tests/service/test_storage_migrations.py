"""Schema upgrades of a database that already holds a line's data, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text
from tests.service.conftest import PG_ADMIN_URL, paint_board, with_short

from aoi.schema import Defect, InspectionFailure, InspectionResult, Verdict
from aoi.storage import ImageStore, InspectionRecorder
from aoi.storage.database import MIGRATIONS_DIR, Database, resolve_database_url
from aoi.storage.idempotency import IdempotencyClaim, add_claim, find_claim
from aoi.storage.inspections import InspectionRepository
from aoi.storage.keys import create_api_key
from aoi.storage.models import ProductRow
from aoi.verdict import VerdictRules


@pytest.fixture
def empty_database_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """A database with no tables at all (the session's PostgreSQL database is already at head)."""
    if backend == "sqlite":
        yield resolve_database_url(tmp_path)
        return
    admin = create_engine(resolve_database_url(".", PG_ADMIN_URL), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        admin.dispose()
        pytest.skip(f"PostgreSQL at 127.0.0.1:5432 is unreachable: {type(exc).__name__}: {exc}")
    name = f"aoi_migrate_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield resolve_database_url(".", f"postgresql://postgres@127.0.0.1:5432/{name}")
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _migrate(db: Database, revision: str, down: bool = False) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with db.engine.begin() as connection:
        config.attributes["connection"] = connection
        (command.downgrade if down else command.upgrade)(config, revision)


def _revision(db: Database) -> str | None:
    with db.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def test_upgrade_to_idempotency_keys_keeps_the_data(empty_database_url: str, tmp_path: Path) -> None:
    db = Database(empty_database_url)
    try:
        _migrate(db, "0001")
        images = ImageStore(tmp_path / "images")
        recorder = InspectionRecorder(db, images)
        with db.transaction() as session:
            create_api_key(session, label="line 1")
            session.add(
                ProductRow(
                    id="p" * 32,
                    name="board-a",
                    template_path=images.save_template("p" * 32, paint_board()),
                    template_width_px=640,
                    template_height_px=640,
                    px_per_mm=20.0,
                    rules=VerdictRules().to_dict(),
                )
            )
        result = InspectionResult(
            image_id="b1",
            image_size_wh=(640, 640),
            defects=(Defect("short", 0.8, (300, 300, 316, 312)),),
            verdict=Verdict.FAIL,
            px_per_mm=20.0,
            model_version="m",
        )
        stored = recorder.record(
            result, with_short(paint_board()), source="hotfolder", source_key="hotfolder:b1.png:1:2"
        )
        recorder.record_failure(InspectionFailure("bad.png", "ImageError", "not an image"), "hotfolder:bad.png:3:4")

        db.migrate()  # what `aoi serve` does at start: 0001 -> head

        assert _revision(db) == "0002"
        with db.engine.connect() as conn:
            counts = {
                t: conn.execute(text(f"SELECT COUNT(*) FROM {t}")).scalar_one()
                for t in ("api_keys", "products", "inspections", "defects", "inspection_failures", "idempotency_keys")
            }
        assert counts == {
            "api_keys": 1,
            "products": 1,
            "inspections": 1,
            "defects": 1,
            "inspection_failures": 1,
            "idempotency_keys": 0,
        }
        with db.session() as session:
            again = InspectionRepository(session).get(stored.id)
        assert again is not None and again.result.defects[0].box_px == (300.0, 300.0, 316.0, 312.0)
        claim = IdempotencyClaim("api-key-1", "k-1", "f" * 64)
        with db.transaction() as session:
            add_claim(session, claim, "inspection", stored.id)
        with db.session() as session:
            found = find_claim(session, "api-key-1", "k-1")
        assert found is not None and found.resource_id == stored.id

        _migrate(db, "0001", down=True)  # and back: the old schema, the old data
        assert _revision(db) == "0001"
        assert "idempotency_keys" not in inspect(db.engine).get_table_names()
        with db.engine.connect() as conn:
            assert conn.execute(text("SELECT COUNT(*) FROM inspections")).scalar_one() == 1
    finally:
        db.dispose()
