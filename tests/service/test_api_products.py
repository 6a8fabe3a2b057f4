"""Products (recipes): registration, listing and their bad inputs."""

from __future__ import annotations

from tests.service.conftest import Service, paint_board, png


def _post_product(service: Service, data: dict, template: bytes | None = None, headers: dict | None = None):
    files = {"template": ("t.png", template if template is not None else png(paint_board()), "image/png")}
    return service.client.post(
        "/api/v1/products", data=data, files=files, headers=service.auth if headers is None else headers
    )


def test_register_and_list_products(service: Service) -> None:
    rules = {
        "per_type": {"open": {"max_count": 0, "min_size_um": 50.0}},
        "default": {"max_count": 2, "min_size_um": 0},
        "min_confidence": 0.5,
    }
    import json

    r = _post_product(service, {"name": "ipc-4", "px_per_mm": "25.5", "rules": json.dumps(rules)})
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["name"] == "ipc-4" and created["px_per_mm"] == 25.5
    assert created["template_size_wh"] == [640, 640]
    assert created["rules"] == {
        "per_type": {"open": {"max_count": 0, "min_size_um": 50.0}},
        "default": {"max_count": 2, "min_size_um": 0.0},
        "min_confidence": 0.5,
    }
    listed = service.client.get("/api/v1/products").json()
    assert listed["total"] == 1 and listed["items"][0] == created
    assert service.client.get(f"/api/v1/products/{created['id']}").json() == created
    assert service.client.get("/api/v1/products/ipc-4").json()["id"] == created["id"]
    assert service.client.get("/api/v1/products/none").status_code == 404


def test_bad_products_are_refused_without_a_trace(service: Service) -> None:
    service.add_product("taken")
    before = service.counts()
    files_before = service.stored_files()
    cases = [
        ({"name": "x", "px_per_mm": "20", "rules": "{not json"}, None, 422, "not valid json"),
        ({"name": "x", "px_per_mm": "20", "rules": "[1, 2]"}, None, 422, "json object"),
        ({"name": "x", "px_per_mm": "20", "rules": '{"per_type": {"warp": {}}}'}, None, 422, "unknown defect type"),
        ({"name": "x", "px_per_mm": "20", "rules": '{"default": {"max_count": -1}}'}, None, 422, "max_count"),
        ({"name": "x", "px_per_mm": "0"}, None, 422, "px_per_mm"),
        ({"name": "x", "px_per_mm": "abc"}, None, 422, "px_per_mm"),
        ({"name": "  ", "px_per_mm": "20"}, None, 422, "name"),
        ({"px_per_mm": "20"}, None, 422, "name"),
        ({"name": "taken", "px_per_mm": "20"}, None, 409, "already exists"),
        ({"name": "x", "px_per_mm": "20"}, b"GIF89a not supported", 415, "not an image"),
        ({"name": "x", "px_per_mm": "20"}, png(paint_board())[:200], 422, "decodable"),
    ]
    for data, template, status, words in cases:
        r = _post_product(service, data, template)
        assert r.status_code == status, (data, r.text)
        assert words in r.json()["detail"].lower(), (data, r.json())
    assert service.counts() == before
    assert service.stored_files() == files_before
