"""Misalignment, relighting and sensor noise applied to a tested image, moving its boxes along."""

from __future__ import annotations

from collections.abc import Iterable

import cv2
import numpy as np

from aoi.data.annotations import LabeledBox
from aoi.data.images import validate_image


def perturb(
    image: np.ndarray,
    labels: Iterable[LabeledBox],
    shift_xy_px: tuple[float, float] = (0.0, 0.0),
    rotation_deg: float = 0.0,
    brightness: float = 1.0,
    noise_sigma: float = 0.0,
    rng: np.random.Generator | None = None,
) -> tuple[np.ndarray, tuple[LabeledBox, ...]]:
    """Shift/rotate (about the image centre), scale grey levels and add Gaussian noise, moving the boxes along.

    Rotated boxes become the axis-aligned box of their corners, clipped; boxes pushed off the image are
    dropped. Uncovered borders repeat the nearest edge pixels, as a scanner's wider field of view would
    show board there rather than a blank band. Used for misaligned pairs and robustness sweeps.
    """
    if noise_sigma < 0 or brightness < 0:
        raise ValueError(f"noise_sigma and brightness must be >= 0, got {noise_sigma}, {brightness}")
    if noise_sigma > 0 and rng is None:
        raise ValueError("noise_sigma > 0 needs an rng")
    base = validate_image(image)
    h, w = base.shape
    labels = tuple(labels)
    out: np.ndarray = base.astype(np.float32)
    if any(float(v) != 0.0 for v in shift_xy_px) or rotation_deg != 0.0:
        matrix = cv2.getRotationMatrix2D(((w - 1) / 2.0, (h - 1) / 2.0), float(rotation_deg), 1.0)
        matrix[:, 2] += np.asarray(shift_xy_px, np.float64)
        out = cv2.warpAffine(out, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        labels = tuple(b for b in (_move_box(lb, matrix, w, h) for lb in labels) if b is not None)
    if brightness != 1.0:
        out = out * float(brightness)
    if noise_sigma > 0 and rng is not None:
        out = out + rng.normal(0.0, float(noise_sigma), out.shape).astype(np.float32)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8), labels


def _move_box(label: LabeledBox, matrix: np.ndarray, w: int, h: int) -> LabeledBox | None:
    x1, y1, x2, y2 = label.box_px
    # continuous corner coordinates -> pixel-centre coordinates that warpAffine maps, and back
    corners = np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2]], np.float64) - 0.5
    moved = corners @ matrix[:, :2].T + matrix[:, 2] + 0.5
    nx1, ny1 = max(0.0, float(moved[:, 0].min())), max(0.0, float(moved[:, 1].min()))
    nx2, ny2 = min(float(w), float(moved[:, 0].max())), min(float(h), float(moved[:, 1].max()))
    if nx2 - nx1 < 1 or ny2 - ny1 < 1:
        return None
    box = tuple(round(v, 2) for v in (nx1, ny1, nx2, ny2))
    return LabeledBox(label.type, box)  # type: ignore[arg-type]
