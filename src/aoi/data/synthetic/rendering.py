"""Copper masks rendered as DeepPCB-like scans, and the DeepPCB-style box of what an edit changed.

A scan is the binary copper mask blurred a little (soft edges) in DeepPCB polarity: copper 0, substrate 255.
"""

from __future__ import annotations

import cv2
import numpy as np

from aoi.schema import DEFAULT_PX_PER_MM, BoxXYXY

PX_PER_MM = DEFAULT_PX_PER_MM
BOX_MARGIN_PX = 8
DEFAULT_SIZE_WH = (640, 640)
_SOFT_SIGMA_PX = 0.7
_SOFT_KERNEL_PX = 5
_SOFT_RADIUS_PX = _SOFT_KERNEL_PX // 2


def render_mask(copper: np.ndarray) -> np.ndarray:
    """Render a boolean copper mask as a soft-edged 8-bit scan in DeepPCB polarity (copper 0, substrate 255)."""
    soft = cv2.GaussianBlur(copper.astype(np.float32) * 255.0, (_SOFT_KERNEL_PX, _SOFT_KERNEL_PX), _SOFT_SIGMA_PX)
    return (255 - np.clip(np.rint(soft), 0, 255)).astype(np.uint8)


def copper_mask(image: np.ndarray) -> np.ndarray:
    """Binarise a scan: True where copper (dark)."""
    return np.asarray(image) < 128


def changed_box(before: np.ndarray, after: np.ndarray, margin_px: int = BOX_MARGIN_PX) -> BoxXYXY | None:
    """DeepPCB-style box: tight box of the pixels that differ, grown by `margin_px`, clipped to the image."""
    ys, xs = np.nonzero(before != after)
    if xs.size == 0:
        return None
    h, w = before.shape[:2]
    return (
        float(max(0, int(xs.min()) - margin_px)),
        float(max(0, int(ys.min()) - margin_px)),
        float(min(w, int(xs.max()) + 1 + margin_px)),
        float(min(h, int(ys.max()) + 1 + margin_px)),
    )


def rerender(image: np.ndarray, old: np.ndarray, new: np.ndarray) -> np.ndarray:
    """Write the rendering of `new` into a copy of `image`, only around pixels where the masks differ."""
    ys, xs = np.nonzero(old != new)
    out = image.copy()
    if xs.size == 0:
        return out
    h, w = old.shape
    pad = 2 * _SOFT_RADIUS_PX
    x0, y0 = max(0, int(xs.min()) - pad), max(0, int(ys.min()) - pad)
    x1, y1 = min(w, int(xs.max()) + 1 + pad), min(h, int(ys.max()) + 1 + pad)
    soft = render_mask(new[y0:y1, x0:x1])
    kernel = np.ones((2 * _SOFT_RADIUS_PX + 1, 2 * _SOFT_RADIUS_PX + 1), np.uint8)
    region = cv2.dilate((old[y0:y1, x0:x1] != new[y0:y1, x0:x1]).astype(np.uint8), kernel) > 0
    crop = out[y0:y1, x0:x1]
    crop[region] = soft[region]
    return out
