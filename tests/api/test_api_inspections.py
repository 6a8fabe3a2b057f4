"""Inspection upload, listing, filters, overlay, and the bad inputs of the upload route."""

from __future__ import annotations

import time
import zlib

import cv2
import numpy as np
from fastapi.testclient import TestClient
from tests.support.image_bombs import BOMB_WH, BOMBS
from tests.support.service import Service, paint_board, png, with_short

from aoi.detection.overlay import OVERLAY_MARGIN_TOP_PX


def test_upload_with_product_returns_the_inspection(service: Service) -> None:
    product = service.add_product()
    template = paint_board()
    body = service.inspect(with_short(template), product["id"], name="panel-7.png")
    assert body["product"] == product["id"]
    assert body["product_name"] == "board-a"
    assert body["image_id"] == "panel-7"
    assert body["verdict"] == "fail"
    assert body["model_version"] == "fake-1"
    assert set(body["timings_ms"]) >= {"register", "candidates", "classify", "total"}
    [defect] = body["defects"]
    assert defect["type"] == "short"
    assert defect["box_px"] == [300.0, 300.0, 316.0, 312.0]
    assert defect["box_mm"] == [15.0, 15.0, 15.8, 15.6]  # product calibration: 20 px/mm
    assert len(defect["id"]) == 32 and defect["review"] is None
    fetched = service.client.get(f"/api/v1/inspections/{body['id']}").json()
    assert fetched["defects"] == body["defects"]
    assert fetched["verdict"] == "fail"


def test_clean_board_passes(service: Service) -> None:
    product = service.add_product()
    body = service.inspect(paint_board(), product["id"])
    assert body["verdict"] == "pass" and body["defects"] == []


def test_upload_with_template_file_and_no_product(service: Service) -> None:
    template = paint_board(seed=3)
    r = service.client.post(
        "/api/v1/inspections",
        data={"px_per_mm": "10"},
        files={"image": ("x.png", png(with_short(template)), "image/png"), "template": ("t.png", png(template))},
        headers=service.auth,
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["product"] is None
    assert body["defects"][0]["box_mm"] == [30.0, 30.0, 31.6, 31.2]
    # the uploaded template is kept with the inspection (the learning-loop export needs it)
    assert len(service.stored_files()) == 2


def test_product_rules_decide_the_verdict(service: Service) -> None:
    rules = '{"per_type": {"short": {"max_count": 1, "min_size_um": 0}}}'
    product = service.add_product(rules=rules)
    assert product["rules"]["per_type"]["short"] == {"max_count": 1, "min_size_um": 0.0}
    body = service.inspect(with_short(paint_board()), product["id"])
    assert len(body["defects"]) == 1 and body["verdict"] == "pass"


def test_overlay_png_is_rendered_from_the_stored_image(service: Service) -> None:
    product = service.add_product()
    body = service.inspect(with_short(paint_board()), product["id"])
    r = service.client.get(body["overlay_url"])
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    overlay = cv2.imdecode(np.frombuffer(r.content, np.uint8), cv2.IMREAD_COLOR)
    top = OVERLAY_MARGIN_TOP_PX  # the banner's margin above the board
    assert overlay.shape == (640 + top, 640, 3) and r.headers["x-overlay-margin-top"] == str(top)
    # the defect's box is drawn in colour just outside it, where the grey image has none
    ring = overlay[top + 296 : top + 300, 296:318].astype(int)
    assert (np.abs(ring[..., 2] - ring[..., 1]) > 50).any()
    assert service.client.get("/api/v1/inspections/nope/overlay.png").status_code == 404


def test_list_filters_and_pagination(service: Service) -> None:
    a = service.add_product("a")
    b = service.add_product("b")
    template = paint_board()
    for _ in range(3):
        service.inspect(with_short(template), a["id"])
    for _ in range(2):
        service.inspect(template, b["id"])
    get = service.client.get
    page = get("/api/v1/inspections", params={"limit": 2, "offset": 0}).json()
    assert page["total"] == 5 and len(page["items"]) == 2 and page["limit"] == 2
    rest = get("/api/v1/inspections", params={"limit": 10, "offset": 2}).json()
    ids = {i["id"] for i in page["items"]} | {i["id"] for i in rest["items"]}
    assert len(ids) == 5
    assert get("/api/v1/inspections", params={"product": a["id"]}).json()["total"] == 3
    assert get("/api/v1/inspections", params={"product": "b"}).json()["total"] == 2  # by name too
    assert get("/api/v1/inspections", params={"verdict": "pass"}).json()["total"] == 2
    assert get("/api/v1/inspections", params={"has_defects": "true"}).json()["total"] == 3
    assert get("/api/v1/inspections", params={"has_defects": "false"}).json()["total"] == 2
    assert get("/api/v1/inspections", params={"since": "2000-01-01T00:00:00Z"}).json()["total"] == 5
    assert get("/api/v1/inspections", params={"until": "2000-01-01T00:00:00Z"}).json()["total"] == 0
    assert get("/api/v1/inspections", params={"since": "2999-01-01T00:00:00+02:00"}).json()["total"] == 0
    assert get("/api/v1/inspections", params={"product": "missing"}).status_code == 404
    assert get("/api/v1/inspections", params={"limit": 0}).status_code == 422
    assert get("/api/v1/inspections/unknown").status_code == 404


# --- bad input: a clear 4xx, nothing written, the server keeps serving ------------------------------


def _post_inspection(service: Service, files: dict, data: dict | None = None, headers: dict | None = None):
    return service.client.post(
        "/api/v1/inspections", data=data or {}, files=files, headers=service.auth if headers is None else headers
    )


def _assert_refused(service: Service, response, status: int, words: str, before: dict[str, int]) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert words in body["detail"].lower(), body
    assert body["error"]
    assert service.counts() == before
    assert service.client.get("/health").status_code == 200


def test_bad_uploads_are_refused_and_nothing_is_written(service: Service) -> None:
    product = service.add_product()
    pid = product["id"]
    template = paint_board()
    good = png(with_short(template))
    before = service.counts()
    files_before = service.stored_files()

    r = _post_inspection(service, {"image": ("a.txt", b"hello, not an image", "text/plain")}, {"product": pid})
    _assert_refused(service, r, 415, "not an image", before)

    r = _post_inspection(service, {"image": ("t.png", good[: len(good) // 3], "image/png")}, {"product": pid})
    _assert_refused(service, r, 422, "not a decodable image", before)

    r = _post_inspection(service, {"image": ("e.png", b"", "image/png")}, {"product": pid})
    _assert_refused(service, r, 422, "empty", before)

    r = _post_inspection(service, {"image": ("b.png", _png_bomb(), "image/png")}, {"product": pid})
    _assert_refused(service, r, 422, "exceeds", before)

    r = _post_inspection(service, {"image": ("x.png", good, "image/png")}, {"product": "no-such-product"})
    _assert_refused(service, r, 404, "no product", before)

    small = png(paint_board(320))
    r = _post_inspection(service, {"image": ("s.png", small, "image/png")}, {"product": pid})
    _assert_refused(service, r, 422, "template is 640x640 px but the image is 320x320", before)

    r = _post_inspection(service, {"image": ("s.png", small, "image/png"), "template": ("t.png", png(template))})
    _assert_refused(service, r, 422, "template is 640x640", before)

    r = _post_inspection(service, {"image": ("x.png", good, "image/png")})
    _assert_refused(service, r, 422, "give either", before)

    r = _post_inspection(
        service, {"image": ("x.png", good, "image/png"), "template": ("t.png", png(template))}, {"product": pid}
    )
    _assert_refused(service, r, 422, "not both", before)

    r = _post_inspection(service, {}, {"product": pid})
    _assert_refused(service, r, 422, "image", before)

    r = _post_inspection(service, {"image": ("x.png", good, "image/png")}, {"product": pid, "px_per_mm": "-3"})
    _assert_refused(service, r, 422, "px_per_mm", before)

    assert service.stored_files() == files_before
    assert service.inspector.calls == 0
    # and the server still inspects a good board afterwards
    assert service.inspect(with_short(template), pid)["verdict"] == "fail"


def test_oversized_upload_is_413_before_anything_runs(service: Service) -> None:
    product = service.add_product()
    before = service.counts()
    noise = np.random.default_rng(1).integers(0, 255, (1600, 1600), dtype=np.uint8)
    big = png(noise)  # incompressible: > the 2 MB limit of the test app
    assert len(big) > 2_000_000
    r = _post_inspection(service, {"image": ("big.png", big, "image/png")}, {"product": product["id"]})
    _assert_refused(service, r, 413, "upload limit", before)
    assert service.inspector.calls == 0


def test_missing_or_wrong_key_is_401_and_nothing_is_written(service: Service) -> None:
    product = service.add_product()
    before = service.counts()
    good = png(with_short(paint_board()))
    for headers in (
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": service.key},
        {"Authorization": "Bearer "},
    ):
        r = _post_inspection(service, {"image": ("x.png", good, "image/png")}, {"product": product["id"]}, headers)
        _assert_refused(service, r, 401, "key", before)
        assert r.headers["www-authenticate"] == "Bearer"
        r = service.client.post(
            "/api/v1/products",
            data={"name": "other", "px_per_mm": "20"},
            files={"template": ("t.png", png(paint_board()))},
            headers=headers,
        )
        _assert_refused(service, r, 401, "key", before)
    assert service.inspector.calls == 0


def test_storage_failure_rolls_back_and_removes_written_files(service: Service, monkeypatch) -> None:
    product = service.add_product()
    before = service.counts()
    files_before = service.stored_files()
    from aoi.storage.inspections import InspectionRepository

    def broken_add(self, row) -> None:
        self.session.add(row)
        self.session.flush()
        raise RuntimeError("disk full while committing")

    monkeypatch.setattr(InspectionRepository, "add", broken_add)
    client = TestClient(service.client.app, raise_server_exceptions=False)  # answer 500 like a real server
    r = client.post(
        "/api/v1/inspections",
        data={"product": product["id"]},
        files={"image": ("x.png", png(with_short(paint_board())), "image/png")},
        headers=service.auth,
    )
    assert r.status_code == 500 and "internal error" in r.json()["detail"]
    assert service.counts() == before
    assert service.stored_files() == files_before
    monkeypatch.undo()
    assert service.inspect(paint_board(), product["id"])["verdict"] == "pass"


def _png_bomb() -> bytes:
    """A PNG whose header declares 100k x 100k pixels (a decompression bomb) with a tiny body."""
    import struct

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    header = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 1000))
        + chunk(b"IEND", b"")
    )


def test_bombs_of_every_format_are_refused_with_a_4xx(service: Service) -> None:
    """Tiny files declaring 30000x30000 pixels: refused from the header (422), before any decoder runs."""
    product = service.add_product()
    before = service.counts()
    for kind, make in sorted(BOMBS.items()):
        started = time.perf_counter()
        r = _post_inspection(
            service, {"image": (f"bomb-{kind}", make(*BOMB_WH), "image/octet-stream")}, {"product": product["id"]}
        )
        assert time.perf_counter() - started < 2.0, kind
        _assert_refused(service, r, 422, "exceeds", before)
        r = service.client.post(
            "/api/v1/products",
            data={"name": f"bomb-{kind}", "px_per_mm": "20"},
            files={"template": ("t", make(*BOMB_WH))},
            headers=service.auth,
        )
        _assert_refused(service, r, 422, "exceeds", before)
    r = _post_inspection(service, {"image": ("x.gif", b"GIF89a" + bytes(64), "image/gif")}, {"product": product["id"]})
    _assert_refused(service, r, 415, "not an image", before)
    assert service.inspector.calls == 0


def test_concurrent_uploads_are_all_stored_once(service: Service) -> None:
    """Routes run in the threadpool; SQLite (WAL, busy timeout) and PostgreSQL take parallel writers."""
    from concurrent.futures import ThreadPoolExecutor

    product = service.add_product()
    board = png(with_short(paint_board()))

    def upload(i: int) -> tuple[int, str]:
        r = service.client.post(
            "/api/v1/inspections",
            data={"product": product["id"], "image_id": f"c{i}"},
            files={"image": ("c.png", board, "image/png")},
            headers=service.auth,
        )
        return r.status_code, r.json().get("id", r.text)

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(upload, range(32)))
    assert [status for status, _ in answers] == [201] * 32
    assert len({inspection_id for _, inspection_id in answers}) == 32
    page = service.client.get("/api/v1/inspections", params={"limit": 100}).json()
    assert page["total"] == 32
    assert sorted(i["image_id"] for i in page["items"]) == sorted(f"c{i}" for i in range(32))
    assert service.counts()["defects"] == 32
