"""Box maths in one place: overlap measures, NMS, and grouping of boxes that are one object.

Boxes are (x1, y1, x2, y2) in pixels, x2/y2 exclusive. The engine (NMS, joining scratch pieces), the
panel tiler (merging what neighbouring tiles saw) and the metrics (pairing detections with truth)
all measure overlap here, so they agree on what "the same box" means.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

Box = Sequence[float]


def area(box: Box) -> float:
    return max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1])


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box of `a` (N, 4) with every box of `b` (M, 4): (N, M)."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    ix1 = np.maximum(a[:, None, 0], b[None, :, 0])
    iy1 = np.maximum(a[:, None, 1], b[None, :, 1])
    ix2 = np.minimum(a[:, None, 2], b[None, :, 2])
    iy2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(ix2 - ix1, 0, None) * np.clip(iy2 - iy1, 0, None)
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Class-agnostic greedy NMS; returns kept indices by falling score."""
    order = np.argsort(-scores)
    keep: list[int] = []
    while order.size:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        order = rest[iou_matrix(boxes[i : i + 1], boxes[rest])[0] <= iou_threshold]
    return np.array(keep, np.int64)


def iou_and_containment(a: Box, b: Box) -> tuple[float, float]:
    """(IoU, intersection over the smaller box's area); boxes that only touch give (0, 0)."""
    ix = min(a[2], b[2]) - max(a[0], b[0])
    iy = min(a[3], b[3]) - max(a[1], b[1])
    if ix < 0 or iy < 0:
        return 0.0, 0.0
    inter = ix * iy
    area_a, area_b = area(a), area(b)
    union = area_a + area_b - inter
    smaller = min(area_a, area_b)
    return (inter / union if union > 0 else 1.0), (inter / smaller if smaller > 0 else 1.0)


def covered_fraction(part: Box, whole: Box) -> float:
    """The fraction of `part`'s area that lies inside `whole`."""
    ix = min(part[2], whole[2]) - max(part[0], whole[0])
    iy = min(part[3], whole[3]) - max(part[1], whole[1])
    if ix <= 0 or iy <= 0:
        return 0.0
    own = area(part)
    return ix * iy / own if own > 0 else 1.0


def gap_px(a: Box, b: Box) -> float:
    """Chessboard distance between two boxes (0 when they touch or overlap)."""
    dx = max(a[0] - b[2], b[0] - a[2], 0.0)
    dy = max(a[1] - b[3], b[1] - a[3], 0.0)
    return max(dx, dy)


def union_box(boxes: Sequence[Box]) -> tuple[float, float, float, float]:
    return (
        min(b[0] for b in boxes),
        min(b[1] for b in boxes),
        max(b[2] for b in boxes),
        max(b[3] for b in boxes),
    )


def nearby_pairs(boxes: Sequence[Box], cell_px: int, reach_px: float = 0.0) -> set[tuple[int, int]]:
    """Index pairs (i < j) of boxes that may lie within `reach_px` of each other: those sharing a cell
    of a spatial hash. Thousands of boxes pair in milliseconds instead of comparing all of them."""
    buckets: dict[tuple[int, int], list[int]] = {}
    for i, (x1, y1, x2, y2) in enumerate(boxes):
        for cx in range(int(x1 - reach_px) // cell_px, int(x2 + reach_px) // cell_px + 1):
            for cy in range(int(y1 - reach_px) // cell_px, int(y2 + reach_px) // cell_px + 1):
                buckets.setdefault((cx, cy), []).append(i)
    pairs: set[tuple[int, int]] = set()
    for cell in buckets.values():
        for k, i in enumerate(cell):
            for j in cell[k + 1 :]:
                pairs.add((i, j) if i < j else (j, i))
    return pairs


class ExclusiveGroups:
    """Union-find over items that each carry a tag (a tile): a group never holds two items of one tag,
    so two detections one tile made stay two defects however the merging chains."""

    def __init__(self, tags: Sequence[int]) -> None:
        self._parent = list(range(len(tags)))
        self._tags = [frozenset({t}) for t in tags]

    def root(self, i: int) -> int:
        parent = self._parent
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def join(self, i: int, j: int) -> bool:
        """Join the groups of i and j unless they are one already or share a tag; True when joined."""
        ri, rj = self.root(i), self.root(j)
        if ri == rj or self._tags[ri] & self._tags[rj]:
            return False
        self._parent[rj] = ri
        self._tags[ri] = self._tags[ri] | self._tags[rj]
        return True

    def groups(self) -> Iterator[list[int]]:
        by_root: dict[int, list[int]] = {}
        for i in range(len(self._parent)):
            by_root.setdefault(self.root(i), []).append(i)
        return iter(by_root.values())
