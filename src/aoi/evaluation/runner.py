"""Run the inspector over annotated pairs on a pool and gather figures.

Two kinds of pool. Threads share one inspector and scale about 1.4-1.5x on two cores: decoding, OpenCV
and onnxruntime release the GIL, but the candidate stage's Python does not. Processes (`processes=True`,
what `aoi eval` and `aoi bench` use) load the bundle once per worker, each with one thread, share
nothing mutable and hand back only file paths in and detections out. They are spawned, not forked: a
worker forked from a process whose OpenCV thread pool had run hung in `cv2.setNumThreads` (seen in the
test suite), and torch's pools are no safer. Training and cross-validation keep threads.
"""

from __future__ import annotations

import multiprocessing as mp
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from aoi.data.annotations import AnnotatedPair
from aoi.data.images import read_image
from aoi.detection.bundle import ModelBundle
from aoi.detection.inspector import Inspector
from aoi.detection.protocol import InspectorLike
from aoi.detection.tiling import TiledInspector, TilingConfig
from aoi.evaluation.metrics import (
    ImageEval,
    OperatingPoint,
    best_threshold,
    confusion_matrix,
    deeppcb_ap,
    deeppcb_operating_point,
    mean_ap,
    per_class_ap,
)
from aoi.schema import Defect, InspectionFailure, InspectionInputError


@dataclass
class PairOutcome:
    pair: AnnotatedPair
    detections: list[Defect] = field(default_factory=list)
    failure: InspectionFailure | None = None
    stage_ms: dict[str, float] = field(default_factory=dict)


ENGINE_STAGES = ("register", "candidates", "classify")


def _detect_one(inspector: InspectorLike, pair: AnnotatedPair, score_floor: float) -> PairOutcome:
    """One pair through the engine's one facade (`InspectorLike.inspect`, tiled like every entry point's),
    reporting every detection down to `score_floor` so that precision/recall curves can be drawn."""
    t0 = time.perf_counter()
    try:
        test = read_image(pair.test_path)
        template = read_image(pair.template_path)
        t1 = time.perf_counter()
        result = inspector.inspect(test, template, image_id=pair.image_id, threshold=score_floor)
    except InspectionInputError as exc:
        return PairOutcome(pair, failure=InspectionFailure(pair.image_id, type(exc).__name__, str(exc)))
    stage = {"decode": (t1 - t0) * 1e3, **{k: result.timings_ms[k] for k in ENGINE_STAGES if k in result.timings_ms}}
    return PairOutcome(pair, list(result.defects), None, stage)


def engine_facade(inspector: Inspector, workers: int = 1) -> TiledInspector:
    """What every entry point inspects through: the engine wrapped for panels (`TilingConfig.for_panels`)."""
    return TiledInspector(inspector, TilingConfig.for_panels(workers=workers))


def run_pairs(
    inspector: Inspector,
    pairs: Sequence[AnnotatedPair],
    *,
    score_floor: float,
    workers: int = 2,
    processes: bool = False,
    on_done: Callable[[PairOutcome], None] | None = None,
) -> Iterator[PairOutcome]:
    """Yield outcomes in input order; a failing pair yields a failure, never stops the run.

    `processes`: one spawned worker per `workers`, each loading `inspector`'s bundle (with any settings
    changed in memory) once; otherwise threads sharing `inspector`."""
    if processes and workers > 1:
        ctx = mp.get_context("spawn")  # a fork of a process with OpenCV or onnxruntime threads can deadlock
        jobs = [(p, score_floor) for p in pairs]
        with ctx.Pool(workers, initializer=_start_worker, initargs=(inspector.bundle,)) as pool:
            for outcome in pool.imap(_detect_in_worker, jobs, chunksize=4):
                if on_done:
                    on_done(outcome)
                yield outcome
        return
    facade = engine_facade(inspector)
    with ThreadPoolExecutor(max(1, workers)) as pool:
        for outcome in pool.map(lambda p: _detect_one(facade, p, score_floor), pairs):
            if on_done:
                on_done(outcome)
            yield outcome


_worker_inspector: TiledInspector | None = None  # one per worker process, built by `_start_worker`


def _start_worker(bundle: ModelBundle) -> None:
    global _worker_inspector
    import cv2

    cv2.setNumThreads(1)  # workers x threads = cores
    _worker_inspector = engine_facade(Inspector(bundle, threads=1))


def _detect_in_worker(job: tuple[AnnotatedPair, float]) -> PairOutcome:
    if _worker_inspector is None:
        raise RuntimeError("worker started without an inspector")
    return _detect_one(_worker_inspector, *job)


@dataclass(frozen=True)
class AccuracyReport:
    deeppcb_map: float
    operating_point: OperatingPoint
    ap33: dict[str, float]
    ap50: dict[str, float]
    confusion: dict[str, dict[str, int]]

    def as_dict(self) -> dict[str, Any]:
        op = self.operating_point
        return {
            "deeppcb_map": round(self.deeppcb_map, 5),
            "f_score": round(op.f_score, 5),
            "precision": round(op.precision, 5),
            "recall": round(op.recall, 5),
            "threshold": op.threshold,
            "map33": round(mean_ap(self.ap33), 5),
            "map50": round(mean_ap(self.ap50), 5),
            "ap33": {k: round(v, 5) for k, v in self.ap33.items()},
            "ap50": {k: round(v, 5) for k, v in self.ap50.items()},
            "n_truth": op.n_truth,
            "n_detections": op.n_detections,
        }


def accuracy_report(images: Sequence[ImageEval], threshold: float | None) -> AccuracyReport:
    """Figures at `threshold`, or at the best-F threshold when None (used to calibrate a bundle)."""
    op = best_threshold(images) if threshold is None else deeppcb_operating_point(images, threshold)
    return AccuracyReport(
        deeppcb_map=deeppcb_ap(images),
        operating_point=op,
        ap33=per_class_ap(images, 0.33),
        ap50=per_class_ap(images, 0.5),
        confusion=confusion_matrix(images, op.threshold),
    )
