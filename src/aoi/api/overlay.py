"""The overlay PNG of a stored inspection: its tested image with the defect boxes drawn on it."""

from __future__ import annotations

import cv2
import numpy as np

from aoi.schema import InspectionResult, Verdict

_FAIL_BGR = (40, 40, 230)
_PASS_BGR = (60, 200, 60)


def render(test: np.ndarray, result: InspectionResult) -> np.ndarray:
    """The engine's `render_overlay` when it is installed, else plain boxes with type labels."""
    try:
        from aoi.detection.overlay import render_overlay
    except ImportError:
        return _boxes(test, result)
    return render_overlay(test, result)


def overlay_png(test: np.ndarray, result: InspectionResult) -> bytes:
    ok, encoded = cv2.imencode(".png", render(test, result), [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise RuntimeError("could not encode the overlay as PNG")
    return encoded.tobytes()


def _boxes(test: np.ndarray, result: InspectionResult) -> np.ndarray:
    canvas = cv2.cvtColor(test, cv2.COLOR_GRAY2BGR) if test.ndim == 2 else test.copy()
    colour = _FAIL_BGR if result.verdict is Verdict.FAIL else _PASS_BGR
    thickness = max(1, round(max(canvas.shape[:2]) / 400))
    for defect in result.defects:
        x1, y1, x2, y2 = (int(round(v)) for v in defect.box_px)
        cv2.rectangle(canvas, (x1, y1), (x2, y2), colour, thickness)
        label = f"{defect.type.value} {defect.confidence:.2f}"
        cv2.putText(canvas, label, (x1, max(10, y1 - 3)), cv2.FONT_HERSHEY_SIMPLEX, 0.4, colour, 1, cv2.LINE_AA)
    return canvas
