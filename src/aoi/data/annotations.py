"""Dataset-neutral annotation types shared by the DeepPCB, YOLO and COCO readers and writers."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from aoi.schema import BoxXYXY, DefectType, InspectionInputError, SchemaError


class DatasetError(InspectionInputError):
    """A dataset folder, list file or annotation file is missing or malformed."""


@dataclass(frozen=True)
class LabeledBox:
    """A ground-truth defect: `box_px` is [x1, y1, x2, y2] in pixels."""

    type: DefectType
    box_px: BoxXYXY

    def __post_init__(self) -> None:
        x1, y1, x2, y2 = self.box_px
        if x2 <= x1 or y2 <= y1:
            raise SchemaError(f"degenerate box {self.box_px}")


@dataclass(frozen=True)
class AnnotatedPair:
    """A tested image, its golden template and the defects on the tested image."""

    image_id: str
    test_path: Path
    template_path: Path
    labels: tuple[LabeledBox, ...] = ()
    group: str = ""
    extra: dict[str, str] = field(default_factory=dict)
