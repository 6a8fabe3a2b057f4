import pytest

from aoi.schema import Defect, DefectType, InspectionResult, SchemaError, Verdict
from aoi.verdict import TypeRule, VerdictRules


def test_defect_round_trip_and_mm():
    d = Defect(type="pin-hole", confidence=0.9, box_px=(48, 96, 96, 144)).with_mm(48.0)
    assert d.type is DefectType.PIN_HOLE
    assert d.box_mm == (1.0, 2.0, 2.0, 3.0)
    assert Defect.from_dict(d.to_dict()) == d


@pytest.mark.parametrize(
    "kwargs",
    [
        {"type": "crack", "confidence": 0.5, "box_px": (0, 0, 1, 1)},
        {"type": "open", "confidence": 1.5, "box_px": (0, 0, 1, 1)},
        {"type": "open", "confidence": 0.5, "box_px": (5, 0, 1, 1)},
        {"type": "open", "confidence": 0.5, "box_px": (0, 0, 1)},
        {"type": "open", "confidence": float("nan"), "box_px": (0, 0, 1, 1)},
    ],
)
def test_defect_rejects_bad_values(kwargs):
    with pytest.raises(SchemaError):
        Defect(**kwargs)


def test_result_round_trip():
    r = InspectionResult(
        image_id="a",
        image_size_wh=(640, 640),
        verdict=Verdict.FAIL,
        px_per_mm=48.0,
        model_version="m",
        defects=(Defect(DefectType.OPEN, 0.8, (1, 2, 3, 4)),),
        timings_ms={"total": 3.0},
    )
    assert InspectionResult.from_dict(r.to_dict()) == r
    with pytest.raises(SchemaError):
        InspectionResult.from_dict({"image_id": "a"})


def test_verdict_rules_count_and_size():
    small = Defect(DefectType.COPPER, 0.9, (0, 0, 4, 4))  # 4 px = 83 um at 48 px/mm
    big = Defect(DefectType.COPPER, 0.9, (0, 0, 20, 20))
    rules = VerdictRules(per_type={DefectType.COPPER: TypeRule(max_count=1, min_size_um=100)})
    assert rules.verdict([small, small, small], 48.0) is Verdict.PASS  # all below the size that counts
    assert rules.verdict([big], 48.0) is Verdict.PASS
    assert rules.verdict([big, big], 48.0) is Verdict.FAIL
    assert VerdictRules().verdict([small], 48.0) is Verdict.FAIL  # default: any defect fails
    assert VerdictRules.from_dict(rules.to_dict()) == rules
    with pytest.raises(SchemaError):
        VerdictRules.from_dict({"per_type": {"open": {"max_count": -1}}})


def test_verdict_rules_refuse_what_would_pass_a_failing_board():
    """min_confidence 2 ignored every defect: a board with a 0.993 short passed."""
    short = Defect(DefectType.SHORT, 0.993, (0, 0, 20, 20))
    assert VerdictRules(min_confidence=1.0).verdict([short], 48.0) is Verdict.PASS  # the top of the range
    for bad in (2, -0.1, float("nan"), float("inf"), "0.5", True):
        with pytest.raises(SchemaError, match="min_confidence"):
            VerdictRules(min_confidence=bad)  # type: ignore[arg-type]
    for count in (-1, 2.5, True, 10**7):
        with pytest.raises(SchemaError, match="max_count"):
            TypeRule(max_count=count)  # type: ignore[arg-type]
    with pytest.raises(SchemaError, match="min_size_um"):
        TypeRule(min_size_um=float("nan"))
    with pytest.raises(SchemaError, match="unknown key"):
        VerdictRules.from_dict({"min_confidence": 0.5, "per_typ": {}})
    assert VerdictRules.from_dict({"default": {"max_count": 2.0}}).default.max_count == 2  # JSON 2.0
