"""Lot, panel and line of each board: from the upload's form, the product's file-name pattern, a QR code on
the panel and the line's name; stored, shown in the inspection's JSON and searchable (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient
from tests.support.service import FakeInspector, Service, paint_board, png, send_key_on_reads, with_short

from aoi.api import ServiceSettings, create_app
from aoi.api.line import INBOX_DIR_NAME, LineOptions, ServiceLine, build_line
from aoi.storage import Storage
from aoi.storage.keys import create_api_key

PATTERN = r"(?P<lot>L\d+)_(?P<panel>P\d+)"


def _ids(page: dict) -> list[str]:
    return sorted(item["id"] for item in page["items"])


def test_form_fields_are_stored_shown_and_searchable(service: Service) -> None:
    service.add_product()
    board = with_short(paint_board())
    a = service.inspect(board, "board-a", lot="L2405", panel_id="P0001", line="SMT-1")
    b = service.inspect(board, "board-a", lot="L2405", panel_id="P0002", line="SMT-2")
    c = service.inspect(paint_board(), "board-a", lot="L2406", panel_id="P0001")
    plain = service.inspect(paint_board(), "board-a")

    assert (a["lot"], a["panel_id"], a["line"]) == ("L2405", "P0001", "SMT-1")
    assert (plain["lot"], plain["panel_id"], plain["line"]) == (None, None, None)
    detail = service.client.get(f"/api/v1/inspections/{a['id']}").json()
    assert (detail["lot"], detail["panel_id"], detail["line"]) == ("L2405", "P0001", "SMT-1")
    assert detail["model_version"] == "fake-1"  # a defect's board, lot, line and model in one answer

    def search(**params: str) -> list[str]:
        r = service.client.get("/api/v1/inspections", params=params)
        assert r.status_code == 200, r.text
        return _ids(r.json())

    assert search(lot="L2405") == sorted([a["id"], b["id"]])
    assert search(panel_id="P0001") == sorted([a["id"], c["id"]])
    assert search(lot="L2405", panel_id="P0002") == [b["id"]]
    assert search(line="SMT-2") == [b["id"]]
    assert search(lot="L2405", verdict="pass") == []
    assert search(lot="L9999") == []
    assert service.client.get("/api/v1/inspections", params={"lot": "L2405"}).json()["total"] == 2


BAD_VALUES = [
    ("lot", "L 2405"),  # a space
    ("lot", "L24\n05"),  # a control character (blanks around a value are trimmed, not these)
    ("panel_id", "P\x000001"),
    ("panel_id", "P" * 65),  # longer than a column
    ("line", "../line"),  # not starting with a letter or digit
    ("lot", "L/2405"),  # a slash (it goes into report URLs)
]


def test_bad_trace_values_are_422_and_store_nothing(service: Service) -> None:
    service.add_product()
    before = service.counts()
    for field, value in BAD_VALUES:
        r = service.client.post(
            "/api/v1/inspections",
            data={"product": "board-a", field: value},
            files={"image": ("b.png", png(paint_board()), "image/png")},
            headers=service.auth,
        )
        assert r.status_code == 422, (field, value, r.text)
        assert r.json()["error"] == "invalid_trace" and field in r.json()["detail"]
        r = service.client.get("/api/v1/inspections", params={field: value})
        assert r.status_code == 422, (field, value, r.text)
    assert service.counts() == before


def test_the_products_file_name_pattern_gives_lot_and_panel(service: Service) -> None:
    product = service.add_product(trace=json.dumps({"file_pattern": PATTERN}))
    assert product["trace"] == {"file_pattern": PATTERN, "code": None, "code_pattern": None}
    board = with_short(paint_board())

    named = service.inspect(board, "board-a", name="L2405_P0117.png")
    assert (named["lot"], named["panel_id"]) == ("L2405", "P0117")
    given = service.inspect(board, "board-a", name="L2405_P0118.png", lot="L9")  # the form wins, per field
    assert (given["lot"], given["panel_id"]) == ("L9", "P0118")
    unmatched = service.inspect(board, "board-a", name="scan-0001.png")  # no match: not known, still inspected
    assert (unmatched["lot"], unmatched["panel_id"], unmatched["verdict"]) == (None, None, "fail")

    r = service.client.get("/api/v1/inspections", params={"lot": "L2405", "panel_id": "P0117"})
    assert _ids(r.json()) == [named["id"]]


BAD_SETUPS = [
    ({"file_pattern": "(?P<lot>L\\d+"}, "not a valid regular expression"),
    ({"file_pattern": "(?P<batch>B\\d+)"}, "unknown group name(s) batch"),
    ({"file_pattern": "L\\d+_P\\d+"}, "names no group"),
    ({"file_pattern": "(?P<lot>" + "x" * 300 + ")"}, "the limit is 200"),
    ({"file_pattern": 5}, "must be a string"),
    ({"pattern": PATTERN}, "unknown key(s) 'pattern'"),
    ({"code": "barcode"}, "trace.code must be one of qr, datamatrix"),
    ({"code_pattern": PATTERN}, "needs trace.code"),
]


def test_bad_patterns_are_422_on_create_and_on_update(service: Service) -> None:
    service.add_product()
    for trace, says in BAD_SETUPS:
        r = service.client.post(
            "/api/v1/products",
            data={"name": "board-b", "px_per_mm": "20", "trace": json.dumps(trace)},
            files={"template": ("t.png", png(paint_board()), "image/png")},
            headers=service.auth,
        )
        assert r.status_code == 422, (trace, r.text)
        assert r.json()["error"] == "invalid_trace" and says in r.json()["detail"], (trace, r.text)
        r = service.client.put("/api/v1/products/board-a/trace", json=trace, headers=service.auth)
        assert r.status_code == 422, (trace, r.text)
        assert says in r.json()["detail"]
    assert service.counts()["products"] == 1
    assert service.client.get("/api/v1/products/board-a").json()["trace"] is None


def test_a_products_pattern_is_set_and_cleared_by_put(service: Service) -> None:
    service.add_product()
    assert service.client.put("/api/v1/products/board-a/trace", json={"file_pattern": PATTERN}).status_code == 401
    r = service.client.put("/api/v1/products/board-a/trace", json={"file_pattern": PATTERN}, headers=service.auth)
    assert r.status_code == 200, r.text
    assert r.json()["trace"]["file_pattern"] == PATTERN
    board = with_short(paint_board())
    assert service.inspect(board, "board-a", name="L1_P2.png")["lot"] == "L1"

    r = service.client.put("/api/v1/products/board-a/trace", json=None, headers=service.auth)
    assert r.status_code == 200 and r.json()["trace"] is None
    assert service.inspect(board, "board-a", name="L1_P3.png")["lot"] is None
    r = service.client.put("/api/v1/products/nope/trace", json={"file_pattern": PATTERN}, headers=service.auth)
    assert r.status_code == 404


def _with_qr(board: np.ndarray, text: str) -> np.ndarray:
    code = cv2.QRCodeEncoder.create().encode(text)
    code = cv2.resize(code, (code.shape[1] * 4, code.shape[0] * 4), interpolation=cv2.INTER_NEAREST)
    out = board.copy()
    out[20 : 20 + code.shape[0], 20 : 20 + code.shape[1]] = code
    return out


def test_a_qr_code_on_the_panel_gives_the_panel_id(service: Service) -> None:
    service.add_product(trace=json.dumps({"code": "qr", "file_pattern": "(?P<lot>L\\d+)"}))
    board = with_short(paint_board())
    r = service.inspect(_with_qr(board, "P-0777"), "board-a", name="L31_scan.png")
    assert (r["lot"], r["panel_id"]) == ("L31", "P-0777")
    no_code = service.inspect(board, "board-a", name="L31_scan2.png")
    assert (no_code["lot"], no_code["panel_id"]) == ("L31", None)

    service.client.put(
        "/api/v1/products/board-a/trace",
        json={"code": "qr", "code_pattern": "LOT=(?P<lot>\\w+);SN=(?P<panel>\\w+)"},
        headers=service.auth,
    )
    parsed = service.inspect(_with_qr(board, "LOT=L40;SN=S0009"), "board-a")
    assert (parsed["lot"], parsed["panel_id"]) == ("L40", "S0009")


@pytest.fixture
def line_service(storage: Storage) -> Iterator[tuple[TestClient, Path]]:
    """The service with its capture line (hot folder) running, named SMT-7."""
    settings = ServiceSettings(data_dir=storage.data_dir, serve_dashboard=False, line_name="SMT-7")
    built: list[ServiceLine] = []

    def line_factory(svc):  # type: ignore[no-untyped-def]
        built.append(build_line(svc, LineOptions(inspect_workers=1), FakeInspector()))
        return built[-1]

    app = create_app(settings, inspector=FakeInspector(), storage=storage, line_factory=line_factory)
    with storage.db.transaction() as session:
        key = create_api_key(session, label="tester")
    with TestClient(app) as client:
        send_key_on_reads(client, key)
        client.headers["Authorization"] = f"Bearer {key}"
        yield client, storage.data_dir / INBOX_DIR_NAME


def test_the_hot_folder_takes_lot_and_panel_from_the_file_name_and_the_line_from_the_service(
    line_service: tuple[TestClient, Path],
) -> None:
    client, inbox = line_service
    template = paint_board()
    r = client.post(
        "/api/v1/products",
        data={"name": "board-a", "px_per_mm": "20", "trace": json.dumps({"file_pattern": PATTERN})},
        files={"template": ("t.png", png(template), "image/png")},
    )
    assert r.status_code == 201, r.text
    folder = inbox / "board-a"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "L2405_P0117.png.part").write_bytes(png(with_short(template)))
    (folder / "L2405_P0117.png.part").rename(folder / "L2405_P0117.png")
    (folder / "unnamed.png").write_bytes(png(template))

    deadline = time.monotonic() + 20
    while (total := client.get("/api/v1/inspections").json()["total"]) < 2:
        assert time.monotonic() < deadline, f"the hot folder stored {total} of 2 files"
        time.sleep(0.1)

    found = client.get("/api/v1/inspections", params={"lot": "L2405"}).json()["items"]
    assert [(i["image_id"], i["lot"], i["panel_id"], i["line"]) for i in found] == [
        ("board-a/L2405_P0117.png", "L2405", "P0117", "SMT-7")
    ]
    other = client.get("/api/v1/inspections", params={"line": "SMT-7", "verdict": "pass"}).json()["items"]
    assert [(i["image_id"], i["lot"], i["panel_id"]) for i in other] == [("board-a/unnamed.png", None, None)]


def test_the_line_name_is_checked_at_start() -> None:
    with pytest.raises(ValueError, match="line_name"):
        ServiceSettings(line_name="line 1")
