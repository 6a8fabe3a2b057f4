"""How `aoi serve` composes its line: the same engine settings, and the same tiling, as an HTTP upload."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
from fastapi.testclient import TestClient
from tests.support.service import FakeInspector, paint_board, png, send_key_on_reads, with_short

from aoi.api import ServiceSettings, create_app
from aoi.api.app import services_of
from aoi.api.line import INBOX_DIR_NAME, LineOptions, ServiceLine, build_line
from aoi.detection.tiling import TiledInspector, TilingConfig
from aoi.schema import InspectionResult
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


class ThreadRecordingInspector(FakeInspector):
    """The fake engine, noting the name of every thread that calls it."""

    def __init__(self) -> None:
        super().__init__()
        self.threads: list[str] = []

    def inspect(self, test: np.ndarray, template: np.ndarray, **kwargs: object) -> InspectionResult:  # type: ignore[override]
        self.threads.append(threading.current_thread().name)
        return super().inspect(test, template, **kwargs)  # type: ignore[arg-type]


def test_an_upload_and_a_hot_folder_file_take_one_path(tmp_path: Path) -> None:
    """One path: the same board uploaded and dropped in the hot folder is inspected by the line's inspect
    workers both times (the request only decodes and waits), with the same defects."""
    storage = Storage.open(tmp_path / "data")
    settings = ServiceSettings(data_dir=storage.data_dir, serve_dashboard=False, line_name="SMT-1")
    engine = ThreadRecordingInspector()
    built: list[ServiceLine] = []

    def line_factory(svc):  # type: ignore[no-untyped-def]
        built.append(build_line(svc, LineOptions(inspect_workers=2), engine))
        return built[-1]

    app = create_app(settings, inspector=engine, storage=storage, line_factory=line_factory)
    with storage.db.transaction() as session:
        key = create_api_key(session, label="tester")
    auth = {"Authorization": f"Bearer {key}"}
    template = paint_board()
    board = png(with_short(template))
    with TestClient(app) as client:
        send_key_on_reads(client, key)
        r = client.post(
            "/api/v1/products",
            data={"name": "board-a", "px_per_mm": "20"},
            files={"template": ("t.png", png(template), "image/png")},
            headers=auth,
        )
        assert r.status_code == 201, r.text
        r = client.post(
            "/api/v1/inspections",
            data={"product": "board-a", "lot": "L7"},
            files={"image": ("b1.png", board, "image/png")},
            headers=auth,
        )
        assert r.status_code == 201, r.text
        uploaded = r.json()
        folder = storage.data_dir / INBOX_DIR_NAME / "board-a"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "b1.png.part").write_bytes(board)
        (folder / "b1.png.part").rename(folder / "b1.png")
        deadline = time.monotonic() + 20
        while (page := client.get("/api/v1/inspections").json())["total"] < 2:
            assert time.monotonic() < deadline, f"the hot folder stored {page['total'] - 1} of 1 file"
            time.sleep(0.05)
        by_source = {i["source"]: i for i in page["items"]}
        counts = built[0].pipeline.metrics()["counts"]
        metrics = client.get("/metrics").text
    hot = by_source["hotfolder"]
    assert set(by_source) == {"upload", "hotfolder"}
    assert uploaded == by_source["upload"]
    assert [(d["type"], d["box_px"], d["box_mm"]) for d in uploaded["defects"]] == [
        (d["type"], d["box_px"], d["box_mm"]) for d in hot["defects"]
    ]
    assert len(uploaded["defects"]) == 1 and uploaded["verdict"] == hot["verdict"] == "fail"
    assert (uploaded["product_name"], uploaded["lot"], uploaded["line"]) == ("board-a", "L7", "SMT-1")
    assert (hot["product_name"], hot["lot"], hot["line"]) == ("board-a", None, "SMT-1")
    assert len(engine.threads) == 2 and all(name.startswith("aoi-inspect-") for name in engine.threads), engine.threads
    assert counts["accepted"] == counts["stored"] == 2 and counts["failed"] == 0
    assert 'aoi_inspections_total{verdict="fail",source="upload"} 1' in metrics
    assert 'aoi_inspections_total{verdict="fail",source="hotfolder"} 1' in metrics
