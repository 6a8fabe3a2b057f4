"""Regression guard for the bundled model on real DeepPCB boards and on synthetic fine-pitch substrates.

The bundled model is trained on every DeepPCB trainval group (its threshold chosen by leave-one-group-out
cross-validation), so the DeepPCB subset here is a guard against regressions, not an accuracy claim: the
held-out figures are `aoi cv`'s, in docs/benchmarks.md. The substrate designs are drawn from seeds that
training never used.
"""

from __future__ import annotations

import pytest
from tests.support.datasets import SHARED_DEEPPCB

from aoi.data.deeppcb import read_deeppcb
from aoi.detection.inspector import Inspector
from aoi.evaluation.metrics import ImageEval, mean_ap, per_class_ap
from aoi.evaluation.runner import accuracy_report, run_pairs

# A fixed subset: every 3rd pair of the held-out groups, or every 8th of all when the model saw every group.
SUBSET_STEP = 3
ALL_GROUPS_STEP = 8


@pytest.fixture(scope="module")
def validation_subset():
    if not (SHARED_DEEPPCB / "trainval.txt").is_file():
        pytest.fail(f"DeepPCB trainval not found at {SHARED_DEEPPCB}: the regression test needs ../shared")
    inspector = Inspector.load()
    held_out = set(inspector.meta.training.get("validation_groups", []))
    everything = read_deeppcb(SHARED_DEEPPCB, "trainval.txt")
    if held_out:
        pairs = [p for p in everything if p.group in held_out][::SUBSET_STEP]
    else:
        assert "operating_point" in inspector.meta.metrics, "a model trained on every group needs a CV threshold"
        pairs = everything[::ALL_GROUPS_STEP]
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


def test_bundled_model_on_unseen_fine_pitch_substrate_designs():
    from aoi.evaluation.substrate_bench import run_substrate_bench

    report = run_substrate_bench(Inspector.load(), designs=2, per_type=2, seed=777)
    assert report["found_rate"]["open"] == 1.0 and report["found_rate"]["short"] == 1.0
    assert report["found_all"] >= 0.9
    assert report["false_calls_per_clean_capture"] <= 0.5
