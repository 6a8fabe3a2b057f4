"""Connected-component labelling of sparse masks, with boxes and areas, cheaper than OpenCV's stats.

`cv2.connectedComponentsWithStats` spends most of its time on statistics (it also computes centroids
in double precision over every pixel): about 3.5 ms on a 640 x 640 board against 0.7-1.4 ms for the
labelling alone. The engine's masks (disagreement, missing or extra copper) are sparse, so the boxes
and areas are cheaper taken from the coordinates of the few labelled pixels.
"""

from __future__ import annotations

import cv2
import numpy as np

# Column order of the stats table, as OpenCV's: left, top, width, height, area.
LEFT, TOP, WIDTH, HEIGHT, AREA = range(5)


def label_components(mask: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
    """(count including the background label 0, int32 labels, (count, 5) int32 stats) of a 0/1 uint8 mask,
    8-connected. Row 0 of the stats is the background, spanning the image, with its pixel count."""
    n, labels = cv2.connectedComponents(mask, connectivity=8)
    h, w = mask.shape
    stats = np.zeros((n, 5), np.int32)
    ys, xs = nonzero_yx(mask)
    stats[0] = (0, 0, w, h, h * w - ys.size)
    if n <= 1:
        return n, labels, stats
    lab = labels[ys, xs]
    order = np.argsort(lab, kind="stable")
    lab, ys, xs = lab[order], ys[order], xs[order]
    starts = np.flatnonzero(np.r_[True, lab[1:] != lab[:-1]])
    x0, x1 = np.minimum.reduceat(xs, starts), np.maximum.reduceat(xs, starts)
    y0, y1 = np.minimum.reduceat(ys, starts), np.maximum.reduceat(ys, starts)
    ids = lab[starts]
    stats[ids, LEFT] = x0
    stats[ids, TOP] = y0
    stats[ids, WIDTH] = x1 - x0 + 1
    stats[ids, HEIGHT] = y1 - y0 + 1
    stats[ids, AREA] = np.diff(np.r_[starts, lab.size])
    return n, labels, stats


def nonzero_yx(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row and column indices of the non-zero pixels of a uint8 mask, in row-major order (as
    `np.nonzero`, several times faster on a sparse mask: OpenCV's vectorised scan)."""
    points = cv2.findNonZero(mask)
    if points is None:
        empty = np.zeros(0, np.intp)
        return empty, empty
    xy = points.reshape(-1, 2)
    return xy[:, 1].astype(np.intp), xy[:, 0].astype(np.intp)


def components_mask(labels: np.ndarray, wanted: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """0/1 uint8 mask of the pixels of `mask` whose label is `wanted` (a bool per label): only the mask's
    pixels are looked up, not the whole label image."""
    ys, xs = nonzero_yx(mask)
    out = np.zeros(mask.shape, np.uint8)
    keep = wanted[labels[ys, xs]]
    out[ys[keep], xs[keep]] = 1
    return out


def pixel_counts(labels: np.ndarray, mask: np.ndarray, n: int) -> np.ndarray:
    """Per label (0..n-1), how many of `mask`'s non-zero pixels carry it."""
    ys, xs = nonzero_yx(mask)
    return np.bincount(labels[ys, xs], minlength=n)
