"""A model bundle: ONNX weights plus the metadata that serving needs (classes, preprocessing, threshold).

Layout: a folder holding `model.onnx` (the float network: what fine-tuning starts from), `bundle.json`
and optionally a faster copy that serving runs instead (`inference_model`, e.g. `model.int8.onnx`, an
8-bit quantised graph written by `aoi models quantize` or by training with `"int8": true`). Serving code
reads every setting from the bundle, so a retrained model with other classes or thresholds needs no
code change.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from aoi.detection.candidates import CROP_PX, N_CHANNELS, CandidateConfig
from aoi.registration import RegistrationConfig
from aoi.schema import DefectType, InspectionInputError

BUNDLE_FORMAT = 1
FLOAT_MODEL = "model.onnx"
DEFAULT_BUNDLE = Path(__file__).resolve().parent.parent / "models" / "default"


class BundleError(InspectionInputError):
    """A model bundle is missing, incomplete or of an unknown format."""


@dataclass(frozen=True)
class BundleMeta:
    version: str
    classes: tuple[DefectType, ...]  # model output i+1 is classes[i]; output 0 is background
    threshold: float  # calibrated operating threshold (best F-score on validation)
    score_floor: float = 0.05
    nms_iou: float = 0.3
    scratch_merge_gap_px: float = -1.0  # scratch boxes closer than this are one scratch (< 0: off)
    scratch_min_probability: float = 0.0  # below it, a candidate takes its best non-scratch type
    test_time_flips: int = 1  # 1: plain; 2 or 4: average over mirrored crops (slower, steadier)
    crop_px: int = CROP_PX
    channels: int = N_CHANNELS
    candidates: CandidateConfig = CandidateConfig()
    registration: RegistrationConfig = RegistrationConfig()
    training: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    inference_model: str = FLOAT_MODEL  # the graph serving runs: the float one or its quantised copy

    def __post_init__(self) -> None:
        name = self.inference_model
        if Path(name).name != name or not name.endswith(".onnx"):
            raise BundleError(f"inference_model must be an .onnx file name inside the bundle, got {name!r}")

    def to_json(self) -> str:
        data = asdict(self)
        data["format"] = BUNDLE_FORMAT
        data["classes"] = [c.value for c in self.classes]
        return json.dumps(data, indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str, source: str = "bundle.json") -> BundleMeta:
        try:
            data = json.loads(text)
            if data.get("format") != BUNDLE_FORMAT:
                raise BundleError(f"{source}: unsupported bundle format {data.get('format')!r}")
            return cls(
                version=str(data["version"]),
                classes=tuple(DefectType.parse(c) for c in data["classes"]),
                threshold=float(data["threshold"]),
                score_floor=float(data.get("score_floor", 0.05)),
                nms_iou=float(data.get("nms_iou", 0.3)),
                scratch_merge_gap_px=float(data.get("scratch_merge_gap_px", -1.0)),
                scratch_min_probability=float(data.get("scratch_min_probability", 0.0)),
                test_time_flips=int(data.get("test_time_flips", 1)),
                crop_px=int(data.get("crop_px", CROP_PX)),
                channels=int(data.get("channels", N_CHANNELS)),
                candidates=CandidateConfig(**data.get("candidates", {})),
                registration=RegistrationConfig(**data.get("registration", {})),
                training=dict(data.get("training", {})),
                metrics=dict(data.get("metrics", {})),
                inference_model=str(data.get("inference_model", FLOAT_MODEL)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, BundleError):
                raise
            raise BundleError(f"{source}: malformed bundle metadata: {exc}") from exc


@dataclass(frozen=True)
class ModelBundle:
    path: Path
    meta: BundleMeta

    @property
    def onnx_path(self) -> Path:
        """The float network (what fine-tuning and quantising start from)."""
        return self.path / FLOAT_MODEL

    @property
    def inference_path(self) -> Path:
        """The graph serving runs: `onnx_path`, or its quantised copy."""
        return self.path / self.meta.inference_model

    @classmethod
    def load(cls, path: Path | str | None = None) -> ModelBundle:
        folder = DEFAULT_BUNDLE if path is None else Path(path)
        if folder.is_file() and folder.name in ("bundle.json", "model.onnx"):
            folder = folder.parent
        meta_path = folder / "bundle.json"
        if not meta_path.is_file():
            raise BundleError(f"no model bundle at {folder} (bundle.json missing)")
        if not (folder / "model.onnx").is_file():
            raise BundleError(f"model bundle {folder} has no model.onnx")
        meta = BundleMeta.from_json(meta_path.read_text(), str(meta_path))
        if not (folder / meta.inference_model).is_file():
            raise BundleError(f"model bundle {folder} has no {meta.inference_model} (its inference_model)")
        if meta.crop_px != CROP_PX or meta.channels != N_CHANNELS:
            raise BundleError(
                f"{folder}: bundle expects {meta.channels}x{meta.crop_px}px crops; this engine makes "
                f"{N_CHANNELS}x{CROP_PX}px"
            )
        return cls(folder, meta)

    def save_meta(self) -> None:
        (self.path / "bundle.json").write_text(self.meta.to_json() + "\n")
