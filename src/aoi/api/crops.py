"""Verification crops of one defect: the captured pixels, the golden template's pixels brought onto
them, and their difference, all over the same window and with nothing drawn on them (the operator
judges the pixels; the dashboard draws its outline beside them, not on them).

The template side is resampled into the tested image's coordinates with the inspection's stored
registration (shift and rotation), so the three crops line up pixel for pixel as the engine saw them.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping

import cv2
import numpy as np

from aoi.registration import warp_template

DEFAULT_MIN_MARGIN_PX = 96  # context around a small defect: a few line widths of a coarse board
MAX_MARGIN_PX = 1024


class CropSide(enum.StrEnum):
    TEST = "test"  # the captured (tested) image
    TEMPLATE = "template"  # the golden template, registered onto the capture
    DIFFERENCE = "difference"  # |captured - registered template|


Window = tuple[int, int, int, int]  # x1, y1, x2, y2 in tested-image pixels, x2/y2 exclusive


def default_margin_px(box_px: tuple[float, float, float, float]) -> int:
    """Twice the defect's larger side, at least DEFAULT_MIN_MARGIN_PX, at most MAX_MARGIN_PX."""
    side = max(box_px[2] - box_px[0], box_px[3] - box_px[1])
    return int(min(MAX_MARGIN_PX, max(DEFAULT_MIN_MARGIN_PX, math.ceil(2 * side))))


def crop_window(box_px: tuple[float, float, float, float], image_wh: tuple[int, int], margin_px: int) -> Window:
    """The box grown by `margin_px` on every side, clipped to the image (never empty)."""
    w, h = image_wh
    x1 = max(0, min(w - 1, math.floor(box_px[0]) - margin_px))
    y1 = max(0, min(h - 1, math.floor(box_px[1]) - margin_px))
    x2 = min(w, max(x1 + 1, math.ceil(box_px[2]) + margin_px))
    y2 = min(h, max(y1 + 1, math.ceil(box_px[3]) + margin_px))
    return x1, y1, x2, y2


def registration_matrix(registration: Mapping[str, float]) -> np.ndarray:
    """The 2x3 test -> template map of a stored registration (`Registration.as_dict()`: the test's
    offset `dx_px`, `dy_px` and `rotation_deg`); identity when the inspection stored none."""
    dx = float(registration.get("dx_px", 0.0))
    dy = float(registration.get("dy_px", 0.0))
    theta = math.radians(float(registration.get("rotation_deg", 0.0)))
    c, s = math.cos(theta), math.sin(theta)
    template_to_test = np.array([[c, s, dx], [-s, c, dy]], np.float64)
    return cv2.invertAffineTransform(template_to_test)


def _grey(image: np.ndarray) -> np.ndarray:
    return image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)


def captured_crop(test: np.ndarray, window: Window) -> np.ndarray:
    x1, y1, x2, y2 = window
    return np.ascontiguousarray(_grey(test)[y1:y2, x1:x2])


def template_crop(template: np.ndarray, registration: Mapping[str, float], window: Window) -> np.ndarray:
    """The template's pixels at the window's tested-image positions (0 where the template has none)."""
    x1, y1, x2, y2 = window
    matrix = registration_matrix(registration)
    shifted = matrix.copy()
    shifted[:, 2] = matrix[:, :2] @ np.array([x1, y1], np.float64) + matrix[:, 2]
    return warp_template(_grey(template), shifted.astype(np.float32), (x2 - x1, y2 - y1))


def difference_crop(test_part: np.ndarray, template_part: np.ndarray) -> np.ndarray:
    return cv2.absdiff(test_part, template_part)


def crop_png(image: np.ndarray) -> bytes:
    ok, encoded = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise RuntimeError("could not encode the crop as PNG")
    return encoded.tobytes()
