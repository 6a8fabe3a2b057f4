"""The engine's own component stats agree with OpenCV's on every mask shape they meet."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from aoi.detection.labelling import label_components


@pytest.mark.parametrize("density", [0.0, 0.02, 0.3, 0.7, 1.0])
def test_boxes_and_areas_match_opencv(density: float) -> None:
    rng = np.random.default_rng(int(density * 100))
    mask = (rng.random((97, 131)) < density).astype(np.uint8)
    n, labels, stats = label_components(mask)
    n_cv, labels_cv, stats_cv, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    assert n == n_cv
    assert np.array_equal(labels, labels_cv)
    assert np.array_equal(stats[1:], stats_cv[1:])
    assert stats[0, 4] == int((mask == 0).sum())


def test_an_empty_mask_has_only_the_background() -> None:
    n, labels, stats = label_components(np.zeros((8, 8), np.uint8))
    assert n == 1 and not labels.any()
    assert stats.tolist() == [[0, 0, 8, 8, 64]]
