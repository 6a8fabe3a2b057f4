"""A product's capture setup: the engine settings its captures need where they differ from the bundle's.

The bundled model's settings suit DeepPCB's coarse boards. A fine-pitch substrate (3-6 px line/space)
needs sub-pixel registration, a narrower Euclidean band, the connectivity check and the grey-level
check, learnt from a few good captures by `aoi tolerance --fine-pitch`, which prints them in the
`to_dict()` shape. A setup holds only overrides, so a field it does not name keeps the value of
whatever bundle serves. Only the fields that command learns can be set: the crop window, the copper
polarity and the candidate cap belong to the model (it was trained on them, and panel tiling sizes
its seams by them).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from aoi.detection.candidates import DISTANCE_METRICS, CandidateConfig
from aoi.registration import RegistrationConfig
from aoi.schema import SchemaError

Setting = bool | int | float | str
SECTIONS = ("registration", "candidates")
# What `aoi tolerance` prints beside the settings: accepted so its output can be posted as is, not kept.
LEARNER_REPORT_KEYS = ("good_captures", "edge_pixels")
MAX_AREA_PX = 1_000_000


@dataclass(frozen=True)
class SettingSpec:
    """The type and range of one overridable engine setting."""

    kind: type[bool] | type[int] | type[float] | type[str]
    low: float = 0.0
    high: float = 0.0
    choices: tuple[str, ...] = ()

    def check(self, value: Any, where: str) -> Setting:
        """`value` as the setting's type; SchemaError naming `where` when it has another type or is out of range."""
        shown = repr(value)[:80]
        if self.kind is bool:
            if not isinstance(value, bool):
                raise SchemaError(f"{where} must be true or false, got {shown}")
            return value
        if self.kind is str:
            if value not in self.choices:
                raise SchemaError(f"{where} must be one of {', '.join(self.choices)}, got {shown}")
            return str(value)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise SchemaError(f"{where} must be a number, got {shown}")
        if not math.isfinite(value) or not self.low <= value <= self.high:
            span = f"{int(self.low)} to {int(self.high)}" if self.kind is int else f"{self.low:g} to {self.high:g}"
            raise SchemaError(f"{where} must be a finite number from {span}, got {shown}")
        if self.kind is int:
            if isinstance(value, float) and not value.is_integer():
                raise SchemaError(f"{where} must be a whole number, got {shown}")
            return int(value)
        return float(value)


CANDIDATE_SETTINGS: Mapping[str, SettingSpec] = MappingProxyType(
    {
        "tolerance_px": SettingSpec(float, 0.0, 10.0),
        "tolerance_metric": SettingSpec(str, choices=tuple(sorted(DISTANCE_METRICS))),
        "gross_area_px": SettingSpec(int, 0, MAX_AREA_PX),
        "topology": SettingSpec(bool),
        "min_area_px": SettingSpec(int, 0, MAX_AREA_PX),
        "grey_threshold": SettingSpec(float, 0.0, 1.0),
        "template_blur_px": SettingSpec(float, 0.0, 5.0),
        "gross_grey_mass": SettingSpec(float, 0.0, float(MAX_AREA_PX)),
    }
)
REGISTRATION_SETTINGS: Mapping[str, SettingSpec] = MappingProxyType({"subpixel": SettingSpec(bool)})


def _section(values: Any, specs: Mapping[str, SettingSpec], where: str) -> Mapping[str, Setting]:
    if not isinstance(values, Mapping):
        raise SchemaError(f"{where} must be an object of setting -> value, got a {type(values).__name__}")
    unknown = sorted(str(k) for k in values if k not in specs)
    if unknown:
        raise SchemaError(f"{where} has unknown key(s) {', '.join(map(repr, unknown))}; expected {', '.join(specs)}")
    return MappingProxyType(
        {name: specs[name].check(values[name], f"{where}.{name}") for name in specs if name in values}
    )


@dataclass(frozen=True)
class CaptureConfigs:
    """The engine configs one inspection runs with; None: the inspector's (bundle's) own."""

    candidates: CandidateConfig | None = None
    registration: RegistrationConfig | None = None


@dataclass(frozen=True)
class CaptureSettings:
    """Overrides of `CandidateConfig` and `RegistrationConfig` fields for one product's captures.

    Validated when built (known fields, types, ranges); immutable and hashable, so the engine configs
    of a setup are built once (`CaptureResolver`) and shared by every image and tile inspected with it.
    """

    candidates: Mapping[str, Setting] = field(default_factory=dict)
    registration: Mapping[str, Setting] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "candidates", _section(self.candidates, CANDIDATE_SETTINGS, "capture.candidates"))
        object.__setattr__(
            self, "registration", _section(self.registration, REGISTRATION_SETTINGS, "capture.registration")
        )

    def __hash__(self) -> int:
        return hash((tuple(sorted(self.candidates.items())), tuple(sorted(self.registration.items()))))

    @property
    def is_empty(self) -> bool:
        return not self.candidates and not self.registration

    def apply(self, candidates: CandidateConfig, registration: RegistrationConfig) -> CaptureConfigs:
        """The given (bundle) configs with this setup's overrides; a section without any stays None."""
        candidate_overrides: dict[str, Any] = dict(self.candidates)  # names and types checked when built
        registration_overrides: dict[str, Any] = dict(self.registration)
        return CaptureConfigs(
            candidates=replace(candidates, **candidate_overrides) if candidate_overrides else None,
            registration=replace(registration, **registration_overrides) if registration_overrides else None,
        )

    def to_dict(self) -> dict[str, dict[str, Setting]]:
        """The shape `aoi tolerance --fine-pitch` prints: {"registration": {...}, "candidates": {...}}."""
        return {"registration": dict(self.registration), "candidates": dict(self.candidates)}

    @classmethod
    def from_dict(cls, data: Any) -> CaptureSettings:
        """A setup from its `to_dict()` shape (or `aoi tolerance` output, whose report keys are ignored);
        unknown keys, wrong types and out-of-range values raise SchemaError naming the key."""
        if not isinstance(data, Mapping):
            raise SchemaError(f"capture must be an object with {' and '.join(SECTIONS)}, got a {type(data).__name__}")
        unknown = sorted(str(k) for k in data if k not in SECTIONS and k not in LEARNER_REPORT_KEYS)
        if unknown:
            raise SchemaError(
                f"capture has unknown key(s) {', '.join(map(repr, unknown))}; expected {', '.join(SECTIONS)}"
            )
        sections = {name: {} if data.get(name) is None else data[name] for name in SECTIONS}
        return cls(candidates=sections["candidates"], registration=sections["registration"])


_UNSEEN = object()  # no model seen yet


class CaptureResolver:
    """The engine configs of capture setups for one inspector: its bundle's own settings with a setup's
    overrides, built once per setup rather than per image or tile.

    An inspector that declares no settings (`meta.candidates` / `meta.registration`, as test doubles)
    is taken to use the engine's defaults.
    """

    MAX_SETUPS = 256  # distinct setups kept; more (products edited over months) start the memo afresh

    def __init__(self, inspector: object) -> None:
        self.inspector = inspector
        self._meta: object = _UNSEEN
        self.candidates = CandidateConfig()
        self.registration = RegistrationConfig()
        self._resolved: dict[CaptureSettings, CaptureConfigs] = {}
        self._lock = threading.Lock()
        with self._lock:
            self._follow_model()

    def _follow_model(self) -> None:
        """Start from the settings of the model the inspector serves now (a promoted model swapped in
        under a running line may bring others); the memo is for the old ones then. Holds the lock."""
        meta = getattr(self.inspector, "meta", None)
        if meta is self._meta:
            return
        self._meta = meta
        candidates = getattr(meta, "candidates", None)
        registration = getattr(meta, "registration", None)
        self.candidates = candidates if isinstance(candidates, CandidateConfig) else CandidateConfig()
        self.registration = registration if isinstance(registration, RegistrationConfig) else RegistrationConfig()
        self._resolved.clear()

    def resolve(self, settings: CaptureSettings | None) -> CaptureConfigs:
        """The configs for a product's setup; `CaptureConfigs()` (the inspector's own) without one."""
        if settings is None or settings.is_empty:
            return CaptureConfigs()
        with self._lock:
            self._follow_model()
            configs = self._resolved.get(settings)
            if configs is None:
                if len(self._resolved) >= self.MAX_SETUPS:
                    self._resolved.clear()
                configs = self._resolved[settings] = settings.apply(self.candidates, self.registration)
            return configs
