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


def test_dashboard_type_colours_match_the_engine_overlay() -> None:
    source = (STATIC_DIR / "defect_types.js").read_text(encoding="utf-8")
    colours = dict(re.findall(r'value: "([a-z-]+)", color: "#([0-9a-f]{6})"', source))
    assert list(colours) == [t.value for t in DefectType]  # keys 1-7 follow the DeepPCB codes
    for defect_type, (b, g, r) in TYPE_COLOURS_BGR.items():
        assert colours[defect_type.value] == f"{r:02x}{g:02x}{b:02x}"


def test_every_defect_type_has_an_english_and_a_korean_name() -> None:
    """The names live beside the colours (one catalogue), in the terms a Korean PCB engineer uses."""
    source = (STATIC_DIR / "defect_types.js").read_text(encoding="utf-8")
    names = {
        value: (en, ko) for value, en, ko in re.findall(r'value: "([a-z-]+)".*en: "([^"]+)", ko: "([^"]+)"', source)
    }
    assert list(names) == [t.value for t in DefectType]
    assert {value: ko for value, (_en, ko) in names.items()} == {
        "open": "단선",
        "short": "단락",
        "mousebite": "마우스바이트",
        "spur": "돌기",
        "copper": "잔동",
        "pin-hole": "핀홀",
        "scratch": "스크래치",
    }
