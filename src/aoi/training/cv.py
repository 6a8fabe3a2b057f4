"""`aoi cv`: leave-one-group-out cross-validation of a training recipe.

For each group of the dataset, a model is trained without it and scored on it. Inside a fold the
operating threshold and the scratch guard are chosen on an inner group taken from the training
groups (the next one in name order), which that fold's network does not train on, so nothing about
the scored group reaches any choice. The final operating point for a model trained on every group is
the median of the folds' choices: chosen by the folds, never on a group they score.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from aoi.data.annotations import DatasetError
from aoi.detection.inspector import Inspector
from aoi.evaluation.metrics import ImageEval
from aoi.evaluation.runner import accuracy_report, run_pairs
from aoi.training.data import Progress, load_dataset
from aoi.training.recipe import TrainRecipe
from aoi.training.trainer import OperatingPoint, train


@dataclass(frozen=True)
class FoldResult:
    scored_group: str
    calibration_group: str
    pairs: int
    defects: int
    threshold: float
    scratch_guard: float
    accuracy: dict[str, Any]  # `AccuracyReport.as_dict()` on the scored group at the fold's own threshold

    def row(self) -> dict[str, Any]:
        a = self.accuracy
        return {
            "group": self.scored_group,
            "calibrated_on": self.calibration_group,
            "pairs": self.pairs,
            "defects": self.defects,
            "threshold": self.threshold,
            "scratch_guard": self.scratch_guard,
            "map33": a["map33"],
            "deeppcb_map": a["deeppcb_map"],
            "f_score": a["f_score"],
            "precision": a["precision"],
            "recall": a["recall"],
            "ap33": a["ap33"],
        }


def fold_plan(groups: Sequence[str]) -> list[tuple[str, str]]:
    """(scored group, calibration group) per fold: each group scored once, calibrated on the next one."""
    names = sorted(set(groups))
    if len(names) < 3:
        raise DatasetError(f"leave-one-group-out needs at least 3 groups, the dataset has {len(names)}")
    return [(g, names[(i + 1) % len(names)]) for i, g in enumerate(names)]


def run_fold(
    recipe: TrainRecipe,
    dataset_root: Path,
    out_dir: Path,
    scored: str,
    calibration: str,
    *,
    log: Callable[[str], None] = print,
    progress: Progress | None = None,
) -> FoldResult:
    """Train without `scored` (calibrating on `calibration`), then score `scored`. Resumable per fold."""
    result_path = out_dir / "fold.json"
    if result_path.is_file():
        saved = json.loads(result_path.read_text())
        if saved.get("recipe") == _as_json(recipe.to_dict()) and saved["scored_group"] == scored:
            log(f"fold {scored}: already done")
            return FoldResult(**{k: v for k, v in saved.items() if k != "recipe"})
    fold_recipe = replace(recipe, version=f"{recipe.version}-cv-{scored}", validation_groups=(calibration,))
    bundle = train(fold_recipe, dataset_root, out_dir, exclude_groups=(scored,), log=log, progress=progress)
    pairs = [p for p in load_dataset(dataset_root, recipe.dataset_format, recipe.list_file) if p.group == scored]
    inspector = Inspector(bundle)
    outcomes = list(run_pairs(inspector, pairs, score_floor=bundle.meta.score_floor, workers=recipe.workers))
    images = [ImageEval(o.detections, o.pair.labels) for o in outcomes if o.failure is None]
    report = accuracy_report(images, bundle.meta.threshold).as_dict()
    result = FoldResult(
        scored_group=scored,
        calibration_group=calibration,
        pairs=len(pairs),
        defects=sum(len(p.labels) for p in pairs),
        threshold=bundle.meta.threshold,
        scratch_guard=bundle.meta.scratch_min_probability,
        accuracy=report,
    )
    result_path.write_text(json.dumps({**result.__dict__, "recipe": recipe.to_dict()}, indent=1))
    log(f"fold {scored}: {json.dumps(result.row())}")
    return result


def _as_json(value: Any) -> Any:
    return json.loads(json.dumps(value))


def summarise(folds: Sequence[FoldResult]) -> dict[str, Any]:
    maps = [f.accuracy["map33"] for f in folds]
    fs = [f.accuracy["f_score"] for f in folds]
    return {
        "folds": [f.row() for f in folds],
        "mean_map33": round(statistics.fmean(maps), 5),
        "worst_map33": round(min(maps), 5),
        "mean_deeppcb_map": round(statistics.fmean(f.accuracy["deeppcb_map"] for f in folds), 5),
        "mean_f_score": round(statistics.fmean(fs), 5),
        "worst_f_score": round(min(fs), 5),
        "operating_point": chosen_operating_point(folds).__dict__,
    }


def chosen_operating_point(folds: Sequence[FoldResult]) -> OperatingPoint:
    """The median of the folds' threshold and scratch guard (each chosen inside its training groups)."""
    return OperatingPoint(
        threshold=round(statistics.median(f.threshold for f in folds), 4),
        scratch_guard=round(statistics.median(f.scratch_guard for f in folds), 4),
        chosen_by=f"median over {len(folds)} leave-one-group-out folds",
    )


def cross_validate(
    recipe: TrainRecipe,
    dataset_root: Path,
    out_dir: Path,
    *,
    only: Sequence[str] = (),
    log: Callable[[str], None] = print,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Every fold (or the `only` ones), then the per-group table and the operating point they choose."""
    groups = sorted({p.group for p in load_dataset(dataset_root, recipe.dataset_format, recipe.list_file)})
    plan = fold_plan(groups)
    unknown = set(only) - set(groups)
    if unknown:
        raise DatasetError(f"groups not in the dataset: {sorted(unknown)}")
    folds = [
        run_fold(recipe, dataset_root, out_dir / scored, scored, calibration, log=log, progress=progress)
        for scored, calibration in plan
        if not only or scored in only
    ]
    summary = summarise(folds)
    (out_dir / "cv.json").write_text(json.dumps(summary, indent=1))
    return summary
