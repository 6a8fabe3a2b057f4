"""Inputs that used to reach the database or a conversion and come back as a 500: now a clear 4xx.

Run on SQLite and PostgreSQL: PostgreSQL refuses NUL in text, strings longer than their column and
OFFSETs over 2**63 itself, so a check missing here shows up there as a 500.
"""

from __future__ import annotations

import pytest
from tests.support.service import Service, paint_board, png, with_short


@pytest.fixture
def stored(service: Service) -> dict:
    """One product and one failing inspection of it (so listing, stats and review have rows)."""
    product = service.add_product()
    return {"product": product, "inspection": service.inspect(with_short(paint_board()), product["id"])}


def _refused(response, status: int, words: str) -> None:
    assert response.status_code == status, response.text
    assert words in response.json()["detail"], response.json()


def test_offset_and_limit_are_bounded(service: Service, stored: dict) -> None:
    get = service.client.get
    for params in ({"offset": 2**63}, {"offset": 2**64}, {"offset": 10**9 + 1}, {"limit": 2**63}, {"offset": -1}):
        _refused(get("/api/v1/inspections", params=params), 422, "invalid request")
    assert get("/api/v1/inspections", params={"offset": 10**9}).json()["items"] == []


@pytest.mark.parametrize("path", ["/api/v1/inspections", "/api/v1/stats"])
def test_times_out_of_range_once_in_utc_are_422(service: Service, stored: dict, path: str) -> None:
    get = service.client.get
    _refused(get(path, params={"since": "0001-01-01T00:00:00+14:00"}), 422, "since 0001-01-01T00:00:00+14:00 is out")
    _refused(get(path, params={"until": "9999-12-31T23:59:59-14:00"}), 422, "until 9999-12-31T23:59:59-14:00 is out")
    mixed = {"since": "2000-01-01T00:00:00", "until": "2999-01-01T00:00:00+02:00"}  # naive and aware together
    assert get(path, params=mixed).status_code == 200
    assert get(path, params={"since": "0001-01-01T14:00:00+14:00"}).status_code == 200  # just in range


def test_nul_and_control_characters_are_refused(service: Service, stored: dict) -> None:
    before = service.counts()
    board = png(with_short(paint_board()))
    pid = stored["product"]["id"]
    client, auth = service.client, service.auth

    def upload(form: dict, filename: str = "b.png"):
        return client.post("/api/v1/inspections", data=form, files={"image": (filename, board)}, headers=auth)

    _refused(upload({"product": pid, "image_id": "a\x00b"}), 422, "image_id must not contain control characters")
    _refused(upload({"product": pid, "image_id": "a\nb"}), 422, "image_id must not contain control characters")
    _refused(_raw_upload(service, pid, b"a\x00b.png", board), 422, "file name must not contain control characters")
    _refused(upload({"product": "board\x00a"}), 422, "product must not contain control characters")
    for path in ("/api/v1/inspections", "/api/v1/stats"):
        _refused(client.get(path, params={"product": "a\x00"}), 422, "product must not contain control characters")
    product = client.post(
        "/api/v1/products",
        data={"name": "x\x00y", "px_per_mm": "20"},
        files={"template": ("t.png", png(paint_board()))},
        headers=auth,
    )
    _refused(product, 422, "product name")
    review = {"decision": "confirm", "reviewer": "ann\x00"}
    defect_id = stored["inspection"]["defects"][0]["id"]
    _refused(client.post(f"/api/v1/defects/{defect_id}/review", json=review, headers=auth), 422, "reviewer must not")
    assert service.counts() == before


def _raw_upload(service: Service, product: str, filename: bytes, data: bytes):
    """A multipart body written by hand: clients percent-encode a NUL in a file name, a raw body need not."""
    boundary = b"aoi-test-boundary"
    body = b"".join(
        [
            b"--" + boundary + b'\r\nContent-Disposition: form-data; name="product"\r\n\r\n' + product.encode(),
            b"\r\n--" + boundary + b'\r\nContent-Disposition: form-data; name="image"; filename="' + filename,
            b'"\r\nContent-Type: image/png\r\n\r\n' + data + b"\r\n--" + boundary + b"--\r\n",
        ]
    )
    headers = {**service.auth, "Content-Type": "multipart/form-data; boundary=" + boundary.decode()}
    return service.client.post("/api/v1/inspections", content=body, headers=headers)


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/inspections/a%00b",
        "/api/v1/inspections/a%00b/overlay.png",
        "/api/v1/inspections/" + "f" * 600,
        "/api/v1/products/a%00b",
        "/api/v1/products/" + "p" * 600,
    ],
)
def test_ids_in_urls_that_no_record_can_have_are_404(service: Service, stored: dict, path: str) -> None:
    _refused(service.client.get(path), 404, "no ")


def test_review_of_an_impossible_defect_id_is_404(service: Service, stored: dict) -> None:
    r = service.client.post("/api/v1/defects/a%00b/review", json={"decision": "confirm"}, headers=service.auth)
    _refused(r, 404, "no defect")


def test_image_id_over_the_column_limit_is_422(service: Service, stored: dict) -> None:
    before = service.counts()
    pid = stored["product"]["id"]
    board = png(with_short(paint_board()))

    def upload(form: dict, filename: str = "b.png"):
        files = {"image": (filename, board)}
        return service.client.post("/api/v1/inspections", data=form, files=files, headers=service.auth)

    _refused(upload({"product": pid, "image_id": "i" * 501}), 422, "image_id is 501 characters long; the limit is 500")
    _refused(upload({"product": pid}, "n" * 501 + ".png"), 422, "the limit is 500")
    assert service.counts() == before
    assert upload({"product": pid, "image_id": "i" * 500}).status_code == 201
