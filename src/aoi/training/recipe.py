"""A training recipe: everything that decides a model, in one committed JSON file."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from aoi.data.annotations import DatasetError
from aoi.detection.candidates import CandidateConfig
from aoi.schema import DefectType
from aoi.training.samples import AugmentConfig

ALL_CLASSES = tuple(t.value for t in DefectType)


@dataclass(frozen=True)
class TrainRecipe:
    version: str = "aoi-cnn-dev"
    dataset_format: str = "deeppcb"  # deeppcb | yolo | coco
    list_file: str | None = None
    validation_groups: tuple[str, ...] = ()
    classes: tuple[str, ...] = ALL_CLASSES
    seed: int = 0
    epochs: int = 24
    batch_size: int = 256
    learning_rate: float = 3e-3
    weight_decay: float = 1e-4
    width: int = 16
    box_loss_weight: float = 5.0
    test_time_flips: int = 1  # mirrored views averaged at inference (written into the bundle)
    scratch_merge_gap_px: float = -1.0  # touching scratch pieces reported as one (< 0: off)
    calibration_scratch_boards: int = 0  # synthetic boards for choosing the scratch guard (0: no guard)
    candidates: CandidateConfig = field(default_factory=CandidateConfig)  # used in training and serving
    substrate_designs: int = 0  # synthetic fine-pitch substrate designs mixed into training (0: none)
    substrate_captures_per_type: int = 6  # captures of each defect type (and clean ones) per design
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    workers: int = 2
    int8: bool = False  # serve an 8-bit copy of the network, calibrated on training crops (aoi.training.quantize)

    @classmethod
    def load(cls, path: Path | str) -> TrainRecipe:
        p = Path(path)
        if not p.is_file():
            raise DatasetError(f"recipe {p} not found")
        try:
            data: dict[str, Any] = json.loads(p.read_text())
            data["augment"] = AugmentConfig(**data.get("augment", {}))
            data["candidates"] = CandidateConfig(**data.get("candidates", {}))
            data["validation_groups"] = tuple(data.get("validation_groups", ()))
            data["classes"] = tuple(DefectType.parse(c).value for c in data.get("classes", ALL_CLASSES))
            return cls(**data)
        except (TypeError, ValueError) as exc:
            raise DatasetError(f"recipe {p}: {exc}") from exc

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
