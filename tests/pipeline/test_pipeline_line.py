"""The line: uploads, back-pressure, drop policy for live sources, graceful drain, per-image failures."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from tests.support.pipeline_fakes import FakeInspector, paint_board, with_defect

from aoi.detection.tiling import TiledInspector, TilingConfig
from aoi.pipeline import (
    CapturedImage,
    InlineTemplate,
    LinePipeline,
    MemorySink,
    Outcome,
    OutcomeStatus,
    PipelineBusy,
    PipelineConfig,
    PipelineStopped,
    ProductRecipe,
    ProductRef,
    ProductTemplate,
    QueuePolicy,
    StaticTemplateProvider,
    TemplateFile,
    UnknownProductError,
    UploadExtras,
)
from aoi.pipeline.trace import TraceSettings
from aoi.registration import RegistrationError
from aoi.schema import DefectType, InspectionResult, Trace, Verdict
from aoi.verdict import TypeRule, VerdictRules


class ListSource:
    """A finite source of prepared images with a chosen full-queue policy; records acks."""

    def __init__(self, name: str, items: list[CapturedImage], policy: QueuePolicy) -> None:
        self.name = name
        self.policy = policy
        self.items = items
        self.outcomes: list[Outcome] = []
        self._lock = threading.Lock()
        for item in items:
            item.on_done = self._record

    def _record(self, outcome: Outcome) -> None:
        with self._lock:
            self.outcomes.append(outcome)

    def frames(self, stop: threading.Event) -> Iterator[CapturedImage]:
        for item in self.items:
            if stop.is_set():
                return
            yield item


def _pairs(n: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        template = paint_board(rng)
        out.append((template, with_defect(template, (10, 10, 14, 20))))
    return out


def _captured(n: int, prefix: str) -> list[CapturedImage]:
    return [
        CapturedImage(source_key=f"{prefix}:{i}", image=test, template=template, image_id=f"{prefix}-{i}")
        for i, (template, test) in enumerate(_pairs(n))
    ]


def test_upload_returns_stored_result_with_product_rules() -> None:
    template, test = _pairs(1)[0]
    rules = VerdictRules(per_type={DefectType.SHORT: TypeRule(max_count=1)})
    products = StaticTemplateProvider({"board-a": ProductRecipe(template, px_per_mm=10.0, rules=rules)})
    sink = MemorySink()
    with LinePipeline(FakeInspector(), sink, products) as line:
        stored = line.submit(test, product="board-a", source_key="upload:1").result(timeout=5)
        passed = stored.result
        failing = with_defect(test, (50, 50, 60, 60))
        failed = line.submit(failing, product="board-a").result(timeout=5).result
    assert isinstance(passed, InspectionResult)
    assert passed.verdict is Verdict.PASS and failed.verdict is Verdict.FAIL  # 1 short tolerated, 2 are not
    assert passed.defects[0].box_px == (10.0, 10.0, 14.0, 20.0)
    assert passed.defects[0].box_mm == (1.0, 1.0, 1.4, 2.0)  # the product's 10 px/mm
    assert sink.already_done("upload:1")
    by_key = {r.source_key: r for r in sink.records}
    assert by_key["upload:1"].inspection_id == stored.inspection_id
    assert by_key["upload:1"].template == ProductTemplate(ProductRef("board-a", "board-a"))


def test_upload_errors_reach_the_caller_and_the_sink() -> None:
    template, test = _pairs(1)[0]
    sink = MemorySink()
    with LinePipeline(FakeInspector(), sink, StaticTemplateProvider()) as line:
        wrong_size = line.submit(test, template=template[:64, :64])
        unknown = line.submit(test, product="nope")
        with pytest.raises(RegistrationError):
            wrong_size.result(timeout=5)
        with pytest.raises(UnknownProductError):
            unknown.result(timeout=5)
        with pytest.raises(ValueError, match="product id or a template"):
            line.submit(test)
    assert {f.error for f in sink.failures} == {"RegistrationError", "UnknownProductError"}
    assert line.metrics()["counts"]["failed"] == 2


def test_bad_images_in_a_batch_do_not_stop_the_rest() -> None:
    items = _captured(20, "batch")
    items[3].image = np.zeros((10, 10), np.uint8)  # below the 32x32 minimum
    items[7].template = items[7].template[:, :100]  # template of another size
    items[11].image = None  # a loader that fails, like a truncated file
    items[11].load = lambda: (_ for _ in ()).throw(OSError("truncated"))
    source = ListSource("batch", items, QueuePolicy.BLOCK)
    sink = MemorySink()
    with LinePipeline(FakeInspector(), sink, config=PipelineConfig(inspect_workers=2)) as line:
        line.add_source(source)
        line.wait_idle(5)
        while len(source.outcomes) < 20:
            line.wait_idle(0.05)
    statuses = {o.source_key: o.status for o in source.outcomes}
    assert {k for k, s in statuses.items() if s is OutcomeStatus.FAILED} == {"batch:3", "batch:7", "batch:11"}
    assert len(sink.results) == 17 and len(sink.failures) == 3
    assert {f.error for f in sink.failures} == {"ImageError", "RegistrationError", "OSError"}
    assert all(len(r.defects) == 1 for r in sink.results)


def test_graceful_stop_drains_every_accepted_item() -> None:
    sink = MemorySink()
    source = ListSource("folder", _captured(40, "hf"), QueuePolicy.BLOCK)
    config = PipelineConfig(inspect_workers=2, inspect_queue=4, store_queue=2)
    line = LinePipeline(FakeInspector(delay_s=0.01), sink, config=config).start()
    line.add_source(source)
    uploads = [line.submit(test, template=template) for template, test in _pairs(5, seed=1)]
    line.stop()
    metrics = line.metrics()
    accepted = metrics["counts"]["accepted"]
    assert accepted >= 5 + 1
    assert metrics["counts"]["stored"] == accepted == len(sink.records)
    assert metrics["in_flight"] == 0 and metrics["counts"]["dropped"] == 0
    assert all(f.done() and f.exception() is None for f in uploads)
    assert len(source.outcomes) == metrics["sources"]["folder"]["accepted"]
    with pytest.raises(PipelineStopped):
        line.submit(np.zeros((64, 64), np.uint8), template=np.zeros((64, 64), np.uint8))


def test_live_source_drops_oldest_and_counts_but_uploads_are_kept() -> None:
    gate = threading.Event()
    sink = MemorySink()
    camera = ListSource("camera", _captured(30, "cam"), QueuePolicy.DROP_OLDEST)
    config = PipelineConfig(inspect_workers=1, inspect_queue=3)
    with LinePipeline(FakeInspector(gate=gate), sink, config=config) as line:
        template, test = _pairs(1)[0]
        first = line.submit(test, template=template)  # taken by the worker, which waits on the gate
        while line.metrics()["queues"]["inspect"]["depth"]:
            line.wait_idle(0.01)
        upload = line.submit(test, template=template)  # waits in the queue the camera floods
        line.add_source(camera)
        while line.metrics()["sources"]["camera"]["captured"] < 30:
            line.wait_idle(0.01)
        gate.set()
        line.wait_idle(5)
    m = line.metrics()
    cam = m["sources"]["camera"]
    assert cam["dropped"] > 20  # one worker stuck, three slots: nearly all frames go
    assert cam["dropped"] + len([r for r in sink.records if r.source_key.startswith("cam:")]) == 30
    assert m["counts"]["dropped"] == cam["dropped"] == m["queues"]["inspect"]["drops"]
    assert first.result(timeout=5).result.image_id and upload.result(timeout=5).result.image_id
    dropped = [o for o in camera.outcomes if o.status is OutcomeStatus.DROPPED]
    assert len(dropped) == cam["dropped"]
    kept = sorted(int(r.source_key.split(":")[1]) for r in sink.records if r.source_key.startswith("cam:"))
    assert kept[-1] == 29  # the newest frames survive, the oldest were dropped


def test_upload_blocks_then_raises_busy_when_the_queue_stays_full() -> None:
    gate = threading.Event()
    template, test = _pairs(1)[0]
    config = PipelineConfig(inspect_workers=1, inspect_queue=1)
    line = LinePipeline(FakeInspector(gate=gate), MemorySink(), config=config).start()
    try:
        first = line.submit(test, template=template)  # taken by the worker, which waits on the gate
        while line.metrics()["queues"]["inspect"]["depth"]:
            line.wait_idle(0.01)
        second = line.submit(test, template=template)  # fills the queue
        with pytest.raises(PipelineBusy):
            line.submit(test, template=template, timeout_s=0.1)
        gate.set()
        assert first.result(timeout=5) and second.result(timeout=5)
    finally:
        gate.set()
        line.stop()
    assert line.metrics()["counts"]["accepted"] == 2


def test_the_sink_gets_the_template_a_capture_brought_a_file_or_the_product_resolved_once() -> None:
    """A template that came with the image (demo, camera, upload) and names no file reaches the sink as
    pixels, so it is stored with the board; a template file by its path; a product's recipe template as the
    product the provider resolved (referenced, not copied). Each names the product that labels the board."""
    (own_template, own_test), (recipe_template, recipe_test) = _pairs(2)
    board_a = ProductRef("a-id", "board-a")
    recipe = ProductRecipe(recipe_template, px_per_mm=10.0, rules=VerdictRules(), product=board_a)
    products = StaticTemplateProvider({"board-a": recipe})
    sink = MemorySink()
    template_file = Path("/inbox/x_temp.png")
    with_file = CapturedImage("hotfolder:x", own_test, "board-a", own_template, template_file=template_file)
    with LinePipeline(FakeInspector(), sink, products) as line:
        line.add_source(ListSource("folder", [with_file], QueuePolicy.BLOCK))
        own = line.submit(own_test, template=own_template, product="board-a", source_key="demo:s:0").result(timeout=5)
        by_recipe = line.submit(recipe_test, product="board-a", source_key="upload:r").result(timeout=5)
        unlabelled = line.submit(own_test, template=own_template, source_key="upload:u").result(timeout=5)
        while len(sink.records) < 4:
            line.wait_idle(0.05)
    origins = {r.source_key: r.template for r in sink.records}
    inline = origins["demo:s:0"]
    assert isinstance(inline, InlineTemplate) and inline.product == board_a
    assert np.array_equal(inline.image, own_template)
    assert origins["hotfolder:x"] == TemplateFile(template_file, board_a)
    assert origins["upload:r"] == ProductTemplate(board_a)
    assert isinstance(origins["upload:u"], InlineTemplate) and origins["upload:u"].product is None
    assert own.result.product == "board-a"  # the product still labels a board that brought its own template
    assert by_recipe.inspection_id and unlabelled.inspection_id


class FlakySink(MemorySink):
    def __init__(self) -> None:
        super().__init__()
        self.fail_next = True

    def store(self, result, test_image, template, source_key, *, upload=None):  # type: ignore[no-untyped-def]
        if self.fail_next:
            self.fail_next = False
            raise OSError("database is locked")
        return super().store(result, test_image, template, source_key, upload=upload)


def test_sink_error_is_reported_and_the_line_keeps_running() -> None:
    template, test = _pairs(1)[0]
    sink = FlakySink()
    source = ListSource("one", _captured(1, "once"), QueuePolicy.BLOCK)
    with LinePipeline(FakeInspector(), sink) as line:
        line.add_source(source)
        line.wait_idle(5)
        while not source.outcomes:
            line.wait_idle(0.01)
        assert source.outcomes[0].status is OutcomeStatus.NOT_STORED  # the source keeps it for a retry
        assert line.submit(test, template=template).result(timeout=5).inspection_id
    assert line.metrics()["counts"]["store_errors"] == 1
    assert not sink.already_done("once:0")


def test_large_image_is_tiled_as_a_panel() -> None:
    rng = np.random.default_rng(3)
    template = np.zeros((600, 700), np.uint8)
    for _ in range(40):
        x, y = rng.integers(0, 650, 2)
        template[y % 580 : y % 580 + 10, x : x + 30] = 150
    test = with_defect(template, (250, 250, 262, 258))  # straddles the tile seam at 256 +- overlap
    tiled = TiledInspector(FakeInspector(), TilingConfig(threshold_px=512, tile_px=256, overlap_px=32))
    with tiled, LinePipeline(tiled, MemorySink()) as line:
        result = line.submit(test, template=template).result(timeout=10).result
    assert result.image_size_wh == (700, 600)
    assert [d.box_px for d in result.defects] == [(250.0, 250.0, 262.0, 258.0)]
    assert result.registration["tiles"] > 4


def test_metrics_snapshot_has_counts_queues_and_latencies() -> None:
    with LinePipeline(FakeInspector(), MemorySink()) as line:
        for template, test in _pairs(3):
            line.submit(test, template=template).result(timeout=5)
        m = line.metrics()
    assert m["counts"]["stored"] == 3
    assert set(m["queues"]) == {"inspect", "store"}
    for stage in ("queue_wait", "inspect", "store", "end_to_end"):
        assert m["latency_ms"][stage]["count"] == 3
        assert m["latency_ms"][stage]["p99_ms"] >= m["latency_ms"][stage]["p50_ms"] >= 0
    assert set(m["engine_latency_ms"]) == {"register", "classify", "total"}  # the fake's stages
    assert m["engine_latency_ms"]["register"]["count"] == 3


class UploadSink(MemorySink):
    """Keeps the upload extras each store got; raises `refuse` instead of storing while it is set."""

    def __init__(self) -> None:
        super().__init__()
        self.extras: list[UploadExtras | None] = []
        self.refuse: Exception | None = None

    def store(self, result, test_image, template, source_key, *, upload=None):  # type: ignore[no-untyped-def]
        if self.refuse is not None:
            raise self.refuse
        self.extras.append(upload)
        return super().store(result, test_image, template, source_key, upload=upload)


def test_an_upload_brings_its_recipe_trace_and_calibration_and_gets_the_sinks_own_error() -> None:
    """The request resolved the product (its recipe rides with the job: no lookup), sent a panel id and a
    calibration; the line merges the trace with the recipe's settings and hands the extras to the sink.
    A refused upload is its future's error, as raised, and not a failure record."""
    template, test = _pairs(1)[0]
    settings = TraceSettings(file_pattern=r"(?P<lot>L\d+)_")
    recipe = ProductRecipe(template, px_per_mm=10.0, rules=VerdictRules(), trace=settings)
    sink = UploadSink()
    with LinePipeline(FakeInspector(), sink, StaticTemplateProvider(), PipelineConfig(line_name="SMT-3")) as line:
        extras = UploadExtras(recipe=recipe, trace=Trace(panel_id="P9"), px_per_mm=20.0, filename="L12_x.png")
        stored = line.submit(test, product="board-a", image_id="b1", upload=extras).result(timeout=5)
        wrong_size = line.submit(test, template=template[:64, :64], upload=UploadExtras())
        with pytest.raises(RegistrationError):
            wrong_size.result(timeout=5)
        sink.refuse = ConnectionError("database down")
        refused = line.submit(test, template=template, upload=UploadExtras())
        with pytest.raises(ConnectionError, match="database down"):
            refused.result(timeout=5)
    assert stored.result.trace == Trace(lot="L12", panel_id="P9", line="SMT-3")  # form, file name, line
    assert stored.result.defects[0].box_mm == (0.5, 0.5, 0.7, 1.0)  # the upload's 20 px/mm over the recipe's 10
    assert stored.result.product == "board-a"  # not in the template provider: the recipe came with the upload
    assert sink.extras == [extras]
    assert sink.failures == []
    counts = line.metrics()["counts"]
    assert (counts["stored"], counts["failed"], counts["store_errors"]) == (1, 1, 1)
