"""Products (recipes): registration, listing and their bad inputs."""

from __future__ import annotations

from tests.support.service import Service, paint_board, png


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


def test_deeply_nested_or_oversized_rules_are_422(service: Service) -> None:
    """1000 nested arrays made json.loads raise RecursionError (a 500)."""
    before = service.counts()
    deep_list = '{"per_type": ' + "[" * 1000 + "]" * 1000 + "}"
    deep_object = '{"a": ' * 1000 + "1" + "}" * 1000
    cases = [
        (deep_list, "nested 1001 levels deep; the limit is 32"),
        (deep_object, "nested 1000 levels deep; the limit is 32"),
        ('{"per_type": {}, "x": "' + "a" * 20_000 + '"}', "the limit is 16384"),
        ('{"default": {"max_count": ' + "9" * 5000 + "}}", "not valid json"),
    ]
    for rules, words in cases:
        r = _post_product(service, {"name": "deep", "px_per_mm": "20", "rules": rules})
        assert r.status_code == 422, (rules[:40], r.text)
        assert words in r.json()["detail"].lower(), r.json()
    assert service.counts() == before


def test_rule_values_out_of_range_non_finite_or_unknown_are_422(service: Service) -> None:
    before = service.counts()
    cases = [
        ('{"min_confidence": 2}', "min_confidence must be from 0 to 1"),
        ('{"min_confidence": -0.1}', "min_confidence must be from 0 to 1"),
        ('{"min_confidence": NaN}', "nan is not a number json allows"),
        ('{"default": {"min_size_um": Infinity}}', "infinity is not a number json allows"),
        ('{"default": {"min_size_um": -Infinity}}', "-infinity is not a number json allows"),
        ('{"default": {"min_size_um": 1e999}}', "min_size_um must be a finite number"),
        ('{"default": {"max_count": 1e999}}', "max_count must be an integer"),
        ('{"default": {"max_count": 2.5}}', "max_count must be an integer"),
        ('{"default": {"max_count": true}}', "max_count must be an integer"),
        ('{"default": {"max_count": "3"}}', "max_count must be an integer"),
        ('{"min_confidence": "0.5"}', "min_confidence must be a number"),
        ('{"min_conf": 0.5}', "unknown key(s) 'min_conf'"),
        ('{"per_type": {"open": {"max": 1}}}', "rules.per_type.open has unknown key(s) 'max'"),
        ('{"default": {"max_count": 1, "min_size": 3}}', "rules.default has unknown key(s) 'min_size'"),
        ('{"per_type": {"pinhole": {}, "pin-hole": {}}}', "names 'pin-hole' twice"),
        ('{"per_type": [1]}', "per_type must be an object"),
        ('{"default": [1]}', "rules.default must be an object"),
    ]
    for rules, words in cases:
        r = _post_product(service, {"name": "r", "px_per_mm": "20", "rules": rules})
        assert r.status_code == 422, (rules, r.text)
        assert words in r.json()["detail"].lower(), (rules, r.json())
    assert service.counts() == before


def test_px_per_mm_must_be_finite_and_sane(service: Service) -> None:
    before = service.counts()
    for value in ("nan", "inf", "-inf", "0.5", "100001", "1e308"):
        r = _post_product(service, {"name": "p", "px_per_mm": value})
        assert r.status_code == 422 and "px_per_mm must be a finite number from 1 to 100000" in r.json()["detail"]
    assert service.counts() == before
    assert _post_product(service, {"name": "low", "px_per_mm": "1"}).status_code == 201
    assert _post_product(service, {"name": "high", "px_per_mm": "100000"}).status_code == 201


def test_product_names_are_safe_folder_names_unique_whatever_their_case(service: Service) -> None:
    before = service.counts()
    bad = ["../../x", "a/b", "a\\b", ".", "..", ".hidden", "done", "Failed", "a\x00b", "a\nb", "a b", "x" * 65]
    bad += ["é", "0123456789abcdef0123456789abcdef"]  # not ASCII; looks like a product id
    for name in bad:
        r = _post_product(service, {"name": name, "px_per_mm": "20"})
        assert r.status_code == 422, (name, r.text)
        assert "product name" in r.json()["detail"], r.json()
    assert service.counts() == before
    assert service.stored_files() == []
    for name in ("DeepPCB", "a.b-c_d", "x" * 64, "1"):
        assert _post_product(service, {"name": name, "px_per_mm": "20"}).status_code == 201, name
    r = _post_product(service, {"name": "deeppcb", "px_per_mm": "20"})
    assert r.status_code == 409 and "'DeepPCB' already exists" in r.json()["detail"], r.text
