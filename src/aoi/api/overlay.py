"""The overlay PNG of a stored inspection: its tested image with the defect boxes drawn on it."""

from __future__ import annotations

import cv2
import numpy as np

from aoi.detection.overlay import render_overlay
from aoi.schema import InspectionResult


def overlay_png(test: np.ndarray, result: InspectionResult) -> bytes:
    """Rendered on request (never on the inspection's hot path); fast PNG compression."""
    ok, encoded = cv2.imencode(".png", render_overlay(test, result), [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise RuntimeError("could not encode the overlay as PNG")
    return encoded.tobytes()
