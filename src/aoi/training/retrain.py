"""The closed loop: operator reviews -> fine-tuned candidate -> comparison -> registry (promoted if not worse).

`retrain_from_reviews` stages every fully reviewed inspection that kept its template as a lossless PNG
pair with the operators' labels, fine-tunes the serving model on the older boards, compares the
candidate with it on the most recent ones (and on any held-out dataset groups), registers the
candidate and promotes it only when it is not worse on every check.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import cv2
import numpy as np

from aoi.data.annotations import AnnotatedPair, DatasetError
from aoi.detection.bundle import ModelBundle
from aoi.detection.model_registry import ModelRegistry, RegisteredModel
from aoi.storage import Storage
from aoi.storage.export import iter_reviewed
from aoi.training.data import Progress
from aoi.training.finetune import FineTuneResult, FineTuneSettings, fine_tune, split_by_time

RECENT_CHECK = "recent reviewed boards"


@dataclass(frozen=True)
class StagedReviews:
    pairs: list[AnnotatedPair]
    captured_at: list[datetime]
    skipped_partially_reviewed: int


@dataclass(frozen=True)
class RetrainOutcome:
    result: FineTuneResult
    registered: RegisteredModel
    promoted: bool
    staged: StagedReviews


def _write_png(path: Path, image: np.ndarray) -> None:
    ok, encoded = cv2.imencode(".png", image)
    if not ok:
        raise DatasetError(f"could not encode {path}")
    path.write_bytes(encoded.tobytes())


def stage_reviews(storage: Storage, folder: Path) -> StagedReviews:
    """Every fully reviewed inspection with a template, as PNG pairs under `folder` (one in memory at a time)."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    pairs: list[AnnotatedPair] = []
    times: list[datetime] = []
    reviewed = iter_reviewed(storage)
    for item in reviewed:
        stem = item.inspection.id
        test_path, template_path = folder / f"{stem}_test.png", folder / f"{stem}_temp.png"
        _write_png(test_path, item.test)
        _write_png(template_path, item.template)
        group = item.inspection.product_name or "no_product"
        pairs.append(AnnotatedPair(stem, test_path, template_path, item.labels, group))
        times.append(item.inspection.created_at)
    return StagedReviews(pairs, times, reviewed.skipped)


def check_sets(
    recent: Sequence[AnnotatedPair], held_out: dict[str, Sequence[AnnotatedPair]]
) -> dict[str, Sequence[AnnotatedPair]]:
    """What a candidate is compared on: the recent reviewed boards, each product's on their own when the
    line makes several (a gain on one may not hide a loss on another), and the held-out sets."""
    checks: dict[str, Sequence[AnnotatedPair]] = {RECENT_CHECK: recent}
    products = sorted({p.group for p in recent})
    if len(products) > 1:
        checks.update({f"{RECENT_CHECK} of {name}": [p for p in recent if p.group == name] for name in products})
    checks.update(held_out)
    return checks


def retrain_from_reviews(
    storage: Storage,
    registry: ModelRegistry,
    base: ModelBundle,
    out_dir: Path,
    settings: FineTuneSettings,
    *,
    held_out: dict[str, Sequence[AnnotatedPair]] | None = None,
    replay: Sequence[AnnotatedPair] = (),
    tolerance: float = 0.0,
    promote: bool = True,
    progress: Progress | None = None,
    log: Callable[[str], None] = print,
) -> RetrainOutcome:
    """One turn of the loop. `held_out`: further check sets (e.g. dataset groups never trained on);
    `replay`: pairs of the data the serving model learnt from, mixed into fine-tuning so it does not forget
    them (none of them may be in a check set)."""
    in_checks = {p.test_path for pairs in (held_out or {}).values() for p in pairs}
    if any(p.test_path in in_checks for p in replay):
        raise DatasetError("a replayed pair is also in a check set: the comparison would not be held out")
    staged = stage_reviews(storage, out_dir / "reviewed")
    log(
        f"{len(staged.pairs)} fully reviewed boards with a template"
        f" ({staged.skipped_partially_reviewed} partly reviewed ones skipped)"
    )
    train_pairs, recent = split_by_time(staged.pairs, staged.captured_at, settings.holdout_fraction)
    checks = check_sets(recent, held_out or {})
    result = fine_tune(
        base,
        train_pairs,
        out_dir,
        settings,
        checks=checks,
        replay=replay,
        tolerance=tolerance,
        source=f"{storage.data_dir}",
        progress=progress,
        log=log,
    )
    evidence = {"fine_tuned_from": base.meta.version, "comparison": result.comparison.as_dict()}
    registered = registry.add(result.bundle, evidence)
    promoted = False
    if promote and result.comparison.fit_to_promote:
        checked = ", ".join(result.comparison.checks)
        registry.promote(registered.version, reason=f"not worse than {base.meta.version} on {checked}")
        promoted = True
    return RetrainOutcome(result, registered, promoted, staged)


__all__ = ["RECENT_CHECK", "RetrainOutcome", "StagedReviews", "check_sets", "retrain_from_reviews", "stage_reviews"]
