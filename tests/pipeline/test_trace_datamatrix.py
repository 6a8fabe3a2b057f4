"""Lot and panel from a Data Matrix (ECC200) code on the panel (`TraceSettings.code == "datamatrix"`):
read by `resolve_trace` on a synthetic board, nothing (and no error) on a board without one, a missing or
failing decoder is a warning and never a failed inspection, and unknown code kinds are refused."""

from __future__ import annotations

import logging
import sys

import cv2
import numpy as np
import pytest
import zxingcpp

from aoi.data.synthetic import generate_template
from aoi.pipeline import trace as trace_module
from aoi.pipeline.trace import CODE_KINDS, TraceSettings, resolve_trace
from aoi.schema import SchemaError, Trace

LOT_PANEL = r"(?P<lot>L\d+)/(?P<panel>P\d+)"


def _board(seed: int = 0) -> np.ndarray:
    return generate_template(np.random.default_rng(seed))


def _data_matrix(text: str, module_px: int = 5) -> np.ndarray:
    """The code as an 8-bit image, black modules on white with its quiet zone (zxing-cpp's own encoder)."""
    symbol = zxingcpp.create_barcode(text, zxingcpp.BarcodeFormat.DataMatrix)
    image = np.asarray(symbol.to_image(scale=module_px, add_quiet_zones=True), dtype=np.uint8)
    assert image.ndim == 2 and image.min() == 0 and image.max() == 255
    return image


def _with_code(board: np.ndarray, code: np.ndarray, at_xy: tuple[int, int] = (24, 24)) -> np.ndarray:
    """`board` with `code` pasted on a white patch (a label's quiet zone) at `at_xy`."""
    out = board.copy()
    x, y = at_xy
    h, w = code.shape
    out[y - 8 : y + h + 8, x - 8 : x + w + 8] = 255
    out[y : y + h, x : x + w] = code
    return out


def test_datamatrix_is_a_known_code_kind() -> None:
    assert CODE_KINDS == ("qr", "datamatrix")
    settings = TraceSettings.from_dict({"code": "datamatrix", "code_pattern": LOT_PANEL})
    assert settings.to_dict() == {"file_pattern": None, "code": "datamatrix", "code_pattern": LOT_PANEL}
    assert TraceSettings.from_dict(settings.to_dict()) == settings


def test_a_data_matrix_on_the_panel_gives_lot_and_panel() -> None:
    settings = TraceSettings.from_dict({"code": "datamatrix", "code_pattern": LOT_PANEL})
    board = _with_code(_board(), _data_matrix("L2405/P0117"), at_xy=(40, 500))
    assert trace_module.read_datamatrix_code(board) == "L2405/P0117"

    found = resolve_trace(Trace(), settings, "scan-0001.png", board, "SMT-2")
    assert (found.lot, found.panel_id, found.line) == ("L2405", "P0117", "SMT-2")
    turned = np.ascontiguousarray(np.rot90(board))  # a panel scanned a quarter turn round still reads
    assert resolve_trace(Trace(), settings, None, turned, None) == Trace(lot="L2405", panel_id="P0117")
    colour = cv2.cvtColor(board, cv2.COLOR_GRAY2BGR)  # a colour scan too
    assert resolve_trace(Trace(), settings, None, colour, None) == Trace(lot="L2405", panel_id="P0117")
    given = resolve_trace(Trace(lot="L9"), settings, None, board, None)  # the form's values still win
    assert (given.lot, given.panel_id) == ("L9", "P0117")


def test_a_data_matrix_without_a_code_pattern_is_the_panel_id() -> None:
    settings = TraceSettings.from_dict({"code": "datamatrix", "file_pattern": r"(?P<lot>L\d+)_"})
    board = _with_code(_board(seed=1), _data_matrix("P-0777", module_px=4))
    assert resolve_trace(Trace(), settings, "L31_scan.png", board, None) == Trace(lot="L31", panel_id="P-0777")


def test_a_board_with_no_code_gives_no_lot_or_panel_and_no_error(caplog: pytest.LogCaptureFixture) -> None:
    settings = TraceSettings.from_dict({"code": "datamatrix", "code_pattern": LOT_PANEL})
    board = _board(seed=2)
    with caplog.at_level(logging.WARNING, logger="aoi.pipeline.trace"):
        assert trace_module.read_datamatrix_code(board) is None
        assert resolve_trace(Trace(), settings, "scan-0002.png", board, None) == Trace()
        assert resolve_trace(Trace(), settings, None, board, "SMT-2") == Trace(line="SMT-2")
    assert caplog.records == []

    qr = cv2.QRCodeEncoder.create().encode("L2405/P0117")  # a QR code is not read as a Data Matrix
    qr = cv2.resize(qr, (qr.shape[1] * 4, qr.shape[0] * 4), interpolation=cv2.INTER_NEAREST)
    assert resolve_trace(Trace(), settings, None, _with_code(board, qr), None) == Trace()


def test_an_unknown_code_kind_is_refused_naming_the_known_ones() -> None:
    for kind in ("aztec", "DataMatrix", "data_matrix", ""):
        with pytest.raises(SchemaError, match=r"trace\.code must be one of qr, datamatrix \(or null\)"):
            TraceSettings.from_dict({"code": kind})
    with pytest.raises(SchemaError, match=r"trace\.code_pattern needs trace\.code \(one of qr, datamatrix\)"):
        TraceSettings.from_dict({"code_pattern": LOT_PANEL})


def test_a_missing_decoder_is_warned_once_and_reads_nothing(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "zxingcpp", None)  # `import zxingcpp` raises ImportError
    monkeypatch.setattr(trace_module, "_warned", set())
    settings = TraceSettings.from_dict({"code": "datamatrix", "file_pattern": r"(?P<lot>L\d+)_"})
    board = _with_code(_board(), _data_matrix("L2405/P0117"))
    with caplog.at_level(logging.WARNING, logger="aoi.pipeline.trace"):
        for _ in range(3):  # every board still resolved from what else there is
            assert resolve_trace(Trace(), settings, "L31_scan.png", board, None) == Trace(lot="L31")
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "no Data Matrix decoder" in warnings[0].getMessage()


def test_a_decoder_failure_is_a_warning_not_a_failed_inspection(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("decoder exploded")

    monkeypatch.setattr(zxingcpp, "read_barcode", broken)
    settings = TraceSettings.from_dict({"code": "datamatrix", "code_pattern": LOT_PANEL})
    with caplog.at_level(logging.WARNING, logger="aoi.pipeline.trace"):
        assert resolve_trace(Trace(), settings, None, _board(), "SMT-2") == Trace(line="SMT-2")
    assert any("Data Matrix detection failed: decoder exploded" in r.getMessage() for r in caplog.records)
