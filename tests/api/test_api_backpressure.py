"""Upload back-pressure: uploads are inspected by the line's inspect workers (`--workers`, the one CPU
budget), at most that many at once; the others wait in the line's queue, none is refused."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from tests.support.service import FakeInspector, paint_board, png, with_short

from aoi.api import ServiceSettings, create_app
from aoi.schema import InspectionResult
from aoi.storage import Storage
from aoi.storage.keys import create_api_key


class SlowCountingInspector(FakeInspector):
    """The fake engine, held for `hold_s` per call, recording how many calls overlapped at most."""

    def __init__(self, hold_s: float) -> None:
        super().__init__()
        self.hold_s = hold_s
        self.running = 0
        self.peak = 0
        self._lock = threading.Lock()

    def inspect(self, test: np.ndarray, template: np.ndarray, **kwargs: object) -> InspectionResult:  # type: ignore[override]
        with self._lock:
            self.running += 1
            self.peak = max(self.peak, self.running)
        try:
            time.sleep(self.hold_s)
            return super().inspect(test, template, **kwargs)  # type: ignore[arg-type]
        finally:
            with self._lock:
                self.running -= 1


@pytest.fixture
def slow_service(tmp_path: Path) -> Iterator[tuple[TestClient, SlowCountingInspector, dict[str, str]]]:
    storage = Storage.open(tmp_path / "data")
    inspector = SlowCountingInspector(hold_s=0.05)
    settings = ServiceSettings(data_dir=storage.data_dir, serve_dashboard=False, upload_concurrency=2)
    app = create_app(settings, inspector=inspector, storage=storage)  # a line of LineOptions' 2 inspect workers
    with storage.db.transaction() as session:
        key = create_api_key(session, label="tester")
    with TestClient(app) as client:
        yield client, inspector, {"Authorization": f"Bearer {key}"}
    storage.close()


def test_concurrent_uploads_wait_for_an_inspect_worker_and_all_succeed(
    slow_service: tuple[TestClient, SlowCountingInspector, dict[str, str]],
) -> None:
    client, inspector, auth = slow_service
    template = paint_board()
    r = client.post(
        "/api/v1/products",
        data={"name": "b", "px_per_mm": "20"},
        files={"template": ("t.png", png(template), "image/png")},
        headers=auth,
    )
    assert r.status_code == 201, r.text
    product_id = r.json()["id"]
    board = png(with_short(template))

    def upload(i: int) -> int:
        answer = client.post(
            "/api/v1/inspections",
            data={"product": product_id, "image_id": f"u{i}"},
            files={"image": ("u.png", board, "image/png")},
            headers=auth,
        )
        return answer.status_code

    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(upload, range(16)))

    assert statuses == [201] * 16
    assert inspector.calls == 16
    assert inspector.peak == 2  # 8 concurrent requests, 2 inspect workers: bounded, and actually used in parallel
    assert client.get("/api/v1/inspections", headers=auth).json()["total"] == 16
    metrics = client.get("/metrics").text
    assert 'aoi_upload_slots{name="busy"} 0' in metrics
    assert 'aoi_upload_slots{name="waiting"} 0' in metrics


def test_upload_concurrency_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="upload_concurrency"):
        ServiceSettings(data_dir=tmp_path, upload_concurrency=0)
