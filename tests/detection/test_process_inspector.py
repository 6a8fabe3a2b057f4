"""The engine in worker processes: the same results as in-process, errors carried back by type, a killed
worker costing only the image it held (the service's use: tests/api/test_engine_processes.py)."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal

import numpy as np
import pytest

from aoi.data.synthetic import make_pair
from aoi.detection.inspector import Inspector
from aoi.detection.process_inspector import EngineWorkerLost, ProcessInspector
from aoi.detection.tiling import TiledInspector, TilingConfig
from aoi.registration import RegistrationError


@pytest.fixture(scope="module")
def engine():
    with ProcessInspector.load(processes=2) as inspector:
        yield inspector


def test_worker_processes_report_what_the_engine_in_process_reports(engine: ProcessInspector) -> None:
    local = Inspector.load()
    assert engine.model_version == local.model_version and engine.meta == local.meta
    rng = np.random.default_rng(5)
    for i in range(4):
        pair = make_pair(rng, n_defects=(2, 5), misalign=i % 2 == 1)
        want = local.inspect(pair.test, pair.template, image_id=f"b{i}", px_per_mm=40.0, product="p")
        got = engine.inspect(pair.test, pair.template, image_id=f"b{i}", px_per_mm=40.0, product="p")
        assert got.defects == want.defects and got.verdict == want.verdict
        assert got.product == "p" and got.px_per_mm == 40.0
    # a panel through the tiling: its tiles go to the workers
    pair = make_pair(rng, n_defects=(3, 5), size_wh=(1400, 700))
    tiling = TilingConfig(threshold_px=640, tile_px=640, overlap_px=96, workers=2)
    want = TiledInspector(local, tiling).inspect(pair.test, pair.template, image_id="panel")
    got = TiledInspector(engine, tiling).inspect(pair.test, pair.template, image_id="panel")
    assert got.defects == want.defects


def test_an_engine_error_comes_back_as_its_own_type(engine: ProcessInspector) -> None:
    pair = make_pair(np.random.default_rng(6))
    with pytest.raises(RegistrationError, match="does not match"):
        engine.inspect(pair.test, np.full_like(pair.template, 255), image_id="other-board")
    with pytest.raises(ValueError):
        engine.inspect(pair.test, pair.template[:, :-3], image_id="other-size")
    assert engine.inspect(pair.test, pair.template, image_id="fine").image_id == "fine"


def test_a_killed_worker_fails_only_its_image_and_the_engine_serves_on() -> None:
    pair = make_pair(np.random.default_rng(7), n_defects=(2, 3))
    with ProcessInspector.load(processes=1) as engine:
        first = engine.inspect(pair.test, pair.template, image_id="before")
        for child in mp.active_children():
            os.kill(child.pid, signal.SIGKILL)  # type: ignore[arg-type]
        with pytest.raises(EngineWorkerLost, match="lost-one"):
            engine.inspect(pair.test, pair.template, image_id="lost-one")
        again = engine.inspect(pair.test, pair.template, image_id="after")
        assert again.defects == first.defects
