import pytest

from aoi.data.annotations import LabeledBox
from aoi.evaluation.metrics import (
    ImageEval,
    best_threshold,
    confusion_matrix,
    deeppcb_ap,
    deeppcb_operating_point,
    per_class_ap,
)
from aoi.schema import Defect, DefectType

OPEN, SHORT = DefectType.OPEN, DefectType.SHORT


def gt(t, x):
    return LabeledBox(t, (x, 0, x + 20, 20))


def det(t, x, c):
    return Defect(t, c, (x, 0, x + 20, 20))


def test_perfect_detections_score_one():
    im = ImageEval([det(OPEN, 0, 0.9), det(SHORT, 100, 0.8)], [gt(OPEN, 0), gt(SHORT, 100)])
    assert deeppcb_ap([im]) == pytest.approx(1.0)
    op = deeppcb_operating_point([im], 0.5)
    assert (op.precision, op.recall, op.f_score) == (1.0, 1.0, 1.0)
    assert per_class_ap([im], 0.5) == {"open": 1.0, "short": 1.0}


def test_wrong_type_pairs_cost_a_miss_and_a_false_alarm():
    # The protocol pairs by overlap whatever the type: a wrong-type detection takes the truth box.
    im = ImageEval([det(SHORT, 0, 0.9), det(OPEN, 0, 0.5)], [gt(OPEN, 0)])
    op = deeppcb_operating_point([im], 0.1)
    assert op.correct == 0 and op.n_detections == 2
    assert deeppcb_ap([im]) == 0.0
    conf = confusion_matrix([im], 0.1)
    assert conf["open"]["short"] == 1 and conf["background"]["open"] == 1


def test_pooled_ap_hand_computed():
    # Ranked: TP (p=1), FP, TP (p=2/3); 3 truths -> AP = (1 + 2/3) / 3
    dets = [det(OPEN, 0, 0.9), det(OPEN, 300, 0.8), det(OPEN, 100, 0.7)]
    im = ImageEval(dets, [gt(OPEN, 0), gt(OPEN, 100), gt(OPEN, 200)])
    assert deeppcb_ap([im]) == pytest.approx((1 + 2 / 3) / 3)


def test_best_threshold_drops_low_confidence_false_alarms():
    im = ImageEval([det(OPEN, 0, 0.9), det(OPEN, 300, 0.2)], [gt(OPEN, 0)])
    op = best_threshold([im])
    assert op.f_score == 1.0 and op.threshold > 0.2


def test_iou_must_exceed_0_33():
    matched = ImageEval([Defect(OPEN, 0.9, (10, 0, 30, 20))], [gt(OPEN, 0)])  # IoU = 10/30 = 0.333 > 0.33
    missed = ImageEval([Defect(OPEN, 0.9, (11, 0, 31, 20))], [gt(OPEN, 0)])  # IoU = 9/31 = 0.29
    assert deeppcb_operating_point([matched], 0.5).correct == 1
    assert deeppcb_operating_point([missed], 0.5).correct == 0


def test_touching_scratch_pieces_merge_into_one():
    from aoi.detection.inspector import merge_line_pieces

    scratch = DefectType.SCRATCH
    pieces = [
        Defect(scratch, 0.9, (0, 0, 40, 10)),
        Defect(scratch, 0.7, (38, 5, 90, 20)),  # touches the first
        Defect(scratch, 0.8, (200, 200, 240, 210)),  # apart
        Defect(OPEN, 0.95, (30, 0, 50, 10)),  # other types are left alone
    ]
    merged = merge_line_pieces(pieces, scratch, gap_px=0)
    scratches = sorted((d for d in merged if d.type is scratch), key=lambda d: d.box_px)
    assert [d.box_px for d in scratches] == [(0, 0, 90, 20), (200, 200, 240, 210)]
    assert scratches[0].confidence == 0.9
    assert sum(d.type is OPEN for d in merged) == 1
