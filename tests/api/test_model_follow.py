"""A running service serves a model promoted (or rolled back) in its registry within seconds."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

from fastapi.testclient import TestClient
from tests.support.service import FakeInspector, paint_board, png, with_short

from aoi.api import ServiceSettings, create_app
from aoi.api.model_follow import RegistryFollower
from aoi.detection.bundle import ModelBundle
from aoi.detection.model_registry import ModelRegistry
from aoi.detection.tiling import TiledInspector
from aoi.storage import Storage
from aoi.storage.keys import create_api_key

DEFAULT_VERSION = ModelBundle.load().meta.version


def _registered_copy(registry: ModelRegistry, folder: Path, version: str) -> None:
    base = ModelBundle.load()
    folder.mkdir(parents=True)
    (folder / "model.onnx").write_bytes(base.onnx_path.read_bytes())
    ModelBundle(folder, replace(base.meta, version=version)).save_meta()
    registry.add(ModelBundle.load(folder))


def test_the_follower_swaps_in_what_is_promoted_and_keeps_serving_through_a_damaged_registry(
    tmp_path: Path,
) -> None:
    registry = ModelRegistry.in_data_dir(tmp_path)
    tiled = TiledInspector(FakeInspector())
    follower = RegistryFollower(registry, tiled, poll_s=0.05)
    assert not follower.check()  # no registry yet: the started model serves
    _registered_copy(registry, tmp_path / "copy", "m-follow")
    assert follower.check()  # registered, not promoted: the registry serves the bundled default
    assert tiled.model_version == DEFAULT_VERSION
    assert not follower.check()  # nothing changed since
    registry.promote("m-follow")
    assert follower.check() and tiled.model_version == "m-follow"
    registry.path.write_text("{damaged")
    assert not follower.check() and tiled.model_version == "m-follow"
    registry.path.unlink()  # no registry: the bundled default
    assert follower.check() and tiled.model_version == DEFAULT_VERSION


def test_a_running_service_serves_a_promoted_model_and_stores_its_version(tmp_path: Path) -> None:
    storage = Storage.open(tmp_path / "data")
    settings = ServiceSettings(data_dir=storage.data_dir, serve_dashboard=False, registry_poll_s=0.1)
    app = create_app(settings, inspector=FakeInspector(), storage=storage)
    with storage.db.transaction() as session:
        key = create_api_key(session, label="tester")
    registry = ModelRegistry.in_data_dir(storage.data_dir)
    with TestClient(app) as client:
        assert client.get("/health").json()["model_version"] != "m-live"
        _registered_copy(registry, tmp_path / "copy", "m-live")
        registry.promote("m-live")
        deadline = time.monotonic() + 10
        while client.get("/health").json()["model_version"] != "m-live":
            assert time.monotonic() < deadline, "the promoted model was not served within 10 s"
            time.sleep(0.1)
        board = paint_board()
        r = client.post(
            "/api/v1/inspections",
            files={
                "image": ("b.png", png(with_short(board)), "image/png"),
                "template": ("t.png", png(board), "image/png"),
            },
            headers={"Authorization": f"Bearer {key}"},
        )
        assert r.status_code == 201, r.text
        assert r.json()["model_version"] == "m-live"
        registry.rollback()
        deadline = time.monotonic() + 10
        while client.get("/health").json()["model_version"] != DEFAULT_VERSION:
            assert time.monotonic() < deadline, "the rollback was not served within 10 s"
            time.sleep(0.1)
    storage.close()
