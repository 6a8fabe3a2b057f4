"""Large panels (aoi.detection.tiling): tiling covers everything, detections come back in panel coordinates,
overlaps merge, and `TiledInspector` looks like any inspector: small boards pass through, panels are tiled."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import numpy as np
import pytest
from tests.support.pipeline_fakes import FakeInspector, with_defect

from aoi.detection.candidates import CandidateConfig
from aoi.detection.tiling import (
    PanelError,
    TiledInspector,
    TilingConfig,
    inspect_panel,
    merge_tile_defects,
    plan_tiles,
    tile_starts,
)
from aoi.registration import RegistrationConfig, RegistrationError
from aoi.schema import Defect, DefectType, InspectionResult, Verdict
from aoi.verdict import TypeRule, VerdictRules

PX_PER_MM = 20.0


def _panel_template(size_wh: tuple[int, int] = (1000, 900), seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    w, h = size_wh
    template = np.zeros((h, w), np.uint8)
    for _ in range(120):
        x, y = int(rng.integers(0, w - 40)), int(rng.integers(0, h - 12))
        template[y : y + 8, x : x + 36] = 140
    return template


def test_tiles_cover_the_panel_with_the_overlap() -> None:
    assert tile_starts(1000, 256, 32) == [0, 224, 448, 672, 744]
    assert tile_starts(200, 256, 32) == [0]
    tiles = plan_tiles((1000, 900), 256, 32)
    covered = np.zeros((900, 1000), bool)
    for t in tiles:
        covered[t.y_px : t.y_px + t.h_px, t.x_px : t.x_px + t.w_px] = True
        assert (t.w_px, t.h_px) == (256, 256)
    assert covered.all()
    with pytest.raises(PanelError):
        plan_tiles((1000, 900), 256, 200)


def test_defect_straddling_a_tile_border_is_reported_once_in_panel_coordinates() -> None:
    template = _panel_template()
    box = (215, 400, 270, 410)  # crosses x = 224..256, the overlap of the first two tile columns
    corner = (440, 440, 500, 470)  # sits where four tiles meet
    test = with_defect(with_defect(template, box), corner)
    result = inspect_panel(
        FakeInspector(), test, template, px_per_mm=PX_PER_MM, image_id="p1", tile_px=256, overlap_px=32, workers=2
    )
    assert result.image_size_wh == (1000, 900)
    assert [d.box_px for d in result.defects] == [tuple(map(float, box)), tuple(map(float, corner))]
    first = result.defects[0]
    assert first.box_mm == pytest.approx(tuple(v / PX_PER_MM for v in box))
    assert result.verdict is Verdict.FAIL
    overlap_px = int(result.registration["overlap_px"])
    assert overlap_px >= 32  # raised towards the engine's crop window, as far as 256 px tiles allow
    assert result.registration["tiles"] == len(plan_tiles((1000, 900), 256, overlap_px))
    assert result.timings_ms["total"] > 0 and "register" in result.timings_ms


def test_panel_finds_the_same_defects_as_one_whole_inspection() -> None:
    template = _panel_template(seed=1)
    rng = np.random.default_rng(2)
    test = template.copy()
    for _ in range(25):
        x, y = int(rng.integers(0, 960)), int(rng.integers(0, 860))
        test[y : y + int(rng.integers(3, 30)), x : x + int(rng.integers(3, 30))] = 255
    fake = FakeInspector()
    whole = fake.inspect(test, template, image_id="whole", px_per_mm=PX_PER_MM)
    tiled = inspect_panel(fake, test, template, px_per_mm=PX_PER_MM, image_id="tiled", tile_px=200, overlap_px=40)
    assert sorted(d.box_px for d in tiled.defects) == sorted(d.box_px for d in whole.defects)
    np.testing.assert_allclose(
        sorted(d.box_mm for d in tiled.defects), sorted(d.box_mm for d in whole.defects), atol=1e-3
    )


def test_clean_panel_passes_and_rules_apply_to_merged_defects() -> None:
    template = _panel_template()
    clean = inspect_panel(
        FakeInspector(), template.copy(), template, px_per_mm=PX_PER_MM, image_id="c", tile_px=256, overlap_px=32
    )
    assert clean.defects == () and clean.verdict is Verdict.PASS
    one = with_defect(template, (215, 400, 270, 410))  # seen by two tiles, but one defect
    rules = VerdictRules(per_type={DefectType.SHORT: TypeRule(max_count=1)})
    result = inspect_panel(
        FakeInspector(),
        one,
        template,
        px_per_mm=PX_PER_MM,
        image_id="r",
        rules=rules,
        tile_px=256,
        overlap_px=32,
        product="panel-a",
    )
    assert result.verdict is Verdict.PASS and result.product == "panel-a"


def test_template_of_another_size_is_refused() -> None:
    template = _panel_template()
    with pytest.raises(RegistrationError, match="template is"):
        inspect_panel(FakeInspector(), template[:, :-1], template, px_per_mm=PX_PER_MM, image_id="x")


def _d(kind: DefectType, box: tuple[float, float, float, float], conf: float = 0.9) -> Defect:
    return Defect(kind, conf, box).with_mm(PX_PER_MM)


def test_merge_rules() -> None:
    # pieces of one defect cut by a tile edge: same type, touching -> one union box
    cut = merge_tile_defects(
        [(0, _d(DefectType.OPEN, (90, 10, 100, 20))), (1, _d(DefectType.OPEN, (100, 10, 112, 20)))], PX_PER_MM
    )
    assert [d.box_px for d in cut] == [(90.0, 10.0, 112.0, 20.0)]
    assert cut[0].box_mm == pytest.approx((4.5, 0.5, 5.6, 1.0))
    # two boxes from the same tile are the detector's own call: never merged
    same_tile = merge_tile_defects(
        [(0, _d(DefectType.OPEN, (0, 0, 10, 10))), (0, _d(DefectType.OPEN, (2, 2, 12, 12)))], PX_PER_MM
    )
    assert len(same_tile) == 2
    # another type on nearly the same box: one defect, the more confident type wins
    typed = merge_tile_defects(
        [(0, _d(DefectType.SPUR, (0, 0, 10, 10), 0.6)), (1, _d(DefectType.SHORT, (0, 0, 10, 11), 0.8))], PX_PER_MM
    )
    assert [(d.type, d.confidence) for d in typed] == [(DefectType.SHORT, 0.8)]
    # another type merely touching: two defects
    apart = merge_tile_defects(
        [(0, _d(DefectType.SPUR, (0, 0, 10, 10))), (1, _d(DefectType.SHORT, (10, 0, 20, 10)))], PX_PER_MM
    )
    assert len(apart) == 2


class FailingTile(FakeInspector):
    def inspect(self, test, template, *, image_id, **kwargs):  # type: ignore[no-untyped-def,override]
        if image_id.endswith("#t5"):
            raise RegistrationError("template does not match")
        return super().inspect(test, template, image_id=image_id, **kwargs)


def test_a_tile_that_does_not_register_fails_the_panel_with_its_place() -> None:
    template = _panel_template()
    with pytest.raises(RegistrationError, match=r"tile 5 at x=\d+, y=\d+ .*template does not match"):
        inspect_panel(
            FailingTile(),
            template.copy(),
            template,
            px_per_mm=PX_PER_MM,
            image_id="bad",
            tile_px=256,
            overlap_px=32,
            workers=2,
        )


def _shifted(image: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """The image moved by (dx, dy): pixel (x, y) of the result shows (x - dx, y - dy) of the input."""
    out = np.zeros_like(image)
    h, w = image.shape
    out[max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = image[
        max(-dy, 0) : h + min(-dy, 0), max(-dx, 0) : w + min(-dx, 0)
    ]
    return out


def test_whole_panel_shift_is_found_and_tiles_take_moved_template_windows() -> None:
    """A line-scan trigger offset larger than one tile's registration range (the fake has none at all)."""
    template = np.zeros((1400, 1400), np.uint8)
    template[300:1100, 300:1100] = _panel_template((800, 800), seed=4)  # edge tiles stay blank
    panel = with_defect(_shifted(template, 40, -24), (600, 650, 612, 660))
    aligned = inspect_panel(
        FakeInspector(), panel, template, px_per_mm=PX_PER_MM, image_id="s", tile_px=256, overlap_px=32
    )
    assert (aligned.registration["panel_dx"], aligned.registration["panel_dy"]) == (40.0, -24.0)
    assert [d.box_px for d in aligned.defects] == [(600.0, 650.0, 612.0, 660.0)]
    unaligned = inspect_panel(
        FakeInspector(), panel, template, px_per_mm=PX_PER_MM, image_id="u", tile_px=256, overlap_px=32, align=False
    )
    assert len(unaligned.defects) > 10  # without it every copper edge differs


def test_small_or_absent_shift_leaves_windows_in_place() -> None:
    from aoi.detection.tiling import estimate_panel_shift

    template = _panel_template((1200, 1200), seed=6)
    assert estimate_panel_shift(template, template, 512) == (0, 0)
    assert estimate_panel_shift(_shifted(template, 3, -2), template, 512) == (0, 0)  # tile registration's job
    assert estimate_panel_shift(_shifted(template, -70, 35), template, 512) == (-70, 35)
    assert estimate_panel_shift(_shifted(template, -70, 35), template, 50) == (0, 0)  # beyond the allowed range


class ClippedContextNoise(FakeInspector):
    """Like the engine near a tile edge: a view with clipped context calls a defect another type and box."""

    def inspect(self, test, template, *, image_id, origin_px=(0.0, 0.0), **kwargs):  # type: ignore[no-untyped-def,override]
        from dataclasses import replace

        result = super().inspect(test, template, image_id=image_id, origin_px=origin_px, **kwargs)
        noisy = [
            replace(d, type=DefectType.OPEN, box_px=(d.box_px[0], d.box_px[1], d.box_px[2] + 9, d.box_px[3] + 7))
            if d.box_px[0] <= 24 and origin_px[0] > 0
            else d
            for d in result.defects
        ]
        return replace(result, defects=tuple(noisy))


def test_a_view_with_clipped_context_yields_to_the_tile_that_sees_the_defect_whole() -> None:
    template = _panel_template((700, 300), seed=8)
    test = with_defect(template, (200, 100, 210, 110))  # in the overlap [192, 256): near tile 1's left edge
    result = inspect_panel(
        ClippedContextNoise(), test, template, px_per_mm=PX_PER_MM, image_id="e", tile_px=256, overlap_px=64
    )
    assert [(d.type, d.box_px) for d in result.defects] == [(DefectType.SHORT, (200.0, 100.0, 210.0, 110.0))]


class ContextCroppingFake(FakeInspector):
    """Like the engine, classifies each defect from a square window of extent + 2 x 24 px (>= 64) around
    it; where that window runs off the image it calls the defect wrongly (another type, a grown box)."""

    def inspect(self, test, template, *, image_id, **kwargs):  # type: ignore[no-untyped-def,override]
        from dataclasses import replace

        result = super().inspect(test, template, image_id=image_id, **kwargs)
        h, w = test.shape
        calls = []
        for d in result.defects:
            x1, y1, x2, y2 = d.box_px
            half = max(max(x2 - x1, y2 - y1) + 48, 64) / 2
            cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
            clipped = cx - half < 0 or cy - half < 0 or cx + half > w or cy + half > h
            calls.append(replace(d, type=DefectType.OPEN, box_px=(x1 - 3, y1, x2 + 5, y2)) if clipped else d)
        return replace(result, defects=tuple(calls))


def test_defects_straddling_seams_are_called_as_a_whole_inspection_calls_them() -> None:
    template = _panel_template((1000, 900), seed=11)
    # (tile 256 -> overlap raised to 127, tiles at 0, 129, 258, ...): across seams, in overlaps, at a corner
    boxes = [
        (120, 300, 140, 312),
        (250, 500, 290, 506),
        (380, 380, 400, 400),
        (500, 120, 506, 160),
        (630, 640, 700, 648),
    ]
    test = template
    for box in boxes:
        test = with_defect(test, box)
    fake = ContextCroppingFake()
    whole = fake.inspect(test, template, image_id="whole", px_per_mm=PX_PER_MM)
    assert {d.type for d in whole.defects} == {DefectType.SHORT}  # far from the panel's edges: all called right
    tiled = inspect_panel(fake, test, template, px_per_mm=PX_PER_MM, image_id="tiled", tile_px=256, overlap_px=32)
    assert sorted((d.type, d.box_px) for d in tiled.defects) == sorted((d.type, d.box_px) for d in whole.defects)
    assert len(tiled.defects) == len(boxes)


def test_a_defect_wider_than_any_tile_sees_whole_is_merged_from_its_pieces() -> None:
    template = _panel_template((1000, 300), seed=12)
    test = with_defect(template, (100, 150, 420, 154))  # 320 px long: no 256 px tile holds it
    tiled = inspect_panel(
        FakeInspector(), test, template, px_per_mm=PX_PER_MM, image_id="long", tile_px=256, overlap_px=32
    )
    assert [d.box_px for d in tiled.defects] == [(100.0, 150.0, 420.0, 154.0)]


def test_overlap_covers_the_engine_crop_window_of_a_defect_at_a_seam() -> None:
    from aoi.detection.tiling import candidate_window, seam_overlap_px

    assert candidate_window(FakeInspector()) == (24, 64)  # undeclared: the engine's defaults
    wide = SimpleNamespace(meta=SimpleNamespace(candidates=CandidateConfig(context_px=40, min_window_px=96)))
    assert candidate_window(wide) == (40, 96)  # type: ignore[arg-type]
    # a 192 px defect centred half the overlap inside a tile keeps its 192 + 2 x 24 px window (+ slack) in it
    assert seam_overlap_px(24, 64, 192) >= 192 + 48
    template = _panel_template((3000, 600), seed=13)
    result = inspect_panel(
        FakeInspector(), template.copy(), template, px_per_mm=PX_PER_MM, image_id="o", tile_px=1024, overlap_px=96
    )
    assert result.registration["overlap_px"] == seam_overlap_px(24, 64, 192)


class RecordingInspector(FakeInspector):
    """The difference fake, keeping every result it returned and the thread each call ran on."""

    def __init__(self) -> None:
        super().__init__()
        self.results: list[InspectionResult] = []
        self.threads: set[str] = set()
        self.meta = SimpleNamespace(candidates=CandidateConfig())

    def inspect(self, *args, **kwargs) -> InspectionResult:  # type: ignore[no-untyped-def]
        result = super().inspect(*args, **kwargs)
        with self._lock:
            self.results.append(result)
            self.threads.add(threading.current_thread().name)
        return result


def test_tiled_inspector_passes_a_board_within_its_threshold_straight_through() -> None:
    template = _panel_template((500, 400), seed=5)
    test = with_defect(template, (100, 100, 120, 110))
    engine = RecordingInspector()
    tiled = TiledInspector(engine, TilingConfig(threshold_px=500, tile_px=256, overlap_px=32))
    candidates, registration = CandidateConfig(tolerance_px=1.0), RegistrationConfig(subpixel=True)
    result = tiled.inspect(
        test,
        template,
        image_id="b",
        px_per_mm=PX_PER_MM,
        product="board-a",
        origin_px=(10.0, 20.0),
        candidates=candidates,
        registration=registration,
    )
    assert engine.results == [result]  # the wrapped inspector's own result, untouched, from one call
    assert engine.capture_calls == [(candidates, registration)]
    assert result.defects[0].box_mm == pytest.approx((110 / PX_PER_MM, 120 / PX_PER_MM, 130 / PX_PER_MM, 6.5))
    assert tiled.model_version == engine.model_version and tiled.meta is engine.meta
    assert TiledInspector(tiled).inspector is engine  # wrapping a tiled inspector tiles once, not twice


def test_tiled_inspector_tiles_a_panel_over_its_threshold_as_inspect_panel_does() -> None:
    template = _panel_template()
    test = with_defect(with_defect(template, (215, 400, 270, 410)), (440, 440, 500, 470))
    engine = RecordingInspector()
    config = TilingConfig(threshold_px=512, tile_px=256, overlap_px=32, workers=2)
    with TiledInspector(engine, config) as tiled:
        result = tiled.inspect(test, template, image_id="p", px_per_mm=PX_PER_MM, product="panel-a")
        assert tiled.inspect(test, template, image_id="p", px_per_mm=PX_PER_MM).defects == result.defects
    expected = inspect_panel(
        FakeInspector(),
        test,
        template,
        px_per_mm=PX_PER_MM,
        image_id="p",
        product="panel-a",
        tile_px=256,
        overlap_px=32,
    )
    assert result.defects == expected.defects and len(result.defects) == 2
    assert result.registration == expected.registration and result.verdict is expected.verdict
    assert result.image_size_wh == (1000, 900) and result.product == "panel-a"
    assert len(engine.results) == 2 * result.registration["tiles"] > 2  # two panels, every tile once each
    assert all(name.startswith("aoi-panel") for name in engine.threads)  # on the inspector's tile pool


def test_tiled_inspector_moves_a_panels_mm_by_its_origin_and_survives_close() -> None:
    template = _panel_template()
    test = with_defect(template, (215, 400, 270, 410))
    tiled = TiledInspector(FakeInspector(), TilingConfig(threshold_px=512, tile_px=256, overlap_px=32))
    at_origin = tiled.inspect(test, template, image_id="o", px_per_mm=PX_PER_MM)
    tiled.close()  # a later panel starts the tile threads again
    moved = tiled.inspect(test, template, image_id="m", px_per_mm=PX_PER_MM, origin_px=(100.0, 0.0))
    tiled.close()
    assert [d.box_px for d in moved.defects] == [d.box_px for d in at_origin.defects]
    assert moved.defects[0].box_mm == pytest.approx((315 / PX_PER_MM, 20.0, 370 / PX_PER_MM, 20.5))


@pytest.mark.parametrize(
    "fields",
    [
        {"tile_px": 16},
        {"overlap_px": -1},
        {"threshold_px": 512, "tile_px": 1024},  # a tile larger than the largest image inspected whole
        {"workers": 0},
    ],
)
def test_a_tiling_that_cannot_work_is_refused(fields: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        TilingConfig(**fields)
