"""Batch inspection of image/template pairs from files: discovery, per-image isolation, JSON + overlay output.

A failing image becomes an `InspectionFailure` record; the batch goes on and reports how many failed.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2

from aoi.data.images import ImageError, read_image
from aoi.detection.overlay import render_overlay
from aoi.detection.protocol import InspectorLike
from aoi.schema import DEFAULT_PX_PER_MM, InspectionFailure, InspectionInputError, InspectionResult
from aoi.verdict import VerdictRules

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}
TEST_SUFFIX, TEMPLATE_SUFFIX = "_test", "_temp"


@dataclass(frozen=True)
class PairJob:
    image_id: str
    test_path: Path
    template_path: Path | None


def discover_pairs(folder: Path, templates: Path | None = None) -> list[PairJob]:
    """Find `<id>_test.<ext>` files (recursively) with their `<id>_temp.<ext>` beside them, or,
    with `templates`, every image in `folder` with the same-named file in `templates`.
    A tested image without a template is still listed (it becomes a per-image error, never a silent skip)."""
    if not folder.is_dir():
        raise ImageError(f"{folder}: not a folder")
    jobs: list[PairJob] = []
    for path in sorted(folder.rglob("*")):
        if not path.is_file() or path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        stem = path.stem
        if templates is not None:
            match = [
                t
                for t in (templates / path.relative_to(folder)).parent.glob(stem + ".*")
                if t.suffix.lower() in IMAGE_SUFFIXES
            ]
            jobs.append(PairJob(stem, path, match[0] if match else None))
        elif stem.endswith(TEST_SUFFIX):
            base = stem[: -len(TEST_SUFFIX)]
            match = [t for t in path.parent.glob(base + TEMPLATE_SUFFIX + ".*") if t.suffix.lower() in IMAGE_SUFFIXES]
            jobs.append(PairJob(base, path, match[0] if match else None))
    return jobs


def inspect_job(
    inspector: InspectorLike, job: PairJob, *, px_per_mm: float, rules: VerdictRules | None
) -> tuple[InspectionResult | InspectionFailure, object | None]:
    """Returns the result (or failure) and the decoded tested image (for the overlay)."""
    try:
        if job.template_path is None:
            raise ImageError(f"{job.test_path}: no template found (expected {job.image_id}{TEMPLATE_SUFFIX}.<ext>)")
        test = read_image(job.test_path)
        template = read_image(job.template_path)
        result = inspector.inspect(test, template, image_id=job.image_id, px_per_mm=px_per_mm, rules=rules)
        return result, test
    except InspectionInputError as exc:
        return InspectionFailure(job.image_id, type(exc).__name__, str(exc)), None


def run_batch(
    inspector: InspectorLike,
    jobs: Sequence[PairJob],
    out_dir: Path | None,
    *,
    px_per_mm: float = DEFAULT_PX_PER_MM,
    rules: VerdictRules | None = None,
    workers: int = 2,
    overlays: bool = True,
    on_done: Callable[[InspectionResult | InspectionFailure], None] | None = None,
) -> Iterator[InspectionResult | InspectionFailure]:
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)

    def one(job: PairJob) -> InspectionResult | InspectionFailure:
        outcome, test = inspect_job(inspector, job, px_per_mm=px_per_mm, rules=rules)
        if out_dir is not None:
            record = outcome.to_dict()
            if isinstance(outcome, InspectionResult):
                record["status"] = "ok"
                record["source"] = {"test": str(job.test_path), "template": str(job.template_path)}
                if overlays and test is not None:
                    cv2.imwrite(str(out_dir / f"{job.image_id}.png"), render_overlay(test, outcome))  # type: ignore[arg-type]
            (out_dir / f"{job.image_id}.json").write_text(json.dumps(record, indent=2) + "\n")
        return outcome

    with ThreadPoolExecutor(max(1, workers)) as pool:
        for outcome in pool.map(one, jobs):
            if on_done:
                on_done(outcome)
            yield outcome
