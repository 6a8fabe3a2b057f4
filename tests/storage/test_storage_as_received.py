"""Uploads are stored as received when they are PNG or JPEG: no re-encoding, no loss, no time spent."""

from __future__ import annotations

import cv2
import numpy as np
from tests.support.service import Service, paint_board, with_short


def _encoded(image: np.ndarray, ext: str) -> bytes:
    ok, data = cv2.imencode(ext, image)
    assert ok
    return data.tobytes()


def _upload(service: Service, product: str, name: str, data: bytes, mime: str) -> dict:
    r = service.client.post(
        "/api/v1/inspections",
        data={"product": product},
        files={"image": (name, data, mime)},
        headers=service.auth,
    )
    assert r.status_code == 201, r.text
    return r.json()


def test_a_jpeg_or_png_upload_is_stored_byte_for_byte_and_served_with_its_type(service: Service) -> None:
    product = service.add_product()["id"]
    board = with_short(paint_board())
    for ext, mime in ((".jpg", "image/jpeg"), (".png", "image/png")):
        sent = _encoded(board, ext)
        inspection = _upload(service, product, f"board{ext}", sent, mime)
        stored = [p for p in service.stored_files() if p.name.startswith(inspection["id"])]
        assert [p.suffix for p in stored] == [ext] and stored[0].read_bytes() == sent
        served = service.client.get(f"/api/v1/inspections/{inspection['id']}/image.png")
        assert served.status_code == 200 and served.headers["content-type"] == mime and served.content == sent
        assert service.client.get(f"/api/v1/inspections/{inspection['id']}/overlay.png").status_code == 200


def test_other_formats_are_stored_as_lossless_png(service: Service) -> None:
    product = service.add_product()["id"]
    board = with_short(paint_board())
    inspection = _upload(service, product, "board.bmp", _encoded(board, ".bmp"), "image/bmp")
    (stored,) = [p for p in service.stored_files() if p.name.startswith(inspection["id"])]
    assert stored.suffix == ".png"
    assert np.array_equal(cv2.imread(str(stored), cv2.IMREAD_GRAYSCALE), board)


def test_the_orphan_sweep_removes_a_jpeg_no_row_refers_to(service: Service) -> None:
    product = service.add_product()["id"]
    kept = _upload(service, product, "board.jpg", _encoded(paint_board(), ".jpg"), "image/jpeg")
    day = next(p.parent for p in service.stored_files() if p.name.startswith(kept["id"]))
    orphan = day / f"{'0' * 32}_test.jpg"
    orphan.write_bytes(_encoded(paint_board(), ".jpg"))
    assert service.storage.sweep_orphans().removed == 1
    assert not orphan.exists() and any(p.name.startswith(kept["id"]) for p in service.stored_files())
