"""Fixtures of the service tests: painted boards, a fast fake inspector, and the app over SQLite or PostgreSQL."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from aoi.api import ServiceSettings, create_app
from aoi.registration import RegistrationError
from aoi.schema import Defect, DefectType, InspectionResult
from aoi.storage import Storage, resolve_database_url
from aoi.storage.keys import create_api_key
from aoi.verdict import VerdictRules

PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"


class FakeInspector:
    """Finds differences between test and template (threshold + connected components): fast and exact.

    Brighter-than-template blobs are `short`, darker ones `open`; confidence 0.9.
    """

    model_version = "fake-1"

    def __init__(self) -> None:
        self.calls = 0

    def inspect(
        self,
        test: np.ndarray,
        template: np.ndarray,
        *,
        image_id: str,
        px_per_mm: float = 48.0,
        rules: VerdictRules | None = None,
        product: str | None = None,
        origin_px: tuple[float, float] = (0.0, 0.0),
    ) -> InspectionResult:
        self.calls += 1
        t0 = time.perf_counter()
        if test.shape != template.shape:
            raise RegistrationError(f"{image_id}: template size differs")
        defects = []
        for sign, kind in ((1, DefectType.SHORT), (-1, DefectType.OPEN)):
            diff = np.clip(sign * (test.astype(np.int16) - template.astype(np.int16)), 0, 255).astype(np.uint8)
            n, _, boxes, _ = cv2.connectedComponentsWithStats((diff > 60).astype(np.uint8))
            for x, y, w, h, area in boxes[1:n]:
                if area >= 4:
                    d = Defect(kind, 0.9, (float(x), float(y), float(x + w), float(y + h)))
                    defects.append(d.with_mm(px_per_mm, origin_px))
        verdict = (rules or VerdictRules()).verdict(defects, px_per_mm)
        total_ms = (time.perf_counter() - t0) * 1e3
        h, w = test.shape
        return InspectionResult(
            image_id=image_id,
            image_size_wh=(w, h),
            defects=tuple(defects),
            verdict=verdict,
            px_per_mm=px_per_mm,
            model_version=self.model_version,
            timings_ms={"register": 0.0, "candidates": total_ms, "classify": 0.0, "total": total_ms},
            product=product,
        )


def paint_board(size_px: int = 640, seed: int = 0) -> np.ndarray:
    """A template: copper traces (white rectangles) on a black substrate."""
    rng = np.random.default_rng(seed)
    board = np.zeros((size_px, size_px), np.uint8)
    for _ in range(12):
        x, y = (int(v) for v in rng.integers(10, size_px - 120, 2))
        if rng.random() < 0.5:
            board[y : y + 8, x : x + 100] = 255
        else:
            board[y : y + 100, x : x + 8] = 255
    return board


def with_short(template: np.ndarray, box_xyxy: tuple[int, int, int, int] = (300, 300, 316, 312)) -> np.ndarray:
    """The template with one extra copper blob (a short) at `box_xyxy`."""
    test = template.copy()
    x1, y1, x2, y2 = box_xyxy
    test[y1:y2, x1:x2] = 255
    return test


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
            session.execute(text("TRUNCATE defects, inspections, inspection_failures, products, api_keys CASCADE"))
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
        yield Service(client, storage, inspector, key, storage.data_dir, backend)
