"""Schema upgrades of a database that already holds a line's data, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, text
from tests.service.conftest import PG_ADMIN_URL, paint_board, with_short

from aoi.pipeline.capture import CaptureSettings
from aoi.schema import Defect, InspectionFailure, InspectionResult, Verdict
from aoi.storage import ImageStore, InspectionRecorder
from aoi.storage.database import MIGRATIONS_DIR, Database, resolve_database_url
from aoi.storage.idempotency import IdempotencyClaim, add_claim, find_claim
from aoi.storage.inspections import InspectionRepository
from aoi.storage.keys import create_api_key
from aoi.storage.models import ProductRow
from aoi.storage.products import ProductRepository
from aoi.storage.records import Product, utc_now_aware
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


def _head() -> str | None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return ScriptDirectory.from_config(config).get_current_head()


def _add_old_product(db: Database, images: ImageStore, product_id: str = "p" * 32, name: str = "board-a") -> Product:
    """A product row as revisions 0001 and 0002 stored it (the ORM row of today has newer columns)."""
    template_path = images.save_template(product_id, paint_board())
    created_at = utc_now_aware()
    with db.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO products (id, name, template_path, template_width_px, template_height_px, px_per_mm,"
                " rules, created_at) VALUES (:id, :name, :path, 640, 640, 20.0, :rules, :created_at)"
            ),
            {
                "id": product_id,
                "name": name,
                "path": template_path,
                "rules": json.dumps(VerdictRules().to_dict()),
                "created_at": created_at,
            },
        )
    return Product(product_id, name, template_path, (640, 640), 20.0, VerdictRules(), created_at)


def test_upgrade_to_idempotency_keys_keeps_the_data(empty_database_url: str, tmp_path: Path) -> None:
    db = Database(empty_database_url)
    try:
        _migrate(db, "0001")
        images = ImageStore(tmp_path / "images")
        recorder = InspectionRecorder(db, images)
        with db.transaction() as session:
            create_api_key(session, label="line 1")
        _add_old_product(db, images)
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

        assert _revision(db) == _head()
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


FINE_PITCH_CAPTURE = {
    "registration": {"subpixel": True},
    "candidates": {
        "tolerance_px": 1.0,
        "tolerance_metric": "euclidean",
        "gross_area_px": 12,
        "topology": True,
        "min_area_px": 1,
        "grey_threshold": 0.2,
        "template_blur_px": 0.5,
    },
}


def test_upgrade_to_product_capture_keeps_the_products(empty_database_url: str, tmp_path: Path) -> None:
    """0002 -> 0003 adds products.capture: a product stored before reads back without a setup (the
    bundle's settings, what it was inspected with), keeps its rules and inspections, and takes one."""
    db = Database(empty_database_url)
    try:
        _migrate(db, "0002")
        images = ImageStore(tmp_path / "images")
        product = _add_old_product(db, images)
        result = InspectionResult(
            image_id="b1",
            image_size_wh=(640, 640),
            defects=(Defect("short", 0.8, (300, 300, 316, 312)),),
            verdict=Verdict.FAIL,
            px_per_mm=20.0,
            model_version="m",
        )
        stored = InspectionRecorder(db, images).record(
            result, with_short(paint_board()), product=product, source="hotfolder", source_key="hotfolder:b1.png:1"
        )

        _migrate(db, "0003")

        assert _revision(db) == "0003"
        with db.engine.connect() as conn:  # SQL NULL, not a JSON null: "no setup" is one value
            assert conn.execute(text("SELECT COUNT(*) FROM products WHERE capture IS NULL")).scalar_one() == 1
        with db.session() as session:
            again = ProductRepository(session).get("board-a")
            inspection = InspectionRepository(session).get(stored.id)
        assert again is not None and again.capture is None
        assert again.rules == VerdictRules() and again.template_path == product.template_path
        assert inspection is not None and inspection.product_name == "board-a"

        with db.transaction() as session:
            row = session.get(ProductRow, product.id)
            assert row is not None
            row.capture = CaptureSettings.from_dict(FINE_PITCH_CAPTURE).to_dict()
        with db.session() as session:
            taken = ProductRepository(session).get(product.id)
        assert taken is not None and taken.capture is not None
        assert taken.capture.to_dict() == FINE_PITCH_CAPTURE

        _migrate(db, "0002", down=True)  # and back: the column goes, the products and inspections stay
        assert _revision(db) == "0002"
        assert "capture" not in {c["name"] for c in inspect(db.engine).get_columns("products")}
        with db.engine.connect() as conn:
            assert conn.execute(text("SELECT COUNT(*) FROM products")).scalar_one() == 1
            assert conn.execute(text("SELECT COUNT(*) FROM inspections")).scalar_one() == 1
    finally:
        db.dispose()
