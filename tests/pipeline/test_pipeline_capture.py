"""A product's capture setup reaches the engine on every road of the line: a whole image, every tile of a
panel, and a file that brings its own template; built once per setup from the inspector's bundle."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from tests.support.pipeline_fakes import FakeInspector, paint_board, with_defect

from aoi.detection.candidates import CandidateConfig
from aoi.detection.tiling import TiledInspector, TilingConfig, inspect_panel
from aoi.pipeline import (
    CaptureResolver,
    CaptureSettings,
    LinePipeline,
    MemorySink,
    PipelineConfig,
    ProductRecipe,
    StaticTemplateProvider,
)
from aoi.registration import RegistrationConfig
from aoi.schema import SchemaError
from aoi.verdict import VerdictRules

FINE = CaptureSettings.from_dict(
    {
        "registration": {"subpixel": True},
        "candidates": {"tolerance_px": 1.0, "tolerance_metric": "euclidean", "topology": True, "min_area_px": 1},
    }
)


@dataclass(frozen=True)
class BundleMeta:
    candidates: CandidateConfig
    registration: RegistrationConfig


class BundledFake(FakeInspector):
    """The fake inspector with a bundle's settings declared, as `Inspector.meta` does."""

    meta = BundleMeta(CandidateConfig(tolerance_px=2.0, thin_group_px=3), RegistrationConfig(max_shift_px=40))


def test_a_setup_overrides_only_its_fields_and_is_resolved_once() -> None:
    resolver = CaptureResolver(BundledFake())
    configs = resolver.resolve(FINE)
    assert configs.candidates is not None and configs.registration is not None
    assert configs.candidates.tolerance_px == 1.0 and configs.candidates.tolerance_metric == "euclidean"
    assert configs.candidates.thin_group_px == 3  # the bundle's, not the engine default
    assert configs.registration == RegistrationConfig(max_shift_px=40, subpixel=True)
    same = CaptureSettings.from_dict(FINE.to_dict())  # another product (or a reload) with an equal setup
    assert resolver.resolve(same) is configs
    assert resolver.resolve(None).candidates is None and resolver.resolve(None).registration is None
    only_band = resolver.resolve(CaptureSettings(candidates={"tolerance_px": 1.5}))
    assert only_band.registration is None  # nothing overridden there: the inspector's own


def test_bad_settings_are_refused_when_built() -> None:
    with pytest.raises(SchemaError, match="'copper_dark'"):
        CaptureSettings(candidates={"copper_dark": False})  # the model's polarity is not a capture setting
    with pytest.raises(SchemaError, match="capture.registration.subpixel must be true or false"):
        CaptureSettings.from_dict({"registration": {"subpixel": 1}})


def test_line_inspects_images_and_panel_tiles_with_their_products_setup() -> None:
    rng = np.random.default_rng(0)
    small = paint_board(rng, 128)
    panel = np.zeros((400, 400), np.uint8)
    panel[40:360:20, 40:360] = 160
    products = StaticTemplateProvider(
        {
            "fine": ProductRecipe(small, 10.0, VerdictRules(), capture=FINE),
            "plain": ProductRecipe(small, 10.0, VerdictRules()),
            "fine-panel": ProductRecipe(panel, 10.0, VerdictRules(), capture=FINE),
        }
    )
    inspector = BundledFake()
    config = PipelineConfig(recipe_cache_ttl_s=0)
    tiled = TiledInspector(inspector, TilingConfig(threshold_px=256, tile_px=160))
    with tiled, LinePipeline(tiled, MemorySink(), products, config) as line:
        expected = line.capture.resolve(FINE)
        line.submit(with_defect(small, (10, 10, 14, 20)), product="fine").result(timeout=5)
        assert inspector.capture_calls == [(expected.candidates, expected.registration)]
        line.submit(small, product="plain").result(timeout=5)
        assert inspector.capture_calls[-1] == (None, None)
        # an explicit template (a hot-folder sibling) still takes the product's setup
        line.submit(small, template=small.copy(), product="fine").result(timeout=5)
        assert inspector.capture_calls[-1] == (expected.candidates, expected.registration)
        inspector.capture_calls.clear()
        result = line.submit(panel, product="fine-panel").result(timeout=5).result
    assert result.registration["tiles"] > 1
    assert len(inspector.capture_calls) == result.registration["tiles"]
    assert all(c is expected.candidates and r is expected.registration for c, r in inspector.capture_calls)


def test_inspect_panel_gives_every_tile_the_same_setup() -> None:
    panel = np.zeros((300, 300), np.uint8)
    panel[30:270:15, 30:270] = 160
    inspector = FakeInspector()
    configs = CaptureResolver(inspector).resolve(FINE)
    result = inspect_panel(
        inspector,
        panel,
        panel.copy(),
        px_per_mm=10.0,
        image_id="p",
        tile_px=128,
        workers=1,
        candidates=configs.candidates,
        registration=configs.registration,
    )
    assert len(inspector.capture_calls) == result.registration["tiles"] > 1
    assert set(inspector.capture_calls) == {(configs.candidates, configs.registration)}
