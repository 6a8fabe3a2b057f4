"""The one result type that flows from the detector to the database, the API and the dashboard.

`Defect` and `InspectionResult` are frozen dataclasses validated when built; everything else
(API models, ORM rows, JSON files) converts to and from them through `to_dict` / `from_dict`.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

# DeepPCB's imaging scale (about 48 px per mm): the scale a product or a call gets when it names none.
# A product's own px_per_mm (its recipe) always wins; nothing else in the code assumes this number.
DEFAULT_PX_PER_MM = 48.0


class InspectionInputError(ValueError):
    """Base of every error caused by bad input (image, template, dataset, record): a 4xx, never a crash."""


class SchemaError(InspectionInputError):
    """A result object was built from values that break its contract."""


class DefectType(enum.StrEnum):
    """Defect classes. Values are the DeepPCB submission spellings (plus `scratch`)."""

    OPEN = "open"
    SHORT = "short"
    MOUSEBITE = "mousebite"
    SPUR = "spur"
    COPPER = "copper"
    PIN_HOLE = "pin-hole"
    SCRATCH = "scratch"

    @classmethod
    def parse(cls, value: str | DefectType) -> DefectType:
        if isinstance(value, DefectType):
            return value
        text = str(value).strip().lower().replace("_", "-")
        found = _TYPE_BY_NAME.get(text)
        if found is None:
            known = ", ".join(t.value for t in cls)
            raise SchemaError(f"unknown defect type {value!r}; expected one of {known}") from None
        return found


@dataclass(frozen=True)
class DefectTypeInfo:
    """Everything the project knows about one defect type, in one row of `DEFECT_CATALOGUE`."""

    type: DefectType
    deeppcb_code: int  # DeepPCB annotation code (1-6); scratch, which DeepPCB lacks, is 7
    colour_rgb: tuple[int, int, int]  # one colour everywhere: overlay PNG, dashboard marker, chart bar
    hotkey: str  # the dashboard's review key
    labels: Mapping[str, str]  # the name shown to an operator, per language
    aliases: tuple[str, ...] = ()  # other spellings accepted on input

    def as_dict(self) -> dict[str, Any]:
        r, g, b = self.colour_rgb
        return {
            "value": self.type.value,
            "deeppcb_code": self.deeppcb_code,
            "color": f"#{r:02x}{g:02x}{b:02x}",
            "hotkey": self.hotkey,
            "labels": dict(self.labels),
            "aliases": list(self.aliases),
        }


# The one catalogue of defect types: adding a type is one row here (plus its painter and model class).
DEFECT_CATALOGUE: tuple[DefectTypeInfo, ...] = (
    DefectTypeInfo(DefectType.OPEN, 1, (255, 0, 0), "1", {"en": "open", "ko": "단선"}),
    DefectTypeInfo(DefectType.SHORT, 2, (255, 165, 0), "2", {"en": "short", "ko": "단락"}),
    DefectTypeInfo(DefectType.MOUSEBITE, 3, (255, 215, 0), "3", {"en": "mousebite", "ko": "마우스바이트"}),
    DefectTypeInfo(DefectType.SPUR, 4, (0, 200, 0), "4", {"en": "spur", "ko": "돌기"}, ("protrusion",)),
    DefectTypeInfo(DefectType.COPPER, 5, (0, 128, 255), "5", {"en": "copper", "ko": "잔동"}, ("spurious-copper",)),
    DefectTypeInfo(DefectType.PIN_HOLE, 6, (255, 0, 255), "6", {"en": "pin-hole", "ko": "핀홀"}, ("pinhole",)),
    DefectTypeInfo(DefectType.SCRATCH, 7, (255, 105, 180), "7", {"en": "scratch", "ko": "스크래치"}),
)
TYPE_INFO: Mapping[DefectType, DefectTypeInfo] = {info.type: info for info in DEFECT_CATALOGUE}
DEEPPCB_CODES: dict[int, DefectType] = {info.deeppcb_code: info.type for info in DEFECT_CATALOGUE}
CODE_OF_TYPE: dict[DefectType, int] = {t: c for c, t in DEEPPCB_CODES.items()}
_TYPE_BY_NAME: dict[str, DefectType] = {
    name: info.type for info in DEFECT_CATALOGUE for name in (info.type.value, *info.aliases)
}


def _check_catalogue() -> None:
    """Every type has exactly one row, and codes, hotkeys and spellings are unique."""
    rows = [info.type for info in DEFECT_CATALOGUE]
    if sorted(rows) != sorted(DefectType) or len(set(rows)) != len(rows):
        raise AssertionError("DEFECT_CATALOGUE must hold one row per DefectType")
    for field_name, values in (
        ("deeppcb_code", [i.deeppcb_code for i in DEFECT_CATALOGUE]),
        ("hotkey", [i.hotkey for i in DEFECT_CATALOGUE]),
        ("spelling", [n for i in DEFECT_CATALOGUE for n in (i.type.value, *i.aliases)]),
    ):
        if len(set(values)) != len(values):
            raise AssertionError(f"DEFECT_CATALOGUE has a repeated {field_name}")


_check_catalogue()


class Verdict(enum.StrEnum):
    PASS = "pass"
    FAIL = "fail"


BoxXYXY = tuple[float, float, float, float]


def _check_box(name: str, box: Sequence[float]) -> BoxXYXY:
    if len(box) != 4:
        raise SchemaError(f"{name} must have 4 numbers [x1, y1, x2, y2], got {len(box)}")
    x1, y1, x2, y2 = (float(v) for v in box)
    if not all(math.isfinite(v) for v in (x1, y1, x2, y2)):
        raise SchemaError(f"{name} has a non-finite coordinate: {box}")
    if x2 < x1 or y2 < y1:
        raise SchemaError(f"{name} must satisfy x1 <= x2 and y1 <= y2, got {box}")
    return (x1, y1, x2, y2)


@dataclass(frozen=True)
class Defect:
    """One reported defect. `box_px` is [x1, y1, x2, y2] in image pixels; `box_mm` the same in mm."""

    type: DefectType
    confidence: float
    box_px: BoxXYXY
    box_mm: BoxXYXY | None = None
    id: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "type", DefectType.parse(self.type))
        conf = float(self.confidence)
        if not (0.0 <= conf <= 1.0) or math.isnan(conf):
            raise SchemaError(f"confidence must be in [0, 1], got {self.confidence}")
        object.__setattr__(self, "confidence", conf)
        object.__setattr__(self, "box_px", _check_box("box_px", self.box_px))
        if self.box_mm is not None:
            object.__setattr__(self, "box_mm", _check_box("box_mm", self.box_mm))

    @property
    def size_wh_px(self) -> tuple[float, float]:
        x1, y1, x2, y2 = self.box_px
        return (x2 - x1, y2 - y1)

    def with_mm(self, px_per_mm: float, origin_px: tuple[float, float] = (0.0, 0.0)) -> Defect:
        """Return a copy whose `box_mm` is computed from `box_px` at `px_per_mm`."""
        if not px_per_mm > 0:
            raise SchemaError(f"px_per_mm must be positive, got {px_per_mm}")
        ox, oy = origin_px
        x1, y1, x2, y2 = self.box_px
        mm = ((x1 + ox) / px_per_mm, (y1 + oy) / px_per_mm, (x2 + ox) / px_per_mm, (y2 + oy) / px_per_mm)
        return replace(self, box_mm=tuple(round(v, 4) for v in mm))  # type: ignore[arg-type]

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type.value,
            "confidence": round(self.confidence, 5),
            "box_px": [round(v, 2) for v in self.box_px],
            "box_mm": None if self.box_mm is None else [round(v, 4) for v in self.box_mm],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Defect:
        try:
            return cls(
                type=DefectType.parse(data["type"]),
                confidence=float(data["confidence"]),
                box_px=tuple(data["box_px"]),  # type: ignore[arg-type]
                box_mm=None if data.get("box_mm") is None else tuple(data["box_mm"]),  # type: ignore[arg-type]
                id=None if data.get("id") is None else str(data["id"]),
            )
        except (KeyError, TypeError) as exc:
            raise SchemaError(f"malformed defect record: {exc}") from exc


# Lot, panel and line ids: what a barcode, a file name or an MES hands over, and what an operator types
# into a search box and a report URL. A letter or digit first, then letters, digits and . _ - : # +
# (no space, no slash, no control character), at most 64 characters.
TRACE_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:#+-]{0,63}")
TRACE_ID_MAX_CHARS = 64
TRACE_FIELDS = ("lot", "panel_id", "line")


def check_trace_id(value: str, what: str) -> str:
    """`value` when it is a safe lot, panel or line id; SchemaError naming `what` otherwise."""
    if not isinstance(value, str) or TRACE_ID_PATTERN.fullmatch(value) is None:
        shown = repr(value)[:80]
        raise SchemaError(
            f"{what} {shown} must be 1 to {TRACE_ID_MAX_CHARS} letters, digits or . _ - : # +, starting with a"
            " letter or a digit"
        )
    return value


@dataclass(frozen=True)
class Trace:
    """Where an inspected board comes from: its production lot, its panel (serial) id and the line that
    inspected it. Each may be unknown (None); values are checked with `check_trace_id` when built."""

    lot: str | None = None
    panel_id: str | None = None
    line: str | None = None

    def __post_init__(self) -> None:
        for name in TRACE_FIELDS:
            value = getattr(self, name)
            if value is not None:
                check_trace_id(value, name)

    @property
    def is_empty(self) -> bool:
        return self.lot is None and self.panel_id is None and self.line is None

    def or_else(self, other: Trace) -> Trace:
        """This trace with each unknown field taken from `other`."""
        return Trace(
            lot=self.lot if self.lot is not None else other.lot,
            panel_id=self.panel_id if self.panel_id is not None else other.panel_id,
            line=self.line if self.line is not None else other.line,
        )

    def to_dict(self) -> dict[str, str | None]:
        return {"lot": self.lot, "panel_id": self.panel_id, "line": self.line}

    @classmethod
    def from_dict(cls, data: Any) -> Trace:
        if data is None:
            return cls()
        if not isinstance(data, Mapping):
            raise SchemaError(f"trace must be an object with {', '.join(TRACE_FIELDS)}, got a {type(data).__name__}")
        return cls(**{name: data.get(name) for name in TRACE_FIELDS})


@dataclass(frozen=True)
class InspectionResult:
    """The outcome of inspecting one tested image against its golden template."""

    image_id: str
    image_size_wh: tuple[int, int]
    defects: tuple[Defect, ...]
    verdict: Verdict
    px_per_mm: float
    model_version: str
    timings_ms: Mapping[str, float] = field(default_factory=dict)
    registration: Mapping[str, float] = field(default_factory=dict)
    product: str | None = None
    trace: Trace = field(default_factory=Trace)  # lot, panel and line, when the source knows them

    def __post_init__(self) -> None:
        if not self.image_id:
            raise SchemaError("image_id must not be empty")
        w, h = self.image_size_wh
        if w <= 0 or h <= 0:
            raise SchemaError(f"image_size_wh must be positive, got {self.image_size_wh}")
        object.__setattr__(self, "image_size_wh", (int(w), int(h)))
        object.__setattr__(self, "defects", tuple(self.defects))
        object.__setattr__(self, "verdict", Verdict(self.verdict))
        if not self.px_per_mm > 0:
            raise SchemaError(f"px_per_mm must be positive, got {self.px_per_mm}")
        for d in self.defects:
            if not isinstance(d, Defect):
                raise SchemaError(f"defects must be Defect objects, got {type(d).__name__}")
        if not isinstance(self.trace, Trace):
            raise SchemaError(f"trace must be a Trace, got {type(self.trace).__name__}")

    def to_dict(self) -> dict[str, Any]:
        """The result as JSON; `trace` only when something of it is known (results without one keep their shape)."""
        data: dict[str, Any] = {
            "image_id": self.image_id,
            "product": self.product,
            "image_size_wh": list(self.image_size_wh),
            "verdict": self.verdict.value,
            "px_per_mm": self.px_per_mm,
            "model_version": self.model_version,
            "defects": [d.to_dict() for d in self.defects],
            "timings_ms": {k: round(float(v), 3) for k, v in self.timings_ms.items()},
            "registration": {k: round(float(v), 4) for k, v in self.registration.items()},
        }
        if not self.trace.is_empty:
            data["trace"] = self.trace.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> InspectionResult:
        try:
            return cls(
                image_id=str(data["image_id"]),
                product=data.get("product"),
                image_size_wh=tuple(data["image_size_wh"]),  # type: ignore[arg-type]
                verdict=Verdict(data["verdict"]),
                px_per_mm=float(data["px_per_mm"]),
                model_version=str(data["model_version"]),
                defects=tuple(Defect.from_dict(d) for d in data.get("defects", [])),
                timings_ms=dict(data.get("timings_ms", {})),
                registration=dict(data.get("registration", {})),
                trace=Trace.from_dict(data.get("trace")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, SchemaError):
                raise
            raise SchemaError(f"malformed inspection record: {exc}") from exc


@dataclass(frozen=True)
class InspectionFailure:
    """A per-image error: the batch records it and carries on with the other images."""

    image_id: str
    error: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"image_id": self.image_id, "status": "error", "error": self.error, "message": self.message}
