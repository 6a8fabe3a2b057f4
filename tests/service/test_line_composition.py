"""How `aoi serve` composes its line: the same engine settings, and the same tiling, as an HTTP upload."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from fastapi.testclient import TestClient
from tests.service.conftest import FakeInspector, paint_board, png, with_short

from aoi.api import ServiceSettings, create_app
from aoi.api.app import services_of
from aoi.api.line import LineOptions, ServiceLine, build_line
from aoi.detection.tiling import TiledInspector, TilingConfig
from aoi.storage import Storage
from aoi.storage.keys import create_api_key


def test_the_line_tiles_a_panel_as_an_http_upload_does(tmp_path: Path) -> None:
    """One ServiceSettings, one TilingConfig: the line once cut 1024 px tiles where an upload cut 2048."""
    storage = Storage.open(tmp_path / "data")
    settings = ServiceSettings(
        data_dir=storage.data_dir, serve_dashboard=False, panel_tile_px=1536, panel_overlap_px=200, panel_workers=3
    )
    assert settings.tiling == TilingConfig(threshold_px=1536, tile_px=1536, overlap_px=200, workers=3)
    built: list[ServiceLine] = []

    def line_factory(svc):  # type: ignore[no-untyped-def]
        built.append(build_line(svc, LineOptions(), FakeInspector()))  # an inspector of its own: wrapped alike
        return built[-1]

    app = create_app(settings, inspector=FakeInspector(), storage=storage, line_factory=line_factory)
    with TestClient(app):
        uploads = services_of(app).inspections.inspector
        line = built[0].pipeline.inspector
        assert isinstance(line, TiledInspector) and line is not uploads
        assert line.config == uploads.config == settings.tiling
    assert built[0].owned is line  # closed with the line


def test_uploads_and_the_line_share_one_tiled_inspector(tmp_path: Path) -> None:
    """`aoi serve` hands the line the uploads' engine: both inspect through the one TiledInspector, so a
    panel over the tile size is cut into the same tiles whichever road it came by."""
    storage = Storage.open(tmp_path / "data")
    settings = ServiceSettings(
        data_dir=storage.data_dir, serve_dashboard=False, panel_tile_px=256, panel_overlap_px=32, panel_workers=1
    )
    engine = FakeInspector()
    built: list[ServiceLine] = []

    def line_factory(svc):  # type: ignore[no-untyped-def]
        built.append(build_line(svc, LineOptions(inspect_workers=1), engine))
        return built[-1]

    app = create_app(settings, inspector=engine, storage=storage, line_factory=line_factory)
    with storage.db.transaction() as session:
        key = create_api_key(session, label="tester")
    auth = {"Authorization": f"Bearer {key}"}
    panel = np.block([[paint_board(320, seed), paint_board(320, seed + 1)] for seed in (0, 2)])  # 640 x 640
    test = with_short(panel, (300, 300, 316, 312))  # on the seam between the first two tile columns
    with TestClient(app) as client:
        tiled = services_of(app).inspections.inspector
        assert built[0].pipeline.inspector is tiled and built[0].owned is None
        r = client.post(
            "/api/v1/products",
            data={"name": "panel-a", "px_per_mm": "20"},
            files={"template": ("t.png", png(panel), "image/png")},
            headers=auth,
        )
        assert r.status_code == 201, r.text
        engine.calls = 0
        r = client.post(
            "/api/v1/inspections",
            data={"product": "panel-a"},
            files={"image": ("p.png", png(test), "image/png")},
            headers=auth,
        )
        assert r.status_code == 201, r.text
        uploaded = r.json()
        tiles_by_http, engine.calls = engine.calls, 0
        by_line = built[0].pipeline.submit(test, product="panel-a").result(timeout=30).result
    assert tiles_by_http == engine.calls == by_line.registration["tiles"] == uploaded["registration"]["tiles"] > 1
    assert [d["box_px"] for d in uploaded["defects"]] == [list(d.box_px) for d in by_line.defects]
    assert len(by_line.defects) == 1
