"""Regression guard: the bundled model on real DeepPCB boards it never trained on (held-out groups)."""

from __future__ import annotations

import pytest

from aoi.data.deeppcb import read_deeppcb
from aoi.detection.inspector import Inspector
from aoi.evaluation.metrics import ImageEval, mean_ap, per_class_ap
from aoi.evaluation.runner import accuracy_report, run_pairs

from .conftest import SHARED_DEEPPCB

# A fixed subset of the validation split: every 3rd pair of each held-out group, in list order.
SUBSET_STEP = 3


@pytest.fixture(scope="module")
def validation_subset():
    if not (SHARED_DEEPPCB / "trainval.txt").is_file():
        pytest.fail(f"DeepPCB trainval not found at {SHARED_DEEPPCB}: the regression test needs ../shared")
    inspector = Inspector.load()
    held_out = set(inspector.meta.training["validation_groups"])
    assert held_out, "the bundled model must name its held-out validation groups"
    pairs = [p for p in read_deeppcb(SHARED_DEEPPCB, "trainval.txt") if p.group in held_out][::SUBSET_STEP]
    assert len(pairs) >= 60
    outcomes = list(run_pairs(inspector, pairs, score_floor=inspector.meta.score_floor, workers=2))
    assert all(o.failure is None for o in outcomes)
    return inspector, [ImageEval(o.detections, o.pair.labels) for o in outcomes]


def test_bundled_model_keeps_map33_on_held_out_boards(validation_subset):
    _, images = validation_subset
    assert mean_ap(per_class_ap(images, 0.33)) >= 0.97


def test_bundled_model_f_score_at_its_calibrated_threshold(validation_subset):
    inspector, images = validation_subset
    report = accuracy_report(images, inspector.meta.threshold)
    assert report.operating_point.f_score >= 0.95
    assert report.deeppcb_map >= 0.95
