"""Fixtures of the service tests: painted boards, a fast fake inspector, and the app over SQLite or PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from tests.pipeline.pipeline_fakes import FakeInspector as SharedFakeInspector
from tests.pipeline.pipeline_fakes import paint_traces, with_defect

from aoi.api import ServiceSettings, create_app
from aoi.storage import Storage, resolve_database_url
from aoi.storage.keys import create_api_key

PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"


class FakeInspector(SharedFakeInspector):
    """The shared difference fake (tests/pipeline/pipeline_fakes.py) with the service tests' model version,
    reporting every stage the real engine times (the API passes them through)."""

    def __init__(self) -> None:
        super().__init__(model_version="fake-1", stage_ms={"register": 0.1, "candidates": 0.1, "classify": 0.2})


def paint_board(size_px: int = 640, seed: int = 0) -> np.ndarray:
    """A template of copper traces on a black substrate (the shared painter, 640 px by default)."""
    return paint_traces(size_px, seed)


def with_short(template: np.ndarray, box_xyxy: tuple[int, int, int, int] = (300, 300, 316, 312)) -> np.ndarray:
    """The template with one extra copper blob (a short) at `box_xyxy`."""
    return with_defect(template, box_xyxy, 255)


def png(image: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".png", image)
    if not ok:
        raise RuntimeError("png encode failed")
    return data.tobytes()


@dataclass
class Service:
    client: TestClient
    storage: Storage
    inspector: FakeInspector
    key: str
    data_dir: Path
    backend: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def add_product(self, name: str = "board-a", template: np.ndarray | None = None, **form: str) -> dict:
        template = paint_board() if template is None else template
        data = {"name": name, "px_per_mm": "20", **form}
        r = self.client.post(
            "/api/v1/products", data=data, files={"template": ("t.png", png(template), "image/png")}, headers=self.auth
        )
        assert r.status_code == 201, r.text
        return r.json()

    def inspect(self, test: np.ndarray, product: str, name: str = "board.png", **form: str) -> dict:
        r = self.client.post(
            "/api/v1/inspections",
            data={"product": product, **form},
            files={"image": (name, png(test), "image/png")},
            headers=self.auth,
        )
        assert r.status_code == 201, r.text
        return r.json()

    def counts(self) -> dict[str, int]:
        """Rows per table: what 'nothing half-written' is checked against."""
        with self.storage.db.session() as session:
            return {
                t: int(session.execute(text(f"SELECT COUNT(*) FROM {t}")).scalar_one())
                for t in ("products", "inspections", "defects", "inspection_failures")
            }

    def stored_files(self) -> list[Path]:
        return sorted(p for p in (self.data_dir / "images").rglob("*") if p.is_file())


def send_key_on_reads(client: TestClient, token: str) -> None:
    """Reads are closed by default: `client` sends `token` on every GET or HEAD that names no key itself,
    so a test about something else reads as the dashboard with a stored key does. Writes are left alone:
    a write without a key must still be refused."""

    def add_key(request: httpx.Request) -> None:
        if request.method in ("GET", "HEAD") and "authorization" not in request.headers:
            request.headers["Authorization"] = f"Bearer {token}"

    client.event_hooks = {"request": [add_key], "response": []}


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A uniquely named database on the local PostgreSQL, dropped after the session."""
    admin = create_engine(resolve_database_url(".", PG_ADMIN_URL), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        admin.dispose()
        pytest.skip(f"PostgreSQL at 127.0.0.1:5432 (database 'test') is unreachable: {type(exc).__name__}: {exc}")
    name = f"aoi_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def database_url(backend: str, request: pytest.FixtureRequest) -> str | None:
    if backend == "sqlite":
        return None
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def storage(tmp_path: Path, database_url: str | None) -> Iterator[Storage]:
    store = Storage.open(tmp_path / "data", database_url)
    if not store.db.is_sqlite:  # one database per session: empty it for this test
        with store.db.transaction() as session:
            tables = "defects, inspections, inspection_failures, products, api_keys, idempotency_keys"
            session.execute(text(f"TRUNCATE {tables} CASCADE"))
    yield store
    store.close()


@pytest.fixture
def service(storage: Storage, tmp_path: Path, backend: str) -> Iterator[Service]:
    inspector = FakeInspector()
    settings = ServiceSettings(data_dir=storage.data_dir, max_upload_bytes=2_000_000, serve_dashboard=False)
    app = create_app(settings, inspector=inspector, storage=storage)
    with storage.db.transaction() as session:
        key = create_api_key(session, label="tester")
    with TestClient(app) as client:
        send_key_on_reads(client, key)
        yield Service(client, storage, inspector, key, storage.data_dir, backend)
