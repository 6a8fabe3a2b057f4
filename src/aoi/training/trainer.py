"""`aoi train`: dataset -> candidate samples -> CNN -> ONNX bundle with calibrated threshold.

`train` composes the steps, each in its own module: the data and its cached samples
(`aoi.training.data`), the loop with its checkpoint and the ONNX export (`aoi.training.loop`), the
threshold and scratch guard chosen on held-out groups (`aoi.training.calibration`) and the model card
(`aoi.training.model_card`); here the bundle's metadata is written.

Resumable: samples are cached by fingerprint and a checkpoint is written after every epoch; running
the same command again continues where it stopped. Deterministic for a given seed on one machine.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aoi.detection.bundle import BundleMeta, ModelBundle
from aoi.schema import DefectType
from aoi.training.calibration import CALIBRATION_SCRATCH_SEED, SCRATCH_GUARD_GRID, calibrate
from aoi.training.data import (
    Progress,
    fingerprint,
    load_dataset,
    split_pairs,
    training_and_calibration_pairs,
    training_samples,
)
from aoi.training.loop import SERVING_FIELDS, export_onnx, fit, seed_everything, weight_settings
from aoi.training.model_card import write_model_card
from aoi.training.quantize import quantize_bundle
from aoi.training.recipe import TrainRecipe
from aoi.training.samples import AugmentConfig


@dataclass(frozen=True)
class OperatingPoint:
    """Serving settings chosen outside the training data: the cut and the scratch guard, with where from."""

    threshold: float
    scratch_guard: float
    chosen_by: str


def train(
    recipe: TrainRecipe,
    dataset_root: Path,
    out_dir: Path,
    *,
    progress: Progress | None = None,
    log: Callable[[str], None] = print,
    max_train_pairs: int | None = None,
    exclude_groups: Sequence[str] = (),
    operating_point: OperatingPoint | None = None,
    evidence: dict[str, Any] | None = None,
) -> ModelBundle:
    """Train a bundle. `exclude_groups` are never read (a cross-validation fold's scored group). With
    `operating_point` (threshold and scratch guard chosen elsewhere, e.g. by `aoi cv`), every pair
    trains and nothing is calibrated here; `evidence` (e.g. the cross-validation summary that chose it)
    is recorded in the bundle's metrics and model card."""
    classes = tuple(DefectType.parse(c) for c in recipe.classes)
    train_pairs, val_pairs = training_and_calibration_pairs(
        recipe, dataset_root, exclude_groups, hold_out=operating_point is None, max_train_pairs=max_train_pairs
    )
    log(
        f"{len(train_pairs)} training pairs, {len(val_pairs)} validation pairs (held-out groups: "
        f"{sorted({p.group for p in val_pairs})})"
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    fp = fingerprint(train_pairs)
    seed_everything(recipe.seed)
    train_set = training_samples(recipe, train_pairs, classes, out_dir / "cache", fp, progress)
    counts = np.bincount(train_set.labels, minlength=len(classes) + 1)
    log(f"{len(train_set.labels)} training candidates; per class (background first): {counts.tolist()}")
    model = fit(recipe, train_set, len(classes) + 1, out_dir / "checkpoint.pt", fp, progress=progress, log=log)

    bundle_dir = out_dir / "bundle"
    if bundle_dir.exists():
        shutil.rmtree(bundle_dir)
    bundle_dir.mkdir(parents=True)
    export_onnx(model, bundle_dir / "model.onnx")
    meta = BundleMeta(
        version=recipe.version,
        classes=classes,
        threshold=0.5,
        test_time_flips=recipe.test_time_flips,
        scratch_merge_gap_px=recipe.scratch_merge_gap_px,
        candidates=recipe.candidates,
        training={
            "recipe": recipe.to_dict(),
            "data_fingerprint": fp,
            "dataset": str(dataset_root),
            "train_pairs": len(train_pairs),
            "validation_pairs": len(val_pairs),
            "validation_groups": sorted({p.group for p in val_pairs}),
            "train_groups": sorted({p.group for p in train_pairs}),
            "excluded_groups": sorted(exclude_groups),
            "torch": torch.__version__,
        },
    )
    if operating_point is not None:
        meta = replace(
            meta,
            threshold=operating_point.threshold,
            scratch_min_probability=operating_point.scratch_guard,
            metrics={"operating_point": asdict(operating_point), **(evidence or {})},
        )
    bundle = ModelBundle(bundle_dir, meta)
    bundle.save_meta()
    if recipe.int8:  # before calibration: the threshold is chosen on the graph that will serve
        bundle = quantize_bundle(bundle, train_set.crops, seed=recipe.seed)
        log(f"serving an 8-bit copy: {bundle.inference_path.name}")
    if val_pairs:
        bundle = calibrate(
            bundle, val_pairs, log=log, workers=recipe.workers, scratch_boards=recipe.calibration_scratch_boards
        )
    write_model_card(bundle)
    return bundle


# The steps' names stay importable from here, as before the split.
__all__ = [
    "CALIBRATION_SCRATCH_SEED",
    "SCRATCH_GUARD_GRID",
    "SERVING_FIELDS",
    "AugmentConfig",
    "OperatingPoint",
    "Progress",
    "calibrate",
    "export_onnx",
    "fingerprint",
    "fit",
    "load_dataset",
    "split_pairs",
    "train",
    "training_samples",
    "weight_settings",
    "write_model_card",
]
