"""Demo source: a synthetic line feeds boards continuously."""

from __future__ import annotations

import numpy as np
import pytest
from tests.support.pipeline_fakes import FakeInspector, paint_board, with_defect

from aoi.pipeline import DemoSource, LinePipeline, MemorySink


def _painted_pair(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    template = paint_board(rng)
    return template, with_defect(template, (40, 40, 48, 44))


def test_demo_source_feeds_the_line_at_its_rate() -> None:
    sink = MemorySink()
    source = DemoSource(rate_hz=200.0, limit=12, seed=1, pair_factory=_painted_pair)
    with LinePipeline(FakeInspector(), sink) as line:
        line.add_source(source)
        while line.metrics()["counts"]["stored"] < 12:
            line.wait_idle(0.05)
    assert len(sink.results) == 12
    assert all(r.product == "demo" and len(r.defects) == 1 for r in sink.results)


def test_demo_source_uses_the_synthetic_board_generator() -> None:
    pytest.importorskip("aoi.data.synthetic")
    source = DemoSource(rate_hz=1000.0, limit=2, seed=0)
    import threading

    captured = list(source.frames(threading.Event()))
    assert len(captured) == 2
    for item in captured:
        assert item.image is not None and item.template is not None
        assert item.image.shape == item.template.shape and item.image.dtype == np.uint8
        assert not np.array_equal(item.image, item.template)  # defects were painted in


def test_demo_rate_must_be_positive() -> None:
    with pytest.raises(ValueError, match="rate_hz"):
        DemoSource(rate_hz=0)
