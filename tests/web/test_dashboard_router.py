"""The dashboard's files are served by the API process, safely, with types browsers accept for ES modules."""

from __future__ import annotations

import re

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from aoi.detection.overlay import TYPE_COLOURS_BGR
from aoi.schema import DefectType
from aoi.web import STATIC_DIR, router


@pytest.fixture
def client() -> TestClient:
    app = FastAPI()
    app.include_router(router)
    return TestClient(app)


def test_index_is_served_at_the_root(client: TestClient) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="/static/app.js">' in response.text


def test_modules_are_served_as_javascript(client: TestClient) -> None:
    response = client.get("/static/app.js")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/javascript")
    assert client.get("/static/style.css").headers["content-type"].startswith("text/css")


@pytest.mark.parametrize("name", ["missing.js", "..%2Frouter.py", "router.py", ".hidden.js", "..%5Capp.js"])
def test_unknown_or_unsafe_names_are_404(client: TestClient, name: str) -> None:
    assert client.get(f"/static/{name}").status_code == 404


def test_every_imported_module_exists_in_the_flat_static_folder() -> None:
    """Package data ships only `web/static/*`, so every import must name a file directly in static/."""
    imports = set()
    for script in STATIC_DIR.glob("*.js"):
        imports.update(re.findall(r'from "\./([^"]+)"', script.read_text(encoding="utf-8")))
    assert imports, "the modules import each other; finding none means the pattern broke"
    missing = sorted(name for name in imports if not (STATIC_DIR / name).is_file())
    assert missing == []
    assert [p for p in STATIC_DIR.rglob("*") if p.is_dir()] == []


def test_the_dashboard_reads_the_defect_types_from_the_api_and_keeps_no_copy() -> None:
    source = (STATIC_DIR / "defect_types.js").read_text(encoding="utf-8")
    assert 'fetch("/api/v1/defect-types"' in source
    assert not re.search(r'value: "[a-z-]+"', source)  # no hard-coded type list left to drift


def test_the_catalogue_endpoint_gives_colours_of_the_overlay_keys_and_korean_names() -> None:
    """One catalogue (aoi.schema.DEFECT_CATALOGUE): the API serves it, the overlay draws from it."""
    from aoi.api.routers import catalogue

    app = FastAPI()
    app.include_router(catalogue.router, prefix="/api/v1")
    rows = TestClient(app).get("/api/v1/defect-types").json()
    assert [r["value"] for r in rows] == [t.value for t in DefectType]  # keys 1-7 follow the DeepPCB codes
    assert [r["hotkey"] for r in rows] == [str(r["deeppcb_code"]) for r in rows] == list("1234567")
    for row in rows:
        b, g, r = TYPE_COLOURS_BGR[DefectType(row["value"])]
        assert row["color"] == f"#{r:02x}{g:02x}{b:02x}"
    assert {row["value"]: row["labels"]["ko"] for row in rows} == {
        "open": "단선",
        "short": "단락",
        "mousebite": "마우스바이트",
        "spur": "돌기",
        "copper": "잔동",
        "pin-hole": "핀홀",
        "scratch": "스크래치",
    }
    assert all(row["labels"]["en"] for row in rows)
