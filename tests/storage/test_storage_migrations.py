"""Schema upgrades of a database that already holds a line's data, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory
from fastapi.testclient import TestClient
from sqlalchemy import inspect, text
from tests.support.databases import current_revision, migrate, scratch_postgres
from tests.support.service import FakeInspector, paint_board, png, with_short

from aoi.api import ServiceSettings, create_app
from aoi.pipeline.capture import CaptureSettings
from aoi.schema import Defect, DefectType, InspectionFailure, InspectionResult, Trace, Verdict
from aoi.storage import ImageStore, InspectionRecorder, Storage
from aoi.storage.database import MIGRATIONS_DIR, Database, resolve_database_url
from aoi.storage.idempotency import IdempotencyClaim, add_claim, find_claim
from aoi.storage.inspections import InspectionFilter, InspectionRepository
from aoi.storage.keys import (
    ALL_SCOPES,
    KeyState,
    Scope,
    as_utc,
    create_api_key,
    find_api_key,
    hash_token,
    look_up_api_key,
    row_scopes,
)
from aoi.storage.models import DefectRow, InspectionRow, ProductRow
from aoi.storage.products import ProductRepository
from aoi.storage.records import DefectOrigin, Product, utc_now_aware
from aoi.storage.review_queue import count_pending
from aoi.verdict import VerdictRules


@pytest.fixture
def empty_database_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """A database with no tables at all (the session's PostgreSQL database is already at head)."""
    if backend == "sqlite":
        yield resolve_database_url(tmp_path)
        return
    with scratch_postgres("aoi_migrate") as url:
        yield resolve_database_url(".", url)


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


def _add_old_inspection(db: Database, images: ImageStore, source_key: str, product_id: str | None = None) -> str:
    """An inspection with one short at (300, 300, 316, 312), written with only the columns of revision 0001
    (the ORM row of today has newer ones, which an INSERT through it would name); returns its id."""
    inspection_id = uuid.uuid4().hex
    test_path = images.save_inspection_image(inspection_id, with_short(paint_board()), "test")
    inspections, defects = InspectionRow.__table__, DefectRow.__table__
    with db.engine.begin() as conn:
        conn.execute(
            inspections.insert().values(
                id=inspection_id, image_id="b1", product_id=product_id, source="hotfolder", source_key=source_key,
                verdict="fail", width_px=640, height_px=640, px_per_mm=20.0, model_version="m", timings_ms={},
                registration={}, defect_count=1, test_image_path=test_path, template_path=None,
                created_at=utc_now_aware(),
            )
        )  # fmt: skip
        conn.execute(
            defects.insert().values(
                id=uuid.uuid4().hex, inspection_id=inspection_id, position=0, type="short", confidence=0.8,
                x1_px=300.0, y1_px=300.0, x2_px=316.0, y2_px=312.0,
            )
        )  # fmt: skip
    return inspection_id


def _add_old_key(db: Database, label: str) -> str:
    """An API key row as revisions 0001 to 0003 stored it (no scopes); returns its token."""
    token = f"aoi_old_{uuid.uuid4().hex}"
    with db.engine.begin() as conn:
        conn.execute(
            text("INSERT INTO api_keys (key_hash, label, created_at) VALUES (:hash, :label, :created_at)"),
            {"hash": hash_token(token), "label": label, "created_at": utc_now_aware()},
        )
    return token


def test_upgrade_to_idempotency_keys_keeps_the_data(empty_database_url: str, tmp_path: Path) -> None:
    db = Database(empty_database_url)
    try:
        migrate(db, "0001")
        images = ImageStore(tmp_path / "images")
        recorder = InspectionRecorder(db, images)
        _add_old_key(db, "line 1")
        _add_old_product(db, images)
        stored_id = _add_old_inspection(db, images, "hotfolder:b1.png:1:2")
        recorder.record_failure(InspectionFailure("bad.png", "ImageError", "not an image"), "hotfolder:bad.png:3:4")

        db.migrate()  # what `aoi serve` does at start: 0001 -> head

        assert current_revision(db) == _head()
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
            again = InspectionRepository(session).get(stored_id)
        assert again is not None and again.result.defects[0].box_px == (300.0, 300.0, 316.0, 312.0)
        claim = IdempotencyClaim("api-key-1", "k-1", "f" * 64)
        with db.transaction() as session:
            add_claim(session, claim, "inspection", stored_id)
        with db.session() as session:
            found = find_claim(session, "api-key-1", "k-1")
        assert found is not None and found.resource_id == stored_id

        migrate(db, "0001", down=True)  # and back: the old schema, the old data
        assert current_revision(db) == "0001"
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
        migrate(db, "0002")
        images = ImageStore(tmp_path / "images")
        product = _add_old_product(db, images)
        stored_id = _add_old_inspection(db, images, "hotfolder:b1.png:1", product_id=product.id)

        migrate(db, "0003")

        assert current_revision(db) == "0003"
        with db.engine.connect() as conn:  # SQL NULL, not a JSON null: "no setup" is one value
            assert conn.execute(text("SELECT COUNT(*) FROM products WHERE capture IS NULL")).scalar_one() == 1
        migrate(db, "head")  # the ORM rows of today have the columns of every later revision too
        with db.session() as session:
            again = ProductRepository(session).get("board-a")
            inspection = InspectionRepository(session).get(stored_id)
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

        migrate(db, "0002", down=True)  # and back: the column goes, the products and inspections stay
        assert current_revision(db) == "0002"
        assert "capture" not in {c["name"] for c in inspect(db.engine).get_columns("products")}
        with db.engine.connect() as conn:
            assert conn.execute(text("SELECT COUNT(*) FROM products")).scalar_one() == 1
            assert conn.execute(text("SELECT COUNT(*) FROM inspections")).scalar_one() == 1
    finally:
        db.dispose()


def test_upgrade_to_key_scopes_keeps_old_keys_working(empty_database_url: str, tmp_path: Path) -> None:
    """0003 -> 0004 adds api_keys.scopes: a key stored before gets every scope (it could do every write)
    and still writes through the API; a revoked one stays revoked; keys stored after say their scopes."""
    db = Database(empty_database_url)
    try:
        migrate(db, "0003")
        old = _add_old_key(db, "line 1")
        gone = _add_old_key(db, "line 2")
        with db.engine.begin() as conn:
            conn.execute(text("UPDATE api_keys SET revoked_at = :now WHERE label = 'line 2'"), {"now": utc_now_aware()})

        migrate(db, "0004")

        assert current_revision(db) == "0004"
        scopes_column = next(c for c in inspect(db.engine).get_columns("api_keys") if c["name"] == "scopes")
        assert scopes_column["nullable"] is False and scopes_column["default"] is None  # filled the old rows only
        migrate(db, "head")  # the ORM rows of today have the columns of every later revision too
        with db.session() as session:
            row = find_api_key(session, old)
            assert row is not None and row.label == "line 1" and row_scopes(row) == ALL_SCOPES
            assert find_api_key(session, gone) is None
        with db.transaction() as session:
            new = create_api_key(session, "inspector only", {Scope.INSPECT})
        with db.session() as session:
            row = find_api_key(session, new)
            assert row is not None and row_scopes(row) == {Scope.INSPECT}

        migrate(db, "0003", down=True)  # and back: the column goes, the keys stay
        assert "scopes" not in {c["name"] for c in inspect(db.engine).get_columns("api_keys")}
        with db.engine.connect() as conn:
            assert conn.execute(text("SELECT COUNT(*) FROM api_keys")).scalar_one() == 3
    finally:
        db.dispose()


def test_an_old_key_writes_through_the_api_after_the_upgrade(empty_database_url: str, tmp_path: Path) -> None:
    """What an operator sees: a key made before scopes still registers products (admin) and inspects."""
    db = Database(empty_database_url)
    try:
        migrate(db, "0003")
        token = _add_old_key(db, "line 1")
    finally:
        db.dispose()
    url = None if empty_database_url.startswith("sqlite") else empty_database_url
    storage = Storage.open(tmp_path, url)  # migrates to head, as `aoi serve` does
    try:
        app = create_app(
            ServiceSettings(data_dir=storage.data_dir, serve_dashboard=False),
            inspector=FakeInspector(),
            storage=storage,
        )
        auth = {"Authorization": f"Bearer {token}"}
        with TestClient(app) as client:
            r = client.post(
                "/api/v1/products",
                data={"name": "board-a", "px_per_mm": "20"},
                files={"template": ("t.png", png(paint_board()), "image/png")},
                headers=auth,
            )
            assert r.status_code == 201, r.text
            r = client.post(
                "/api/v1/inspections",
                data={"product": "board-a"},
                files={"image": ("b.png", png(with_short(paint_board())), "image/png")},
                headers=auth,
            )
            assert r.status_code == 201, r.text
            defect_id = r.json()["defects"][0]["id"]
            r = client.post(f"/api/v1/defects/{defect_id}/review", json={"decision": "confirm"}, headers=auth)
            assert r.status_code == 200, r.text
            assert r.json()["defect"]["review"]["reviewed_by"] == "line 1"
    finally:
        storage.close()


def _add_key_at_0004(db: Database, label: str, scopes: str) -> str:
    """An API key row as revision 0004 stored it (scopes, no expiry); returns its token."""
    token = f"aoi_old_{uuid.uuid4().hex}"
    with db.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO api_keys (key_hash, label, scopes, created_at)"
                " VALUES (:hash, :label, :scopes, :created_at)"
            ),
            {"hash": hash_token(token), "label": label, "scopes": scopes, "created_at": utc_now_aware()},
        )
    return token


def test_upgrade_to_key_expiry_keeps_old_keys_never_expiring(empty_database_url: str) -> None:
    """0004 -> 0005 adds a nullable api_keys.expires_at: keys stored before never expire (as before);
    keys stored after may, and are refused once their time has passed."""
    db = Database(empty_database_url)
    try:
        migrate(db, "0004")
        old = _add_key_at_0004(db, "line 1", "read,inspect")

        migrate(db, "0005")

        assert current_revision(db) == "0005"
        column = next(c for c in inspect(db.engine).get_columns("api_keys") if c["name"] == "expires_at")
        assert column["nullable"] is True
        with db.session() as session:
            row = find_api_key(session, old)
            assert row is not None and row.expires_at is None and row_scopes(row) == {Scope.READ, Scope.INSPECT}
        now = utc_now_aware()
        with db.transaction() as session:
            later = create_api_key(session, "a day", {Scope.READ}, expires_at=now + timedelta(days=1))
            past = create_api_key(session, "gone", {Scope.READ}, expires_at=now - timedelta(seconds=1))
        with db.session() as session:
            row = find_api_key(session, later)
            assert row is not None and as_utc(row.expires_at or now) == now + timedelta(days=1)  # kept to the µs
            assert find_api_key(session, past) is None
            assert look_up_api_key(session, past)[0] is KeyState.EXPIRED

        migrate(db, "0004", down=True)  # and back: the column goes, the keys stay
        assert "expires_at" not in {c["name"] for c in inspect(db.engine).get_columns("api_keys")}
        with db.engine.connect() as conn:
            assert conn.execute(text("SELECT COUNT(*) FROM api_keys")).scalar_one() == 3
    finally:
        db.dispose()


def test_a_0004_key_reads_through_the_api_after_the_upgrade(empty_database_url: str, tmp_path: Path) -> None:
    """What an operator sees after upgrading: reads are closed now, and a key made before with the read
    scope reads (it never expires); one made before without it is told it lacks the scope."""
    db = Database(empty_database_url)
    try:
        migrate(db, "0004")
        reader = _add_key_at_0004(db, "screen", "read")
        station = _add_key_at_0004(db, "station", "inspect")
    finally:
        db.dispose()
    url = None if empty_database_url.startswith("sqlite") else empty_database_url
    storage = Storage.open(tmp_path, url)  # migrates to head, as `aoi serve` does
    try:
        app = create_app(
            ServiceSettings(data_dir=storage.data_dir, serve_dashboard=False),
            inspector=FakeInspector(),
            storage=storage,
        )
        with TestClient(app) as client:
            assert client.get("/api/v1/inspections").status_code == 401
            r = client.get("/api/v1/inspections", headers={"Authorization": f"Bearer {reader}"})
            assert r.status_code == 200 and r.json()["total"] == 0
            r = client.get("/api/v1/inspections", headers={"Authorization": f"Bearer {station}"})
            assert r.status_code == 403 and "'read' scope" in r.json()["detail"]
    finally:
        storage.close()


def _revision_before(revision: str) -> str:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    down = ScriptDirectory.from_config(config).get_revision(revision).down_revision
    assert isinstance(down, str)
    return down


def _index_names(db: Database, table: str) -> set[str]:
    return {str(i["name"]) for i in inspect(db.engine).get_indexes(table)}


def test_upgrade_to_traceability_keeps_the_inspections(empty_database_url: str, tmp_path: Path) -> None:
    """-> 0008 adds inspections.lot/panel_id/line (indexed) and products.trace: inspections stored before
    keep every value and read back with no lot, panel or line; new ones store theirs and are found by them;
    and back down, the columns go and the rows stay."""
    db = Database(empty_database_url)
    try:
        before = _revision_before("0008")
        migrate(db, before)
        images = ImageStore(tmp_path / "images")
        product = _add_old_product(db, images)
        old_id = _add_old_inspection(db, images, "hotfolder:b1.png:1", product_id=product.id)
        with db.engine.begin() as conn:
            conn.execute(
                text("UPDATE defects SET review_status = 'confirmed', reviewed_by = 'kim', reviewed_at = :now"),
                {"now": utc_now_aware()},
            )

        migrate(db, "0008")

        assert current_revision(db) == "0008"
        columns = {c["name"]: c for c in inspect(db.engine).get_columns("inspections")}
        assert all(columns[name]["nullable"] for name in ("lot", "panel_id", "line"))
        assert {"ix_inspections_lot", "ix_inspections_panel_id", "ix_inspections_line"} <= _index_names(
            db, "inspections"
        )
        with db.engine.connect() as conn:
            assert conn.execute(text("SELECT COUNT(*) FROM inspections WHERE lot IS NULL")).scalar_one() == 1
            assert conn.execute(text("SELECT COUNT(*) FROM products WHERE trace IS NULL")).scalar_one() == 1
        migrate(db, "head")  # the ORM rows of today
        with db.session() as session:
            old = InspectionRepository(session).get(old_id)
            taken = ProductRepository(session).get("board-a")
        assert old is not None and old.result.trace == Trace() and old.product_name == "board-a"
        assert old.result.defects[0].box_px == (300.0, 300.0, 316.0, 312.0)
        assert old.reviews[old.result.defects[0].id or ""].reviewed_by == "kim"
        assert taken is not None and taken.trace is None and taken.px_per_mm == 20.0

        result = InspectionResult(
            image_id="b2",
            image_size_wh=(640, 640),
            defects=(Defect("open", 0.7, (10, 10, 20, 20)),),
            verdict=Verdict.FAIL,
            px_per_mm=20.0,
            model_version="m",
            trace=Trace(lot="L7", panel_id="P0042", line="SMT-1"),
        )
        new = InspectionRecorder(db, images).record(result, paint_board(), product=product, source_key="hotfolder:b2")
        with db.session() as session:
            repo = InspectionRepository(session)
            found, total = repo.page(InspectionFilter(lot="L7"), 10, 0)
            assert total == 1 and found[0].id == new.id and found[0].result.trace == result.trace
            assert repo.page(InspectionFilter(panel_id="P0042", line="SMT-1"), 10, 0)[1] == 1
            assert repo.page(InspectionFilter(lot="L8"), 10, 0)[1] == 0

        migrate(db, before, down=True)  # and back: the columns go, the inspections stay
        assert not {"lot", "panel_id", "line"} & {c["name"] for c in inspect(db.engine).get_columns("inspections")}
        assert "trace" not in {c["name"] for c in inspect(db.engine).get_columns("products")}
        with db.engine.connect() as conn:
            assert conn.execute(text("SELECT COUNT(*) FROM inspections")).scalar_one() == 2
            assert conn.execute(text("SELECT COUNT(*) FROM defects")).scalar_one() == 2
    finally:
        db.dispose()


def test_upgrade_to_review_leases_keeps_the_defects_and_leases_go_with_them(
    empty_database_url: str, tmp_path: Path
) -> None:
    """0006 -> 0007 adds the review_leases table only: defects stored before are pending in the queue and
    can be leased; a lease goes with its defect; and back down, the table goes and the defects stay."""
    db = Database(empty_database_url)
    try:
        migrate(db, _revision_before("0007"))
        images = ImageStore(tmp_path / "images")
        old_id = _add_old_inspection(db, images, "hotfolder:b1.png:1")
        kept_id = _add_old_inspection(db, images, "hotfolder:b2.png:1")

        migrate(db, "0007")

        assert current_revision(db) == "0007"
        assert {"ix_review_leases_holder", "ix_review_leases_expires_at"} <= _index_names(db, "review_leases")
        with db.engine.begin() as conn:
            of_old = text("SELECT id FROM defects WHERE inspection_id = :i")
            defect_id = conn.execute(of_old, {"i": old_id}).scalar_one()
            conn.execute(
                text(
                    "INSERT INTO review_leases (defect_id, holder, holder_name, leased_at, expires_at)"
                    " VALUES (:d, 'api-key-1', 'kim', :now, :now)"
                ),
                {"d": defect_id, "now": utc_now_aware()},
            )
        migrate(db, "head")
        with db.transaction() as session:  # what the dashboard's badge and Stats count
            assert count_pending(session) == 2
            session.execute(InspectionRow.__table__.delete().where(InspectionRow.id == old_id))
        with db.engine.connect() as conn:
            assert conn.execute(text("SELECT COUNT(*) FROM review_leases")).scalar_one() == 0  # gone with it

        migrate(db, "0006", down=True)
        assert "review_leases" not in inspect(db.engine).get_table_names()
        with db.engine.connect() as conn:
            assert conn.execute(text("SELECT inspection_id FROM defects")).scalars().all() == [kept_id]
    finally:
        db.dispose()


def test_upgrade_to_operator_defects_keeps_the_defects_as_the_engines(empty_database_url: str, tmp_path: Path) -> None:
    """0008 -> 0009 adds a non-null defects.origin: defects stored before are the engine's (the server default
    fills them, reviews kept) and a row written without the column still gets 'engine'; an operator-added
    defect is stored with 'operator' and fails the board; and back down, the column goes and every defect stays."""
    db = Database(empty_database_url)
    try:
        migrate(db, _revision_before("0009"))
        images = ImageStore(tmp_path / "images")
        product = _add_old_product(db, images)
        old_id = _add_old_inspection(db, images, "hotfolder:b1.png:1", product_id=product.id)
        with db.engine.begin() as conn:
            conn.execute(
                text("UPDATE defects SET review_status = 'false_call', reviewed_by = 'kim', reviewed_at = :now"),
                {"now": utc_now_aware()},
            )
            conn.execute(text("UPDATE inspections SET verdict = 'pass'"))  # as if the rules tolerated the short

        migrate(db, "0009")

        assert current_revision(db) == "0009"
        column = next(c for c in inspect(db.engine).get_columns("defects") if c["name"] == "origin")
        assert column["nullable"] is False and "engine" in str(column["default"])
        with db.engine.connect() as conn:
            assert conn.execute(text("SELECT origin FROM defects")).scalars().all() == ["engine"]
        second_id = _add_old_inspection(db, images, "hotfolder:b2.png:1")  # an INSERT that does not name origin
        migrate(db, "head")
        with db.transaction() as session:
            added = InspectionRepository(session).add_missed_defect(old_id, DefectType.OPEN, (10, 10, 30, 20), "lee")
        with db.session() as session:
            old = InspectionRepository(session).get(old_id)
            second = InspectionRepository(session).get(second_id)
        assert old is not None and second is not None and added is not None
        engine_defect, operator_defect = old.result.defects
        assert (
            old.origin(engine_defect.id) is DefectOrigin.ENGINE
            and old.reviews[engine_defect.id or ""].reviewed_by == "kim"
        )
        assert old.origin(added) is DefectOrigin.OPERATOR and operator_defect.id == added
        assert operator_defect.box_mm == (0.5, 0.5, 1.5, 1.0) and old.reviews[added].status == "confirmed"
        assert old.result.verdict is Verdict.FAIL  # the false-called short does not count, the missed open does
        assert second.operator_added == frozenset()
        with db.session() as session:
            assert count_pending(session) == 1  # the second board's short; the added defect is decided

        migrate(db, "0008", down=True)  # and back: the column goes, the defects stay
        assert "origin" not in {c["name"] for c in inspect(db.engine).get_columns("defects")}
        with db.engine.connect() as conn:
            assert conn.execute(text("SELECT COUNT(*) FROM defects")).scalar_one() == 3
            assert (
                conn.execute(text("SELECT defect_count FROM inspections WHERE id = :i"), {"i": old_id}).scalar_one()
                == 2
            )
    finally:
        db.dispose()
