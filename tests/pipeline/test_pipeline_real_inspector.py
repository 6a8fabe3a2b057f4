"""End to end with the real engine and the bundled default model."""

from __future__ import annotations

import numpy as np
import pytest

from aoi.detection.tiling import inspect_panel
from aoi.pipeline import LinePipeline, MemorySink
from aoi.schema import InspectionResult


@pytest.fixture(scope="module")
def inspector():  # type: ignore[no-untyped-def]
    from aoi.detection.inspector import Inspector

    return Inspector.load()  # a missing bundled model is a failure, not a skip


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def test_pipeline_with_the_real_inspector(inspector) -> None:  # type: ignore[no-untyped-def]
    from aoi.data import synthetic

    pairs = [synthetic.make_pair(np.random.default_rng(seed)) for seed in range(3)]
    sink = MemorySink()
    with LinePipeline(inspector, sink) as line:
        futures = [line.submit(p.test, template=p.template) for p in pairs]
        results = [f.result(timeout=60).result for f in futures]
    assert all(isinstance(r, InspectionResult) and r.model_version == inspector.model_version for r in results)
    found = sum(
        any(_iou(d.box_px, lab.box_px) > 0.3 for d in r.defects)
        for p, r in zip(pairs, results, strict=True)
        for lab in p.labels
    )
    assert found >= 0.5 * sum(len(p.labels) for p in pairs)  # the engine finds most painted defects


def test_panel_matches_board_by_board_with_the_real_inspector(inspector) -> None:  # type: ignore[no-untyped-def]
    from aoi.data import synthetic

    boards = [synthetic.make_pair(np.random.default_rng(10 + i)) for i in range(4)]
    size = boards[0].test.shape[0]
    panel = np.block([[boards[0].test, boards[1].test], [boards[2].test, boards[3].test]])
    template = np.block([[boards[0].template, boards[1].template], [boards[2].template, boards[3].template]])
    result = inspect_panel(inspector, panel, template, px_per_mm=48.0, image_id="panel", tile_px=size, overlap_px=96)
    reference = []
    for k, (gy, gx) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):
        r = inspector.inspect(boards[k].test, boards[k].template, image_id=f"b{k}")
        ox, oy = gx * size, gy * size
        reference += [
            (d.type, (d.box_px[0] + ox, d.box_px[1] + oy, d.box_px[2] + ox, d.box_px[3] + oy)) for d in r.defects
        ]
    matched = sum(any(d.type == t and _iou(d.box_px, box) >= 0.5 for d in result.defects) for t, box in reference)
    assert matched >= 0.9 * len(reference)
    assert len(result.defects) <= len(reference) + 2
    assert result.image_size_wh == (2 * size, 2 * size)
