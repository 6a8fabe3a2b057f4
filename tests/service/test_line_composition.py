"""How `aoi serve` composes its line: the same engine settings as an HTTP upload."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient
from tests.service.conftest import FakeInspector

from aoi.api import ServiceSettings, create_app
from aoi.api.line import LineOptions, ServiceLine, build_line
from aoi.storage import Storage


def test_the_line_tiles_a_panel_as_an_http_upload_does(tmp_path: Path) -> None:
    """One panel, one set of tiles: the line used to cut 1024 px tiles where an upload cut 2048."""
    storage = Storage.open(tmp_path / "data")
    settings = ServiceSettings(
        data_dir=storage.data_dir, serve_dashboard=False, panel_tile_px=1536, panel_overlap_px=200
    )
    built: list[ServiceLine] = []

    def line_factory(svc):  # type: ignore[no-untyped-def]
        built.append(build_line(svc, LineOptions(), FakeInspector()))
        return built[-1]

    app = create_app(settings, inspector=FakeInspector(), storage=storage, line_factory=line_factory)
    with TestClient(app):
        config = built[0].pipeline.config
        assert (config.panel_threshold_px, config.panel_tile_px, config.panel_overlap_px) == (1536, 1536, 200)
