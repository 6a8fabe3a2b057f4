"""What the API and storage tests share: painted boards, a fast fake inspector and a `Service` handle on the app
(built by the `service` fixture in tests/conftest.py over SQLite or PostgreSQL)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import httpx
import numpy as np
from fastapi.testclient import TestClient
from sqlalchemy import text
from tests.support.pipeline_fakes import FakeInspector as SharedFakeInspector
from tests.support.pipeline_fakes import paint_traces, with_defect

from aoi.storage import Storage


class FakeInspector(SharedFakeInspector):
    """The shared difference fake (tests/support/pipeline_fakes.py) with the service tests' model version,
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
