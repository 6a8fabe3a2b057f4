"""Annotated overlay images: the tested image with each defect's box, type and confidence."""

from __future__ import annotations

import cv2
import numpy as np

from aoi.schema import DEFECT_CATALOGUE, DefectType, InspectionResult, Verdict

# BGR colours per type, from the catalogue (distinct on a black/white board).
TYPE_COLOURS_BGR: dict[DefectType, tuple[int, int, int]] = {
    info.type: info.colour_rgb[::-1] for info in DEFECT_CATALOGUE
}


def render_overlay(
    test: np.ndarray, result: InspectionResult, origin_px: tuple[float, float] = (0.0, 0.0)
) -> np.ndarray:
    """BGR uint8 image: the tested image dimmed, defect boxes coloured by type, verdict banner on top."""
    base = test if test.ndim == 3 else cv2.cvtColor(test, cv2.COLOR_GRAY2BGR)
    canvas = (base.astype(np.float32) * 0.6 + 40).astype(np.uint8)
    ox, oy = origin_px
    for d in result.defects:
        colour = TYPE_COLOURS_BGR[d.type]
        x1, y1, x2, y2 = (
            int(round(v)) for v in (d.box_px[0] - ox, d.box_px[1] - oy, d.box_px[2] - ox, d.box_px[3] - oy)
        )
        cv2.rectangle(canvas, (x1, y1), (x2, y2), colour, 2)
        label = f"{d.type.value} {d.confidence:.2f}"
        (tw, th), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, 0.4, 1)
        ty = y1 - 3 if y1 - th - 4 >= 0 else min(y2 + th + 3, canvas.shape[0] - 1)
        cv2.rectangle(canvas, (x1, ty - th - 2), (x1 + tw + 2, ty + 2), colour, -1)
        cv2.putText(canvas, label, (x1 + 1, ty), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    banner = (0, 160, 0) if result.verdict is Verdict.PASS else (0, 0, 200)
    n = len(result.defects)
    text = f"{result.image_id}: {result.verdict.value.upper()} ({n} {'defect' if n == 1 else 'defects'})"
    cv2.rectangle(canvas, (0, 0), (min(canvas.shape[1], 12 + 8 * len(text)), 20), banner, -1)
    cv2.putText(canvas, text, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
    return canvas
