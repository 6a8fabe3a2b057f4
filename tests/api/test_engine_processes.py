"""`aoi serve`'s default engine: uploads inspected in worker processes, which end with the service."""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

import numpy as np

from aoi.data.synthetic import make_pair
from aoi.detection.inspector import Inspector
from aoi.detection.process_inspector import ProcessInspector


def test_the_service_inspects_uploads_in_engine_processes(tmp_path: Path) -> None:
    import cv2
    from fastapi.testclient import TestClient

    from aoi.api import ServiceSettings, create_app
    from aoi.storage import Storage
    from aoi.storage.keys import create_api_key

    settings = ServiceSettings(data_dir=tmp_path / "data", engine_processes=1, registry_poll_s=0)
    storage = Storage.open(settings.data_dir)
    with storage.db.transaction() as session:
        token = create_api_key(session, "line")
    app = create_app(settings, storage=storage)
    pair = make_pair(np.random.default_rng(8), n_defects=(2, 3))
    files = {
        "image": ("board.png", cv2.imencode(".png", pair.test)[1].tobytes(), "image/png"),
        "template": ("golden.png", cv2.imencode(".png", pair.template)[1].tobytes(), "image/png"),
    }
    with TestClient(app) as client:
        engine = app.state.services.inspections.inspector.inspector
        assert isinstance(engine, ProcessInspector)
        answer = client.post("/api/v1/inspections", files=files, headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 201, answer.text
        want = Inspector.load().inspect(pair.test, pair.template, image_id="x").defects
        assert [d["type"] for d in answer.json()["defects"]] == [d.type.value for d in want]
    assert not [c for c in mp.active_children() if c.is_alive()]  # the workers ended with the service
    storage.close()
