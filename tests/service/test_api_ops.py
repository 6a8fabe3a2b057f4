"""Health, Prometheus metrics, OpenAPI docs, the dashboard mount, and the key/export commands."""

from __future__ import annotations

import re
from pathlib import Path

from fastapi.testclient import TestClient
from typer.testing import CliRunner

from aoi.api import ServiceSettings, create_app
from aoi.service_cli import app as service_cli
from aoi.storage import Storage
from aoi.storage.keys import find_api_key, hash_token
from tests.service.conftest import FakeInspector, Service, paint_board, png, with_short


def test_health(service: Service) -> None:
    r = service.client.get("/health")
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "model_version": "fake-1", "database": "ok"}


def test_metrics_count_inspections_latency_and_rejections(service: Service) -> None:
    product = service.add_product()
    service.inspect(with_short(paint_board()), product["id"])
    service.inspect(paint_board(), product["id"])
    service.inspect(paint_board(), product["id"])
    service.client.post("/api/v1/inspections", files={"image": ("x.png", b"junk")}, headers={})
    text = service.client.get("/metrics")
    assert text.headers["content-type"].startswith("text/plain")
    body = text.text
    assert 'aoi_inspections_total{verdict="fail",source="upload"} 1' in body
    assert 'aoi_inspections_total{verdict="pass",source="upload"} 2' in body
    assert 'aoi_inspection_latency_seconds_bucket{le="+Inf"} 3' in body
    assert "aoi_inspection_latency_seconds_count 3" in body
    assert 'aoi_requests_rejected_total{status="401"} 1' in body
    for line in body.splitlines():  # every sample line is `name{labels} number`
        if line and not line.startswith("#"):
            assert re.fullmatch(r"[a-z_]+(\{[^}]*\})? -?[0-9.e+-]+", line), line


def test_openapi_lists_every_route(service: Service) -> None:
    spec = service.client.get("/openapi.json").json()
    paths = set(spec["paths"])
    assert {
        "/api/v1/products",
        "/api/v1/inspections",
        "/api/v1/inspections/{inspection_id}",
        "/api/v1/inspections/{inspection_id}/overlay.png",
        "/api/v1/defects/{defect_id}/review",
        "/api/v1/stats",
        "/api/v1/export",
        "/health",
        "/metrics",
    } <= paths
    assert service.client.get("/docs").status_code == 200


def test_dashboard_is_mounted_at_root(tmp_path: Path) -> None:
    storage = Storage.open(tmp_path / "data")
    app = create_app(ServiceSettings(data_dir=storage.data_dir), inspector=FakeInspector(), storage=storage)
    with TestClient(app) as client:
        r = client.get("/")
        assert r.status_code == 200 and "text/html" in r.headers["content-type"]
    storage.close()


def test_keys_create_prints_the_key_last_and_stores_only_its_hash(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(service_cli, ["keys", "create", "--data-dir", str(tmp_path), "--label", "station-3"])
    assert result.exit_code == 0, result.output
    key = result.output.strip().splitlines()[-1]
    assert key.startswith("aoi_") and len(key) > 40
    assert key.encode() not in (tmp_path / "aoi.db").read_bytes()
    storage = Storage.open(tmp_path)
    with storage.db.session() as session:
        row = find_api_key(session, key)
        assert row is not None and row.label == "station-3" and row.key_hash == hash_token(key)
        assert find_api_key(session, key + "x") is None
    # the key works for writes on an app over the same data dir
    app = create_app(ServiceSettings(data_dir=tmp_path, serve_dashboard=False), inspector=FakeInspector(),
                     storage=storage)
    with TestClient(app) as client:
        files = {"template": ("t.png", png(paint_board()), "image/png")}
        r = client.post("/api/v1/products", data={"name": "p", "px_per_mm": "20"}, files=files,
                        headers={"Authorization": f"Bearer {key}"})
        assert r.status_code == 201, r.text
    storage.close()


def test_export_command(service: Service, tmp_path: Path) -> None:
    product = service.add_product()
    body = service.inspect(with_short(paint_board()), product["id"])
    service.client.post(f"/api/v1/defects/{body['defects'][0]['id']}/review", json={"decision": "confirm"},
                        headers=service.auth)
    args = ["export", str(tmp_path / "ds"), "--data-dir", str(service.data_dir)]
    if service.backend != "sqlite":
        args += ["--database-url", service.storage.db.url]
    result = CliRunner().invoke(service_cli, args)
    assert result.exit_code == 0, result.output
    assert "exported 1 reviewed images with 1 defects" in result.output
    assert (tmp_path / "ds" / "trainval.txt").is_file()
