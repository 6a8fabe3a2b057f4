"""The overlay keeps its annotations off the pixels an operator judges: the banner on a margin above the
board, boxes outside the defects, labels outside every box and clear of each other where there is room."""

from __future__ import annotations

import numpy as np

from aoi.detection.overlay import OVERLAY_MARGIN_TOP_PX, Rect, place_labels, render_overlay
from aoi.schema import Defect, DefectType, InspectionResult, Verdict


def _result(defects: tuple[Defect, ...], size_wh: tuple[int, int] = (320, 240)) -> InspectionResult:
    return InspectionResult(
        image_id="b1",
        image_size_wh=size_wh,
        defects=defects,
        verdict=Verdict.FAIL if defects else Verdict.PASS,
        px_per_mm=20.0,
        model_version="m",
    )


def _board() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (240, 320), dtype=np.uint8)


def _dimmed(board: np.ndarray) -> np.ndarray:
    return (board.astype(np.float32) * 0.6 + 40).astype(np.uint8)


def test_the_banner_sits_on_a_margin_above_the_board() -> None:
    board = _board()
    overlay = render_overlay(board, _result(()))
    top = OVERLAY_MARGIN_TOP_PX
    assert overlay.shape == (240 + top, 320, 3)
    np.testing.assert_array_equal(overlay[top:, :, 0], _dimmed(board))  # every board pixel as it was (dimmed)
    assert (overlay[:top, :40, 1] > 100).any()  # the green PASS banner


def test_defect_pixels_stay_clear_and_labels_keep_off_every_box() -> None:
    board = _board()
    defects = (
        Defect(DefectType.SHORT, 0.9, (0.0, 0.0, 20.0, 12.0)),  # at the top edge: the old banner covered it
        Defect(DefectType.OPEN, 0.8, (100.0, 100.0, 130.0, 120.0)),
        Defect(DefectType.SPUR, 0.7, (100.0, 80.0, 130.0, 95.0)),  # just above the open: labels must not collide
        Defect(DefectType.COPPER, 0.6, (136.0, 100.0, 150.0, 120.0)),
    )
    overlay = render_overlay(board, _result(defects))
    top = OVERLAY_MARGIN_TOP_PX
    expected = _dimmed(board)
    for d in defects:
        x1, y1, x2, y2 = (int(v) for v in d.box_px)
        inside = overlay[top + y1 : top + y2, x1:x2, 0]
        np.testing.assert_array_equal(inside, expected[y1:y2, x1:x2], err_msg=d.type.value)


def test_place_labels_prefers_free_places_outside_the_boxes() -> None:
    area: Rect = (0, 0, 199, 199)
    boxes: list[Rect] = [(50, 50, 80, 70), (50, 30, 80, 45), (85, 50, 100, 70)]
    sizes = [(40, 12)] * 3
    places = place_labels(boxes, sizes, area)

    def overlap(a: Rect, b: Rect) -> bool:
        return not (a[2] < b[0] or b[2] < a[0] or a[3] < b[1] or b[3] < a[1])

    for i, place in enumerate(places):
        assert area[0] <= place[0] and place[2] <= area[2] and area[1] <= place[1] and place[3] <= area[3]
        assert not any(overlap(place, box) for box in boxes), i
        assert not any(overlap(place, other) for j, other in enumerate(places) if j != i), i
    corner = place_labels([(0, 0, 10, 10)], [(40, 12)], area)[0]
    assert corner[1] > 10  # no room above a box at the top: the label goes below it
