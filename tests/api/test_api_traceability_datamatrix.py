"""A product whose panels carry a Data Matrix (ECC200): set up over the API, read on upload into the stored
and searchable lot and panel; unknown code kinds are refused with the known ones named."""

from __future__ import annotations

import json

import numpy as np
import zxingcpp
from tests.support.service import Service, paint_board, with_short

from aoi.api.routers.products import TRACE_HELP

SETUP = {"code": "datamatrix", "code_pattern": r"(?P<lot>L\d+)/(?P<panel>P\d+)"}


def _with_data_matrix(board: np.ndarray, text: str) -> np.ndarray:
    symbol = zxingcpp.create_barcode(text, zxingcpp.BarcodeFormat.DataMatrix)
    code = np.asarray(symbol.to_image(scale=4, add_quiet_zones=True), dtype=np.uint8)
    out = board.copy()
    out[20 : 20 + code.shape[0], 20 : 20 + code.shape[1]] = code
    return out


def test_a_data_matrix_on_the_panel_gives_the_lot_and_panel(service: Service) -> None:
    created = service.add_product(trace=json.dumps(SETUP))
    assert created["trace"] == {"file_pattern": None, **SETUP}
    board = with_short(paint_board())
    read = service.inspect(_with_data_matrix(board, "L2405/P0117"), "board-a", name="scan-0001.png")
    assert (read["lot"], read["panel_id"]) == ("L2405", "P0117")
    no_code = service.inspect(board, "board-a", name="scan-0002.png")  # inspected all the same
    assert (no_code["lot"], no_code["panel_id"], no_code["verdict"]) == (None, None, "fail")

    r = service.client.get("/api/v1/inspections", params={"lot": "L2405", "panel_id": "P0117"})
    assert [item["id"] for item in r.json()["items"]] == [read["id"]]


def test_an_unknown_code_kind_is_refused_naming_qr_and_datamatrix(service: Service) -> None:
    service.add_product()
    r = service.client.put("/api/v1/products/board-a/trace", json={"code": "aztec"}, headers=service.auth)
    assert r.status_code == 422, r.text
    assert r.json()["error"] == "invalid_trace"
    assert "trace.code must be one of qr, datamatrix" in r.json()["detail"]
    r = service.client.put("/api/v1/products/board-a/trace", json=SETUP, headers=service.auth)
    assert r.status_code == 200 and r.json()["trace"]["code"] == "datamatrix", r.text
    assert "'datamatrix'" in TRACE_HELP and "'qr'" in TRACE_HELP
