"""One board and one panel, through every entry point, give the same defects (the real engine).

`aoi inspect`, an HTTP upload and the hot folder all inspect through a `TiledInspector` with the one
panel tiling (`TilingConfig.for_panels`), so a panel is cut into the same tiles whichever door it came in.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient
from tests.support.service import png, send_key_on_reads
from typer.testing import CliRunner

from aoi.api import ServiceSettings, create_app
from aoi.api.line import INBOX_DIR_NAME, LineOptions, build_line
from aoi.cli import app as cli
from aoi.data.synthetic import make_pair
from aoi.detection.inspector import Inspector
from aoi.detection.tiling import PANEL_TILE_PX
from aoi.storage import Storage
from aoi.storage.keys import create_api_key

BOARDS = {"board": (640, 640), "panel": (PANEL_TILE_PX + 400, PANEL_TILE_PX + 200)}


def _defects(record: dict) -> list[tuple[str, list[float]]]:
    return sorted((d["type"], [round(v, 1) for v in d["box_px"]]) for d in record["defects"])


@pytest.mark.slow
def test_a_board_and_a_panel_give_the_same_defects_through_every_entry_point(tmp_path: Path) -> None:
    rng = np.random.default_rng(42)
    pairs = {name: make_pair(rng, n_defects=(3, 5), size_wh=size) for name, size in BOARDS.items()}
    for name, pair in pairs.items():
        cv2.imwrite(str(tmp_path / f"{name}_test.png"), pair.test)
        cv2.imwrite(str(tmp_path / f"{name}_temp.png"), pair.template)

    by_cli = {}
    for name in pairs:
        out = tmp_path / f"cli-{name}"
        result = CliRunner().invoke(
            cli,
            [
                "inspect",
                str(tmp_path / f"{name}_test.png"),
                "-t",
                str(tmp_path / f"{name}_temp.png"),
                "--out",
                str(out),
            ],
        )
        assert result.exit_code in (0, 1), result.output  # 1: defects found
        by_cli[name] = json.loads((out / f"{name}_test.json").read_text())

    storage = Storage.open(tmp_path / "data")
    settings = ServiceSettings(data_dir=storage.data_dir, serve_dashboard=False, max_upload_bytes=20_000_000)
    engine = Inspector.load()
    app = create_app(
        settings, inspector=engine, storage=storage, line_factory=lambda svc: build_line(svc, LineOptions())
    )
    with storage.db.transaction() as session:
        key = create_api_key(session, label="tester")
    auth = {"Authorization": f"Bearer {key}"}
    by_upload, by_hot_folder = {}, {}
    with TestClient(app) as client:
        send_key_on_reads(client, key)
        for name, pair in pairs.items():
            r = client.post(
                "/api/v1/products",
                data={"name": name, "px_per_mm": "48"},
                files={"template": ("t.png", png(pair.template), "image/png")},
                headers=auth,
            )
            assert r.status_code == 201, r.text
            r = client.post(
                "/api/v1/inspections",
                data={"product": name},
                files={"image": (f"{name}.png", png(pair.test), "image/png")},
                headers=auth,
            )
            assert r.status_code == 201, r.text
            by_upload[name] = r.json()
            folder = storage.data_dir / INBOX_DIR_NAME / name
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{name}.png.part").write_bytes(png(pair.test))
            (folder / f"{name}.png.part").rename(folder / f"{name}.png")
        deadline = time.monotonic() + 120
        while (page := client.get("/api/v1/inspections", params={"limit": 10}).json())["total"] < 4:
            assert time.monotonic() < deadline, "the hot folder did not store both files"
            time.sleep(0.2)
        for item in page["items"]:
            if item["source"] == "hotfolder":
                by_hot_folder[item["product_name"]] = item
    storage.close()
    for name in pairs:
        assert by_cli[name]["defects"], f"the {name} has painted defects; the engine must report some"
        assert _defects(by_cli[name]) == _defects(by_upload[name]) == _defects(by_hot_folder[name]), name
