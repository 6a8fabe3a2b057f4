"""The calibration step of `aoi train`: choose a bundle's operating threshold (and scratch guard) on
held-out validation pairs and record what was measured there in the bundle's metrics."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from aoi.data.annotations import AnnotatedPair
from aoi.detection.bundle import ModelBundle
from aoi.detection.inspector import Inspector
from aoi.evaluation.metrics import ImageEval
from aoi.evaluation.runner import accuracy_report, run_pairs
from aoi.schema import DefectType

SCRATCH_GUARD_GRID = (0.0, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9)
CALIBRATION_SCRATCH_SEED = 7_000  # aoi bench measures scratches on other boards (another seed)


def calibrate(
    bundle: ModelBundle,
    val_pairs: Sequence[AnnotatedPair],
    *,
    log: Callable[[str], None],
    workers: int = 2,
    scratch_boards: int = 0,
    scratch_f_floor: float = 0.95,
) -> ModelBundle:
    """Choose the operating threshold with the best DeepPCB F-score on validation; record the metrics.

    Scratches are learnt from synthetic strokes only, so a real defect merged with a thin residue can
    look like one. With `scratch_boards`, the scratch guard (the probability a scratch call needs) is
    chosen too: the value with the best validation F among those that keep the scratch F-score on
    synthetic calibration boards at or above `scratch_f_floor`.
    """
    guards = SCRATCH_GUARD_GRID if scratch_boards and DefectType.SCRATCH in bundle.meta.classes else (0.0,)
    best: tuple[float, float, ModelBundle, dict[str, Any]] | None = None
    for guard in guards:
        trial = ModelBundle(bundle.path, replace(bundle.meta, scratch_min_probability=guard))
        images = [
            ImageEval(o.detections, o.pair.labels)
            for o in run_pairs(Inspector(trial), val_pairs, score_floor=trial.meta.score_floor, workers=workers)
            if o.failure is None
        ]
        report = accuracy_report(images, None)
        trial = ModelBundle(bundle.path, replace(trial.meta, threshold=report.operating_point.threshold))
        metrics: dict[str, Any] = {"validation": report.as_dict()}
        if len(guards) > 1:
            from aoi.evaluation.bench import scratch_f_score

            scratch = scratch_f_score(Inspector(trial), scratch_boards, seed=CALIBRATION_SCRATCH_SEED, workers=workers)
            metrics["scratch_calibration"] = {**scratch, "seed": CALIBRATION_SCRATCH_SEED, "guard": guard}
            log(f"scratch guard {guard}: validation F {report.operating_point.f_score:.4f}, scratch {scratch}")
            if scratch["f_score"] < scratch_f_floor:
                continue
        if best is None or report.operating_point.f_score > best[0]:
            best = (report.operating_point.f_score, guard, trial, metrics)
    if best is None:  # no guard keeps scratches: take none
        return calibrate(bundle, val_pairs, log=log, workers=workers)
    _, guard, chosen, metrics = best
    log(f"validation: {json.dumps(metrics['validation'])} (scratch guard {guard})")
    calibrated = ModelBundle(bundle.path, replace(chosen.meta, metrics=metrics))
    calibrated.save_meta()
    return calibrated
