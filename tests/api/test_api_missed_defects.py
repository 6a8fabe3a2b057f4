"""Defects the machine missed (escapes), added by an operator: POST /inspections/{id}/defects, what it stores,
what it refuses, how it meets the review queue and the undo, and the export that trains on it."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from tests.support.service import Service, paint_board, with_short

from aoi.data.deeppcb import read_deeppcb
from aoi.schema import DefectType
from aoi.storage.export import export_reviewed
from aoi.storage.keys import Scope, create_api_key
from aoi.storage.models import DefectRow


def _add(service: Service, inspection_id: str, body: object, headers: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return service.client.post(
        f"/api/v1/inspections/{inspection_id}/defects",
        content=json.dumps(body),
        headers={"Content-Type": "application/json", **(service.auth if headers is None else headers)},
    )


def _passing_board(service: Service, **product_form: str) -> dict:
    product = service.add_product(**product_form)
    inspection = service.inspect(paint_board(), product["id"], name="clean.png")
    assert inspection["verdict"] == "pass" and inspection["defects"] == []
    return inspection


def test_an_added_defect_is_stored_confirmed_and_fails_a_passing_board(service: Service) -> None:
    inspection = _passing_board(service)
    r = _add(service, inspection["id"], {"type": "Mousebite", "box_px": [100, 120, 130, 140]})
    assert r.status_code == 201, r.text
    body = r.json()
    defect = body["defect"]
    assert body["inspection_id"] == inspection["id"] and body["verdict"] == "fail"
    assert defect["origin"] == "operator" and defect["type"] == "mousebite" and defect["confidence"] == 1.0
    assert defect["box_px"] == [100.0, 120.0, 130.0, 140.0]
    assert defect["box_mm"] == [5.0, 6.0, 6.5, 7.0]  # the product's 20 px/mm
    assert defect["review"]["status"] == "confirmed" and defect["review"]["reviewed_by"] == "tester"

    again = service.client.get(f"/api/v1/inspections/{inspection['id']}").json()
    assert again["verdict"] == "fail" and [d["id"] for d in again["defects"]] == [defect["id"]]
    with_defects = service.client.get("/api/v1/inspections", params={"has_defects": "true"}).json()
    assert [i["id"] for i in with_defects["items"]] == [inspection["id"]]  # defect_count follows
    failed = service.client.get("/api/v1/inspections", params={"verdict": "fail"}).json()
    assert failed["total"] == 1
    # Already confirmed: not awaiting review, never handed out by the queue.
    assert service.client.get("/api/v1/review/pending").json() == {"pending": 0, "leased": 0}
    assert service.client.get("/api/v1/review/next").json()["item"] is None


def test_an_added_defect_goes_after_the_engines_and_keeps_them(service: Service) -> None:
    product = service.add_product()
    found = service.inspect(with_short(paint_board()), product["id"])
    assert found["verdict"] == "fail" and len(found["defects"]) == 1
    r = _add(service, found["id"], {"type": "spur", "box_px": [10.5, 20.25, 30, 40]})
    assert r.status_code == 201, r.text
    again = service.client.get(f"/api/v1/inspections/{found['id']}").json()
    assert [d["origin"] for d in again["defects"]] == ["engine", "operator"]
    assert again["defects"][0] == found["defects"][0] | {"origin": "engine"}
    with service.storage.db.session() as session:
        positions = {row.id: row.position for row in session.query(DefectRow)}
    assert positions == {found["defects"][0]["id"]: 0, r.json()["defect"]["id"]: 1}
    assert service.client.get("/api/v1/review/pending").json()["pending"] == 1  # the engine's, still pending


def test_the_products_rules_decide_whether_an_added_defect_fails_the_board(service: Service) -> None:
    """Defects under 2 mm are tolerated: a 0.5 mm escape leaves the board passed, a 2.5 mm one fails it."""
    rules = {"default": {"max_count": 0, "min_size_um": 2000}}
    inspection = _passing_board(service, rules=json.dumps(rules))
    small = _add(service, inspection["id"], {"type": "short", "box_px": [100, 100, 110, 110]})
    assert small.status_code == 201 and small.json()["verdict"] == "pass"
    large = _add(service, inspection["id"], {"type": "short", "box_px": [200, 200, 250, 210]})
    assert large.status_code == 201 and large.json()["verdict"] == "fail"


@pytest.mark.parametrize(
    ("body", "error", "says"),
    [
        ({"type": "crack", "box_px": [1, 1, 5, 5]}, "invalid_type", "unknown defect type 'crack'"),
        ({"type": "short", "box_px": [600, 600, 650, 620]}, "invalid_box", "not inside the 640x640 px image"),
        ({"type": "short", "box_px": [-1, 0, 5, 5]}, "invalid_box", "not inside"),
        ({"type": "short", "box_px": [50, 50, 20, 60]}, "invalid_box", "x1 < x2 and y1 < y2"),
        ({"type": "short", "box_px": [50, 50, 50, 60]}, "invalid_box", "x1 < x2 and y1 < y2"),
        ({"type": "short", "box_px": [math.nan, 1, 5, 5]}, "invalid_box", "finite"),
        ({"type": "short", "box_px": [1, 1, math.inf, 5]}, "invalid_box", "finite"),
        ({"type": "short", "box_px": [1, 1, 5]}, "invalid_request", "box_px"),
        ({"type": "short"}, "invalid_request", "box_px"),
        ({"type": "short", "box_px": [1, 1, 5, 5], "confidence": 0.2}, "invalid_request", "confidence"),
    ],
)
def test_a_bad_defect_is_refused_with_the_error_body(service: Service, body: dict, error: str, says: str) -> None:
    inspection = _passing_board(service)
    r = _add(service, inspection["id"], body)
    assert r.status_code == 422, r.text
    assert r.json()["error"] == error and says in r.json()["detail"]
    again = service.client.get(f"/api/v1/inspections/{inspection['id']}").json()
    assert again["defects"] == [] and again["verdict"] == "pass"


def test_unknown_inspection_and_keys_that_may_not_add(service: Service) -> None:
    inspection = _passing_board(service)
    body = {"type": "short", "box_px": [1, 1, 5, 5]}
    assert _add(service, "0" * 32, body).status_code == 404
    assert _add(service, "not-an-id", body).json()["error"] == "not_found"
    assert _add(service, inspection["id"], body, headers={}).status_code == 401
    assert _add(service, inspection["id"], body, headers={"Authorization": "Bearer nope"}).status_code == 401
    with service.storage.db.transaction() as session:
        reader = create_api_key(session, "screen", {Scope.READ, Scope.INSPECT})
    refused = _add(service, inspection["id"], body, headers={"Authorization": f"Bearer {reader}"})
    assert refused.status_code == 403 and "'review' scope" in refused.json()["detail"]
    assert service.client.get(f"/api/v1/inspections/{inspection['id']}").json()["defects"] == []


def test_an_added_defect_has_no_review_to_undo_but_can_be_withdrawn(service: Service) -> None:
    inspection = _passing_board(service)
    defect_id = _add(service, inspection["id"], {"type": "open", "box_px": [1, 1, 9, 9]}).json()["defect"]["id"]
    undo = service.client.delete(f"/api/v1/defects/{defect_id}/review", headers=service.auth)
    assert undo.status_code == 409 and undo.json()["error"] == "operator_defect"
    assert service.client.get("/api/v1/review/pending").json()["pending"] == 0
    r = service.client.post(
        f"/api/v1/defects/{defect_id}/review", json={"decision": "false_call"}, headers=service.auth
    )
    assert r.status_code == 200 and r.json()["defect"]["review"]["status"] == "false_call"
    assert r.json()["defect"]["origin"] == "operator"


def test_a_retry_with_the_same_idempotency_key_adds_once(service: Service) -> None:
    inspection = _passing_board(service)
    body = {"type": "copper", "box_px": [300, 300, 320, 310]}
    first = _add(service, inspection["id"], body, headers={**service.auth, "Idempotency-Key": "add-1"})
    retry = _add(service, inspection["id"], body, headers={**service.auth, "Idempotency-Key": "add-1"})
    assert (first.status_code, retry.status_code) == (201, 200)
    assert retry.headers["Idempotent-Replayed"] == "true" and retry.json() == first.json()
    other = _add(
        service, inspection["id"], {**body, "type": "spur"}, headers={**service.auth, "Idempotency-Key": "add-1"}
    )
    assert other.status_code == 409 and other.json()["error"] == "idempotency_key_reused"
    assert len(service.client.get(f"/api/v1/inspections/{inspection['id']}").json()["defects"]) == 1


def test_export_labels_an_added_defect_as_ground_truth(service: Service, tmp_path: Path) -> None:
    """A board the machine passed, with one defect an operator added: exported (every defect decided) with
    that defect as its label, like a confirmed one."""
    inspection = _passing_board(service)
    assert _add(service, inspection["id"], {"type": "pin-hole", "box_px": [200, 210, 215.6, 220]}).status_code == 201
    report = export_reviewed(service.storage, tmp_path / "out", "deeppcb")
    assert (report.pairs, report.boxes, report.skipped_partially_reviewed) == (1, 1, 0)
    [pair] = read_deeppcb(tmp_path / "out")
    assert pair.image_id == inspection["id"]
    assert [(b.type, tuple(b.box_px)) for b in pair.labels] == [(DefectType.PIN_HOLE, (200, 210, 216, 220))]
