"""Box maths shared by the engine, the panel tiler and the metrics."""

from __future__ import annotations

import numpy as np
import pytest

from aoi.detection.boxes import (
    ExclusiveGroups,
    covered_fraction,
    gap_px,
    iou_and_containment,
    iou_matrix,
    nearby_pairs,
    nms,
)


def test_iou_measures_agree_with_hand_computed_values():
    a, b = (0.0, 0.0, 10.0, 10.0), (5.0, 0.0, 15.0, 10.0)
    assert iou_matrix(np.array([a]), np.array([b]))[0, 0] == pytest.approx(50 / 150)
    assert iou_and_containment(a, b) == pytest.approx((50 / 150, 0.5))
    assert iou_and_containment(a, (2.0, 2.0, 4.0, 4.0)) == pytest.approx((0.04, 1.0))
    assert covered_fraction((8.0, 0.0, 12.0, 10.0), a) == pytest.approx(0.5)
    assert gap_px(a, (13.0, 4.0, 20.0, 6.0)) == 3.0 and gap_px(a, b) == 0.0
    assert iou_matrix(np.zeros((0, 4)), np.array([a])).shape == (0, 1)


def test_nms_keeps_the_best_of_overlapping_boxes_and_every_separate_one():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60], [0, 0, 10, 10.5]], float)
    scores = np.array([0.6, 0.9, 0.5, 0.7])
    assert nms(boxes, scores, 0.5).tolist() == [1, 2]
    assert sorted(nms(boxes, scores, 0.99).tolist()) == [0, 1, 2, 3]


def test_nearby_pairs_finds_every_pair_within_reach_that_brute_force_finds():
    rng = np.random.default_rng(3)
    xy = rng.uniform(0, 2000, (300, 2))
    wh = rng.uniform(1, 40, (300, 2))
    boxes = [tuple(v) for v in np.concatenate([xy, xy + wh], 1)]
    found = nearby_pairs(boxes, cell_px=256, reach_px=1.0)
    brute = {(i, j) for i in range(300) for j in range(i + 1, 300) if gap_px(boxes[i], boxes[j]) <= 1.0}
    assert brute <= found
    assert len(found) < 300 * 299 // 2 // 4  # the hash prunes far pairs


def test_exclusive_groups_never_hold_two_items_of_one_tag():
    groups = ExclusiveGroups([0, 1, 0, 2])
    assert groups.join(0, 1) and groups.join(1, 3)
    assert not groups.join(3, 2)  # 2 shares tag 0 with item 0, already in the group
    assert not groups.join(0, 3)  # already one group
    assert sorted(sorted(g) for g in groups.groups()) == [[0, 1, 3], [2]]
