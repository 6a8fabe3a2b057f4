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
    flat = labels.ravel()
    idx = np.flatnonzero(flat)
    stats[0] = (0, 0, w, h, flat.size - idx.size)
    if n <= 1:
        return n, labels, stats
    lab = flat[idx]
    order = np.argsort(lab, kind="stable")
    lab, idx = lab[order], idx[order]
    ys, xs = np.divmod(idx, w)
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
