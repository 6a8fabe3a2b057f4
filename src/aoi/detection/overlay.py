"""Annotated overlay images: the tested image with each defect's box, type and confidence.

Annotations keep off the pixels an operator judges: the verdict banner sits on a margin of
`OVERLAY_MARGIN_TOP_PX` rows added above the board (the board's pixel (x, y) is the overlay's
(x, y + OVERLAY_MARGIN_TOP_PX)), boxes are drawn just outside each defect's box, and each label is
placed outside its box, beside it, where it covers no other box and no other label (where it cannot,
the least covering place is taken).
"""

from __future__ import annotations

import cv2
import numpy as np

from aoi.schema import DEFECT_CATALOGUE, DefectType, InspectionResult, Verdict

# BGR colours per type, from the catalogue (distinct on a black/white board).
TYPE_COLOURS_BGR: dict[DefectType, tuple[int, int, int]] = {
    info.type: info.colour_rgb[::-1] for info in DEFECT_CATALOGUE
}

OVERLAY_MARGIN_TOP_PX = 24  # the banner's rows above the board
BOX_GAP_PX = 2  # the box outline runs this far outside the defect's pixels
_FONT = cv2.FONT_HERSHEY_SIMPLEX
_LABEL_SCALE = 0.4
_BANNER_SCALE = 0.45

Rect = tuple[int, int, int, int]  # x1, y1, x2, y2 (inclusive) in overlay pixels


def _overlap(a: Rect, b: Rect) -> int:
    w = min(a[2], b[2]) - max(a[0], b[0]) + 1
    h = min(a[3], b[3]) - max(a[1], b[1]) + 1
    return max(w, 0) * max(h, 0)


def _label_places(box: Rect, size_wh: tuple[int, int]) -> list[Rect]:
    """Where a label of `size_wh` may go around `box`, outside it: above, below, right, left (each
    aligned with the box's start), in that order of preference."""
    x1, y1, x2, y2 = box
    w, h = size_wh
    return [
        (x1, y1 - h - 1, x1 + w - 1, y1 - 1),  # above
        (x1, y2 + 1, x1 + w - 1, y2 + h),  # below
        (x2 + 1, y1, x2 + w, y1 + h - 1),  # right
        (x1 - w, y1, x1 - 1, y1 + h - 1),  # left
        (x2 - w + 1, y1 - h - 1, x2, y1 - 1),  # above, right-aligned
        (x2 - w + 1, y2 + 1, x2, y2 + h),  # below, right-aligned
    ]


def place_labels(boxes: list[Rect], sizes_wh: list[tuple[int, int]], area: Rect) -> list[Rect]:
    """One place per label: outside its own box and inside `area`, covering as little of the other
    boxes and the labels placed before it as possible (nothing at all where there is room)."""
    placed: list[Rect] = []
    for i, (box, size) in enumerate(zip(boxes, sizes_wh, strict=True)):
        others = [b for j, b in enumerate(boxes) if j != i] + placed
        best: tuple[int, int, Rect] | None = None
        for rank, place in enumerate(_label_places(box, size)):
            dx = max(area[0] - place[0], 0) - max(place[2] - area[2], 0)  # slide back into the area
            dy = max(area[1] - place[1], 0) - max(place[3] - area[3], 0)
            moved = (place[0] + dx, place[1] + dy, place[2] + dx, place[3] + dy)
            if _overlap(moved, box):  # sliding in put it over its own box: not this side
                continue
            cost = sum(_overlap(moved, other) for other in others)
            if best is None or (cost, rank) < best[:2]:
                best = (cost, rank, moved)
            if cost == 0:
                break
        if best is None:  # the box fills the area: the label goes at the area's top-left corner
            best = (0, 0, (area[0], area[1], area[0] + size[0] - 1, area[1] + size[1] - 1))
        placed.append(best[2])
    return placed


def render_overlay(
    test: np.ndarray, result: InspectionResult, origin_px: tuple[float, float] = (0.0, 0.0)
) -> np.ndarray:
    """BGR uint8 image: a verdict banner on `OVERLAY_MARGIN_TOP_PX` rows above the tested image (dimmed),
    defect boxes coloured by type just outside each defect, labels beside the boxes."""
    base = test if test.ndim == 3 else cv2.cvtColor(test, cv2.COLOR_GRAY2BGR)
    height, width = base.shape[:2]
    top = OVERLAY_MARGIN_TOP_PX
    canvas = np.zeros((height + top, width, 3), np.uint8)
    canvas[:top] = (32, 32, 32)
    canvas[top:] = (base.astype(np.float32) * 0.6 + 40).astype(np.uint8)
    banner = (0, 160, 0) if result.verdict is Verdict.PASS else (0, 0, 200)
    n = len(result.defects)
    text = f"{result.image_id}: {result.verdict.value.upper()} ({n} {'defect' if n == 1 else 'defects'})"
    (tw, th), _ = cv2.getTextSize(text, _FONT, _BANNER_SCALE, 1)
    cv2.rectangle(canvas, (0, 0), (min(width, tw + 10) - 1, top - 1), banner, -1)
    cv2.putText(canvas, text, (4, (top + th) // 2), _FONT, _BANNER_SCALE, (255, 255, 255), 1, cv2.LINE_AA)
    ox, oy = origin_px
    board: Rect = (0, top, width - 1, top + height - 1)
    boxes: list[Rect] = []  # the inner edge of each outline; labels keep off the outline too (1 px wider)
    labels: list[str] = []
    sizes: list[tuple[int, int]] = []
    for d in result.defects:
        x1, y1, x2, y2 = (d.box_px[0] - ox, d.box_px[1] - oy, d.box_px[2] - ox, d.box_px[3] - oy)
        boxes.append(
            (
                int(np.floor(x1)) - BOX_GAP_PX,
                int(np.floor(y1)) + top - BOX_GAP_PX,
                int(np.ceil(x2)) - 1 + BOX_GAP_PX,
                int(np.ceil(y2)) - 1 + top + BOX_GAP_PX,
            )
        )
        label = f"{d.type.value} {d.confidence:.2f}"
        (tw, th), baseline = cv2.getTextSize(label, _FONT, _LABEL_SCALE, 1)
        labels.append(label)
        sizes.append((tw + 4, th + baseline + 3))
    for d, (x1, y1, x2, y2) in zip(result.defects, boxes, strict=True):  # 2 px wide, all of it outside
        # (a defect at the image's side edge loses that side of its box: it would cover the defect)
        cv2.rectangle(canvas, (x1, y1), (x2, y2), TYPE_COLOURS_BGR[d.type], 1)
        cv2.rectangle(canvas, (x1 - 1, y1 - 1), (x2 + 1, y2 + 1), TYPE_COLOURS_BGR[d.type], 1)
    outlines = [(x1 - 1, y1 - 1, x2 + 1, y2 + 1) for x1, y1, x2, y2 in boxes]
    for d, label, place in zip(result.defects, labels, place_labels(outlines, sizes, board), strict=True):
        cv2.rectangle(canvas, place[:2], place[2:], TYPE_COLOURS_BGR[d.type], -1)
        baseline_y = place[3] - 3
        cv2.putText(canvas, label, (place[0] + 2, baseline_y), _FONT, _LABEL_SCALE, (0, 0, 0), 1, cv2.LINE_AA)
    return canvas
