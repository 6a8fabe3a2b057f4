"""Operator review of defects and the line statistics built on it."""

from __future__ import annotations

from tests.support.service import Service, paint_board, with_short


def _three_defect_board(service: Service, product_id: str) -> dict:
    template = paint_board()
    test = with_short(template, (300, 300, 316, 312))
    test[500:520, 40:60] = 255
    test[100:110, 560:580] = 255
    return service.inspect(test, product_id)


def test_review_confirm_false_call_reclassify(service: Service) -> None:
    product = service.add_product()
    body = _three_defect_board(service, product["id"])
    a, b, c = (d["id"] for d in body["defects"])
    post = service.client.post
    r = post(f"/api/v1/defects/{a}/review", json={"decision": "confirm"}, headers=service.auth)
    assert r.status_code == 200, r.text
    review = r.json()["defect"]["review"]
    assert review["status"] == "confirmed" and review["reviewed_by"] == "tester" and review["type"] is None
    assert r.json()["inspection_id"] == body["id"]
    r = post(f"/api/v1/defects/{b}/review", json={"decision": "false_call"}, headers=service.auth)
    assert r.json()["defect"]["review"]["reviewed_by"] == "tester"  # the key's name (tests/api/test_api_keys.py)
    r = post(f"/api/v1/defects/{c}/review", json={"decision": "reclassify", "type": "pinhole"}, headers=service.auth)
    assert r.json()["defect"]["review"] == {
        **r.json()["defect"]["review"],
        "status": "reclassified",
        "type": "pin-hole",
    }
    stored = service.client.get(f"/api/v1/inspections/{body['id']}").json()
    statuses = {d["id"]: d["review"]["status"] for d in stored["defects"]}
    assert statuses == {a: "confirmed", b: "false_call", c: "reclassified"}
    assert stored["defects"][0]["review"]["reviewed_at"]


def test_bad_reviews(service: Service) -> None:
    product = service.add_product()
    defect_id = _three_defect_board(service, product["id"])["defects"][0]["id"]
    url = f"/api/v1/defects/{defect_id}/review"
    post = service.client.post
    cases = [
        ({"decision": "reclassify"}, 422, "needs the new defect type"),
        ({"decision": "confirm", "type": "open"}, 422, "only allowed with 'reclassify'"),
        ({"decision": "reclassify", "type": "warp"}, 422, "unknown defect type"),
        ({"decision": "maybe"}, 422, "decision"),
        ({"decision": "confirm", "extra": 1}, 422, "extra"),
    ]
    for body, status, words in cases:
        r = post(url, json=body, headers=service.auth)
        assert r.status_code == status, r.text
        assert words in r.json()["detail"], r.json()
    r = post(url, content=b'{"decision": ', headers={**service.auth, "Content-Type": "application/json"})
    assert r.status_code == 422 and "malformed json" in r.json()["detail"].lower()
    r = post("/api/v1/defects/nope/review", json={"decision": "confirm"}, headers=service.auth)
    assert r.status_code == 404 and "no defect" in r.json()["detail"]
    for headers in ({}, {"Authorization": "Bearer nope"}):
        r = post(url, json={"decision": "confirm"}, headers=headers)
        assert r.status_code == 401
    stored = service.client.get("/api/v1/inspections").json()["items"][0]
    assert all(d["review"] is None for d in stored["defects"])


def test_stats_yield_pareto_hours_products_reviews(service: Service) -> None:
    a = service.add_product("a")
    b = service.add_product("b")
    template = paint_board()
    first = _three_defect_board(service, a["id"])
    service.inspect(with_short(template), a["id"])
    service.inspect(template, a["id"])
    service.inspect(template, b["id"])
    d1, d2, d3 = (d["id"] for d in first["defects"])
    post = service.client.post
    post(f"/api/v1/defects/{d1}/review", json={"decision": "false_call"}, headers=service.auth)
    post(f"/api/v1/defects/{d2}/review", json={"decision": "reclassify", "type": "spur"}, headers=service.auth)
    post(f"/api/v1/defects/{d3}/review", json={"decision": "confirm"}, headers=service.auth)

    stats = service.client.get("/api/v1/stats").json()
    assert stats["inspections"] == {"total": 4, "passed": 2, "failed": 2, "yield": 0.5}
    assert stats["defects_by_type"] == {"short": 2, "spur": 1}  # 4 reported, 1 false call, 1 reclassified
    assert stats["reviews"] == {
        "defects": 4,
        "reviewed": 3,
        "pending": 1,
        "confirmed": 1,
        "false_calls": 1,
        "reclassified": 1,
    }
    assert sum(h["total"] for h in stats["per_hour"]) == 4
    assert stats["per_hour"][0]["hour"].endswith(("Z", "+00:00"))
    per_product = {p["product_name"]: p for p in stats["per_product"]}
    assert per_product["a"]["total"] == 3 and per_product["a"]["yield"] == round(1 / 3, 6)
    assert per_product["b"] == {**per_product["b"], "total": 1, "passed": 1, "yield": 1.0}

    only_b = service.client.get("/api/v1/stats", params={"product": "b"}).json()
    assert only_b["inspections"]["total"] == 1 and only_b["defects_by_type"] == {}
    empty = service.client.get("/api/v1/stats", params={"until": "2000-01-01T00:00:00"}).json()
    assert empty["inspections"] == {"total": 0, "passed": 0, "failed": 0, "yield": None}
    assert service.client.get("/api/v1/stats", params={"product": "zzz"}).status_code == 404
