"""Run the inspector over annotated pairs on a thread pool and gather figures.

Threads, not processes: JPEG decoding, OpenCV and onnxruntime release the GIL, so two threads keep
two cores busy without copying images between processes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from aoi.data.annotations import AnnotatedPair
from aoi.data.images import read_image
from aoi.detection.inspector import Inspector
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


def _detect_one(inspector: Inspector, pair: AnnotatedPair, score_floor: float) -> PairOutcome:
    t0 = time.perf_counter()
    try:
        test = read_image(pair.test_path)
        template = read_image(pair.template_path)
        t1 = time.perf_counter()
        dets, analysed, classify_ms = inspector.detect(test, template, score_floor=score_floor)
    except InspectionInputError as exc:
        return PairOutcome(pair, failure=InspectionFailure(pair.image_id, type(exc).__name__, str(exc)))
    stage = {"decode": (t1 - t0) * 1e3, **analysed.timings_ms, "classify": classify_ms}
    return PairOutcome(pair, dets, None, stage)


def run_pairs(
    inspector: Inspector,
    pairs: Sequence[AnnotatedPair],
    *,
    score_floor: float,
    workers: int = 2,
    on_done: Callable[[PairOutcome], None] | None = None,
) -> Iterator[PairOutcome]:
    """Yield outcomes in input order; a failing pair yields a failure, never stops the run."""
    with ThreadPoolExecutor(max(1, workers)) as pool:
        for outcome in pool.map(lambda p: _detect_one(inspector, p, score_floor), pairs):
            if on_done:
                on_done(outcome)
            yield outcome


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
