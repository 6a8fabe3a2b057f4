"""The fine-pitch substrate generator: every type painted at line scale, where its name says."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from aoi.data.substrate import capture, generate_design, paint_substrate_defect
from aoi.schema import DefectType


def _conductors(mask: np.ndarray) -> int:
    return cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)[0] - 1


def test_design_has_fine_pitch_lines():
    design = generate_design(np.random.default_rng(0))
    widths = {s.width_px for s in design.stretches}
    assert widths and all(3 <= w <= 7 for w in widths)
    assert all(0 <= s.space_px <= 6 for s in design.stretches)


@pytest.mark.parametrize("kind,change", [(DefectType.OPEN, 1), (DefectType.SHORT, -1), (DefectType.MOUSEBITE, 0),
                                         (DefectType.COPPER, 1)])  # fmt: skip
def test_painters_change_connectivity_as_their_type_says(kind, change):
    rng = np.random.default_rng(4)
    design = generate_design(rng)
    before = _conductors(design.copper)
    after = _conductors(paint_substrate_defect(design, design.copper, kind, rng))
    assert after - before == change


def test_every_type_gets_a_box_and_good_captures_none():
    rng = np.random.default_rng(2)
    design = generate_design(rng)
    for kind in DefectType:
        cap = capture(design, rng, kind, shifted=True)
        assert len(cap.labels) == 1 and cap.labels[0].type is kind
        x1, y1, x2, y2 = cap.labels[0].box_px
        assert 0 < x2 - x1 < 200 and 0 < y2 - y1 < 200
    assert capture(design, rng, None, shifted=True).labels == ()
