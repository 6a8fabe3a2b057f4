"""Health, Prometheus metrics, OpenAPI docs, the dashboard mount, and the key/export commands."""

from __future__ import annotations

import re
import time
from pathlib import Path

from fastapi.testclient import TestClient
from tests.support.service import FakeInspector, Service, paint_board, png, with_short
from typer.testing import CliRunner

from aoi.api import ServiceSettings, create_app
from aoi.cli import app as service_cli
from aoi.storage import Storage
from aoi.storage.keys import find_api_key, hash_token


def test_health(service: Service) -> None:
    r = service.client.get("/health")
    assert r.status_code == 200
    body = r.json()
    line = body.pop("pipeline")  # every app runs a line: uploads are inspected by it
    assert body == {"status": "ok", "model_version": "fake-1", "database": "ok"}
    assert line["running"] is True and line["in_flight"] == 0


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
    app = create_app(
        ServiceSettings(data_dir=tmp_path, serve_dashboard=False), inspector=FakeInspector(), storage=storage
    )
    with TestClient(app) as client:
        files = {"template": ("t.png", png(paint_board()), "image/png")}
        r = client.post(
            "/api/v1/products",
            data={"name": "p", "px_per_mm": "20"},
            files=files,
            headers={"Authorization": f"Bearer {key}"},
        )
        assert r.status_code == 201, r.text
    storage.close()


def test_export_command(service: Service, tmp_path: Path) -> None:
    product = service.add_product()
    body = service.inspect(with_short(paint_board()), product["id"])
    service.client.post(
        f"/api/v1/defects/{body['defects'][0]['id']}/review", json={"decision": "confirm"}, headers=service.auth
    )
    args = ["export", str(tmp_path / "ds"), "--data-dir", str(service.data_dir)]
    if service.backend != "sqlite":
        args += ["--database-url", service.storage.db.url]
    result = CliRunner().invoke(service_cli, args)
    assert result.exit_code == 0, result.output
    assert "exported 1 reviewed images with 1 defects" in result.output
    assert (tmp_path / "ds" / "trainval.txt").is_file()


def test_served_line_runs_demo_and_hot_folder_and_stops_gracefully(tmp_path: Path) -> None:
    """`aoi serve` composition: app + pipeline (inbox hot folder + demo feeder) with the fake inspector."""
    from aoi.api.line import LineOptions, build_line

    storage = Storage.open(tmp_path / "data")
    inspector = FakeInspector()
    options = LineOptions(demo=True, demo_rate_hz=20.0)
    app = create_app(
        ServiceSettings(data_dir=storage.data_dir, serve_dashboard=False, open_reads=True),  # as --demo does
        inspector=inspector,
        storage=storage,
        line_factory=lambda svc: build_line(svc, options, inspector),
    )
    inbox = storage.data_dir / "inbox"
    with TestClient(app) as client:
        import cv2

        template = paint_board()
        cv2.imwrite(str(inbox / "scan1_temp.png"), template)
        cv2.imwrite(str(inbox / "scan1.png"), with_short(template))
        deadline = time.monotonic() + 15
        page: dict = {}
        while time.monotonic() < deadline:
            page = client.get("/api/v1/inspections", params={"limit": 500}).json()
            sources = {i["source"] for i in page["items"]}
            if {"demo", "hotfolder"} <= sources and page["total"] >= 3:
                break
            time.sleep(0.1)
        assert {"demo", "hotfolder"} <= {i["source"] for i in page["items"]}, page
        health = client.get("/health").json()
        assert health["pipeline"]["running"] is True
        assert 'aoi_queue_depth{name="inspect"}' in client.get("/metrics").text
        demo_item = next(i for i in page["items"] if i["source"] == "demo")
        assert demo_item["product_name"] == "demo"
        scan = next(i for i in page["items"] if i["source"] == "hotfolder")
        assert scan["image_id"] == "scan1.png" and scan["verdict"] == "fail"
    # after shutdown every accepted board is stored: the count no longer changes
    with storage.db.session() as session:
        from aoi.storage.inspections import InspectionFilter, InspectionRepository

        _, total = InspectionRepository(session).page(InspectionFilter(), 1, 0)
    time.sleep(0.3)
    with storage.db.session() as session:
        _, total_later = InspectionRepository(session).page(InspectionFilter(), 1, 0)
    assert total == total_later >= 3
    assert (inbox / "done" / "scan1.png").exists()
    storage.close()
