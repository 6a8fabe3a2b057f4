"""End to end through HTTP with the real engine (`Inspector.load()`, the bundled model) on a synthetic board."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from tests.support.service import png

from aoi.api import ServiceSettings, create_app
from aoi.storage import Storage
from aoi.storage.keys import create_api_key


@pytest.fixture(scope="module")
def real_inspector():  # type: ignore[no-untyped-def]
    from aoi.detection.inspector import Inspector

    return Inspector.load()  # a missing bundled model is a failure, not a skip


@pytest.fixture
def client(tmp_path: Path, real_inspector) -> Iterator[tuple[TestClient, dict[str, str]]]:  # type: ignore[no-untyped-def]
    storage = Storage.open(tmp_path / "data")
    with storage.db.transaction() as session:
        key = create_api_key(session, "e2e")
    app = create_app(
        ServiceSettings(data_dir=storage.data_dir, serve_dashboard=False), inspector=real_inspector, storage=storage
    )
    with TestClient(app) as test_client:
        yield test_client, {"Authorization": f"Bearer {key}"}
    storage.close()


def test_real_inspector_through_the_api(client, real_inspector) -> None:  # type: ignore[no-untyped-def]
    from aoi.data.synthetic import make_pair

    http, auth = client
    pair = make_pair(np.random.default_rng(7))
    r = http.post(
        "/api/v1/products",
        data={"name": "synthetic", "px_per_mm": "48"},
        files={"template": ("t.png", png(pair.template), "image/png")},
        headers=auth,
    )
    assert r.status_code == 201, r.text
    r = http.post(
        "/api/v1/inspections",
        data={"product": "synthetic"},
        files={"image": ("b.png", png(pair.test), "image/png")},
        headers=auth,
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["model_version"] == real_inspector.model_version
    assert {"register", "candidates", "classify", "total"} <= set(body["timings_ms"])
    assert body["verdict"] == ("fail" if body["defects"] else "pass")
    for defect in body["defects"]:
        x1, y1, x2, y2 = defect["box_px"]
        assert 0 <= x1 < x2 <= pair.test.shape[1] and 0 <= y1 < y2 <= pair.test.shape[0]
        assert defect["box_mm"] == pytest.approx([v / 48.0 for v in defect["box_px"]], abs=1e-3)
    assert len(pair.labels) == 0 or body["defects"], "the engine found none of the painted defects"
    assert http.get(body["overlay_url"], headers=auth).status_code == 200
