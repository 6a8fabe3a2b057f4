"""The learning loop: reviewed defects exported as a training dataset.

Only inspections whose every defect has been reviewed are exported (an unreviewed defect could be
real or a false call, so the image's labels would be unknown). Confirmed defects keep their type,
reclassified ones take the operator's type, false calls are dropped; an inspection whose defects
were all false calls is exported with no labels (a useful negative). A defect an operator added because
the engine missed it is stored confirmed, so it is a label like any confirmed defect: the misses the
model most needs to learn from.

Every board the line stores keeps the template it was inspected against (`DatabaseSink`): its product's
recipe template (referenced), a hot-folder template file, or the template pixels a demo, camera or upload
capture brought itself (saved with the inspection). Only an inspection stored without one (before
templates were kept with every board, or whose template file could not be read) is left out.
"""

from __future__ import annotations

import enum
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from aoi.data.annotations import AnnotatedPair, LabeledBox
from aoi.data.deeppcb import DeepPCBPair, write_deeppcb_pairs
from aoi.schema import DefectType
from aoi.storage import Storage
from aoi.storage.inspections import InspectionRepository
from aoi.storage.records import StoredInspection


class ExportFormat(enum.StrEnum):
    DEEPPCB = "deeppcb"
    YOLO = "yolo"
    COCO = "coco"


class ExportError(ValueError):
    """The export cannot be written (unsupported format, target folder not empty, missing image)."""


@dataclass(frozen=True)
class ExportReport:
    out_dir: Path
    format: ExportFormat
    pairs: int
    boxes: int
    skipped_partially_reviewed: int


@dataclass(frozen=True)
class ReviewedPair:
    inspection: StoredInspection
    test: np.ndarray
    template: np.ndarray
    labels: tuple[LabeledBox, ...]


def reviewed_labels(inspection: StoredInspection) -> tuple[LabeledBox, ...] | None:
    """The operator-decided labels of a fully reviewed inspection, or None when any defect is unreviewed."""
    labels = []
    for defect in inspection.result.defects:
        review = inspection.reviews.get(defect.id or "")
        if review is None:
            return None
        if not review.is_real:
            continue
        defect_type: DefectType = review.reviewed_type or defect.type
        x1, y1, x2, y2 = (int(round(v)) for v in defect.box_px)
        labels.append(LabeledBox(defect_type, (x1, y1, max(x2, x1 + 1), max(y2, y1 + 1))))
    return tuple(labels)


class ReviewedPairs:
    """The fully reviewed inspections that have a template, read one at a time; after iterating,
    `skipped` says how many partly reviewed ones were left out."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self.skipped = 0

    def __iter__(self) -> Iterator[ReviewedPair]:
        self.skipped = 0
        with self.storage.db.session() as session:
            repo = InspectionRepository(session)
            for inspection_id in repo.reviewed_inspection_ids():
                inspection = repo.get(inspection_id)
                if inspection is None or inspection.template_path is None:
                    continue
                labels = reviewed_labels(inspection)
                if labels is None:
                    self.skipped += 1
                    continue
                test = self.storage.images.load(inspection.test_image_path)
                template = _load_template(self.storage, inspection.template_path)
                yield ReviewedPair(inspection, test, template, labels)


def iter_reviewed(storage: Storage) -> ReviewedPairs:
    return ReviewedPairs(storage)


def collect_reviewed(storage: Storage) -> tuple[list[ReviewedPair], int]:
    """Fully reviewed inspections that have a template, and how many partly reviewed ones were skipped."""
    reviewed = iter_reviewed(storage)
    pairs = list(reviewed)
    return pairs, reviewed.skipped


def _load_template(storage: Storage, path: str) -> np.ndarray:
    """A product's template through the store's template cache (shared by many boards); a board's own
    template (saved with its inspection, read once here) straight from its file, not churning that cache."""
    if path.startswith("templates/"):
        return storage.images.load_template(path)
    return storage.images.load(path)


def export_reviewed(
    storage: Storage, out_dir: Path | str, fmt: ExportFormat | str = ExportFormat.DEEPPCB
) -> ExportReport:
    """Write the reviewed defects of `storage` under `out_dir` in `fmt` layout.

    Read back with `read_deeppcb(out_dir)`, `read_yolo(out_dir)` or `read_coco(out_dir / "annotations.json")`.
    """
    try:
        fmt = ExportFormat(str(fmt.value if isinstance(fmt, ExportFormat) else fmt).lower())
    except ValueError:
        known = ", ".join(f.value for f in ExportFormat)
        raise ExportError(f"unknown export format {fmt!r}; expected one of {known}") from None
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise ExportError(f"export folder {out} is not empty")
    out.mkdir(parents=True, exist_ok=True)
    pairs, skipped = collect_reviewed(storage)
    if fmt is ExportFormat.DEEPPCB:
        _write_deeppcb(pairs, out)
    else:
        _write_with_data_writer(pairs, out, fmt)
    boxes = sum(len(p.labels) for p in pairs)
    return ExportReport(out, fmt, len(pairs), boxes, skipped)


def _group_name(inspection: StoredInspection) -> str:
    name = inspection.product_name or "no_product"
    return "group_" + re.sub(r"[^A-Za-z0-9_-]+", "_", name)


def _write_deeppcb(pairs: list[ReviewedPair], out: Path) -> None:
    """DeepPCB layout: `<group>/0/<id>_test.jpg`, `_temp.jpg`, `<group>/0_not/<id>.txt`, `trainval.txt`, with
    a group per product and the inspection ids; JPEG quality 100 (near lossless)."""
    write_deeppcb_pairs(
        out,
        (DeepPCBPair(_group_name(p.inspection), "0", p.inspection.id, p.test, p.template, p.labels) for p in pairs),
        list_name="trainval.txt",
        jpeg_quality=100,
    )


def _write_with_data_writer(pairs: list[ReviewedPair], out: Path, fmt: ExportFormat) -> None:
    """YOLO and COCO through the dataset writers of `aoi.data` (PNG images, lossless).

    COCO: `annotations.json` with the images under `images/`; YOLO: `classes.txt`, `images/`,
    `templates/`, `labels/` (the PNGs are staged in a temporary folder that the writer copies from).
    """
    from aoi.data.coco import write_coco
    from aoi.data.yolo import write_yolo

    with tempfile.TemporaryDirectory(prefix="aoi-export-") as staging:
        image_dir = out / "images" if fmt is ExportFormat.COCO else Path(staging)
        image_dir.mkdir(parents=True, exist_ok=True)
        annotated = []
        for pair in pairs:
            stem = pair.inspection.id
            test_path = image_dir / f"{stem}_test.png"
            template_path = image_dir / f"{stem}_temp.png"
            _write_png(test_path, pair.test)
            _write_png(template_path, pair.template)
            group = _group_name(pair.inspection)
            annotated.append(AnnotatedPair(stem, test_path, template_path, pair.labels, group))
        if fmt is ExportFormat.COCO:
            write_coco(annotated, out / "annotations.json")
        else:
            write_yolo(annotated, out)


def _write_png(path: Path, image: np.ndarray) -> None:
    ok, encoded = cv2.imencode(".png", image)
    if not ok:
        raise ExportError(f"could not encode {path}")
    path.write_bytes(encoded.tobytes())
