"""Verification crops of a defect (captured | golden | difference, unannotated and registered), the raw
tested image, and the overlay's banner margin."""

from __future__ import annotations

import cv2
import numpy as np
from tests.support.service import Service, paint_board, with_short

from aoi.api.services import ProductService
from aoi.detection.overlay import OVERLAY_MARGIN_TOP_PX
from aoi.schema import Defect, DefectType, InspectionResult, Verdict


def _decode(content: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(content, np.uint8), cv2.IMREAD_UNCHANGED)
    assert image is not None
    return image


def _window(response_headers: dict[str, str]) -> tuple[int, ...]:
    return tuple(int(v) for v in response_headers["x-crop-window"].split(","))


def test_crops_of_an_uploaded_board_line_up_and_are_unannotated(service: Service) -> None:
    template = paint_board()
    product = service.add_product(template=template)
    test = with_short(template, (300, 300, 316, 312))
    body = service.inspect(test, product["id"])
    defect_id = body["defects"][0]["id"]
    item = service.client.get("/api/v1/review/next").json()["item"]
    crops = item["crops"]
    x1, y1, x2, y2 = crops["window_px"]
    assert crops["margin_px"] == 96 and (x1, y1, x2, y2) == (204, 204, 412, 408)
    assert crops["template_note"] is None

    sides = {}
    for side in ("test", "template", "difference"):
        r = service.client.get(crops[f"{side}_url"])
        assert r.status_code == 200 and r.headers["content-type"] == "image/png", side
        assert _window(r.headers) == (x1, y1, x2, y2)
        sides[side] = _decode(r.content)
        assert sides[side].shape == (y2 - y1, x2 - x1), side  # grey: nothing drawn in colour on it
    np.testing.assert_array_equal(sides["test"], test[y1:y2, x1:x2])  # the captured pixels, as stored
    np.testing.assert_array_equal(sides["template"], template[y1:y2, x1:x2])
    difference = sides["difference"]
    changed = np.argwhere(difference > 0)
    assert changed.min(axis=0).tolist() == [300 - y1, 300 - x1]  # exactly the painted short
    assert changed.max(axis=0).tolist() == [311 - y1, 315 - x1]

    small = service.client.get(f"/api/v1/defects/{defect_id}/crops", params={"side": "test", "margin_px": 4})
    assert _window(small.headers) == (296, 296, 320, 316)
    for params, status in (({"side": "nope"}, 422), ({"margin_px": 5000}, 422), ({"margin_px": -1}, 422)):
        assert service.client.get(f"/api/v1/defects/{defect_id}/crops", params=params).status_code == status
    assert service.client.get("/api/v1/defects/nope/crops").status_code == 404
    assert service.client.get(f"/api/v1/defects/{'0' * 32}/crops").status_code == 404


def test_the_template_crop_follows_the_stored_registration(service: Service) -> None:
    """A capture shifted against its template: the golden crop is brought onto the capture, so the
    difference shows the defect alone, not the shift."""
    template = paint_board(seed=3)
    product = ProductService(service.storage).get(service.add_product(template=template)["id"])
    dx, dy = 5, -3
    shifted = np.zeros_like(template)
    shifted[max(dy, 0) : 640 + min(dy, 0), max(dx, 0) : 640 + min(dx, 0)] = template[
        max(-dy, 0) : 640 + min(-dy, 0), max(-dx, 0) : 640 + min(-dx, 0)
    ]  # test(x) = template(x - d)
    test = with_short(shifted, (200, 200, 214, 210))
    result = InspectionResult(
        image_id="shifted",
        image_size_wh=(640, 640),
        defects=(Defect(DefectType.SHORT, 0.9, (200.0, 200.0, 214.0, 210.0)),),
        verdict=Verdict.FAIL,
        px_per_mm=20.0,
        model_version="m",
        registration={"dx_px": float(dx), "dy_px": float(dy), "rotation_deg": 0.0, "residual": 0.0},
    )
    stored = service.storage.recorder.record(result, test, product=product)
    defect_id = stored.result.defects[0].id
    diff = _decode(service.client.get(f"/api/v1/defects/{defect_id}/crops", params={"side": "difference"}).content)
    x1, y1 = 200 - 96, 200 - 96
    changed = np.argwhere(diff > 0)
    assert changed.min(axis=0).tolist() == [200 - y1, 200 - x1]
    assert changed.max(axis=0).tolist() == [209 - y1, 213 - x1]


def test_an_inspection_without_a_stored_template_offers_the_captured_side_only(service: Service) -> None:
    result = InspectionResult(
        image_id="demo-1",
        image_size_wh=(640, 640),
        defects=(Defect(DefectType.OPEN, 0.7, (10.0, 10.0, 20.0, 20.0)),),
        verdict=Verdict.FAIL,
        px_per_mm=20.0,
        model_version="m",
    )
    stored = service.storage.recorder.record(result, paint_board(), source="demo")  # no template kept
    defect_id = stored.result.defects[0].id
    crops = service.client.get("/api/v1/review/next").json()["item"]["crops"]
    assert crops["template_url"] is None and crops["difference_url"] is None
    assert crops["template_note"] == "no_template"
    assert crops["window_px"] == [0, 0, 116, 116]  # clipped at the board's corner
    assert service.client.get(crops["test_url"]).status_code == 200
    r = service.client.get(f"/api/v1/defects/{defect_id}/crops", params={"side": "template"})
    assert r.status_code == 404 and r.json()["error"] == "no_template"
    assert "only the captured side" in r.json()["detail"]


def test_the_raw_image_and_the_overlay_margin(service: Service) -> None:
    product = service.add_product()
    test = with_short(paint_board())
    body = service.inspect(test, product["id"])
    raw = service.client.get(f"/api/v1/inspections/{body['id']}/image.png")
    assert raw.status_code == 200 and raw.headers["content-type"] == "image/png"
    np.testing.assert_array_equal(_decode(raw.content), test)
    overlay = service.client.get(body["overlay_url"])
    assert overlay.headers["x-overlay-margin-top"] == str(OVERLAY_MARGIN_TOP_PX)
    assert _decode(overlay.content).shape == (640 + OVERLAY_MARGIN_TOP_PX, 640, 3)
    assert service.client.get("/api/v1/inspections/nope/image.png").status_code == 404
