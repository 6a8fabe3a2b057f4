"""Pass/fail rules of a product recipe and the verdict they give an inspection."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aoi.schema import Defect, DefectType, SchemaError, Verdict

MAX_COUNT_LIMIT = 1_000_000
_RULES_KEYS = ("per_type", "default", "min_confidence")
_TYPE_RULE_KEYS = ("max_count", "min_size_um")


def _known_keys(data: Mapping[str, Any], known: tuple[str, ...], where: str) -> None:
    unknown = sorted(str(k) for k in data if k not in known)
    if unknown:
        raise SchemaError(f"{where} has unknown key(s) {', '.join(map(repr, unknown))}; expected {', '.join(known)}")


def _number(value: Any, what: str) -> float:
    """A finite int or float (not a bool, not a string): NaN and infinities would be stored as null."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SchemaError(f"{what} must be a number, got {_shown(value)}")
    try:
        number = float(value)
    except OverflowError:  # an int beyond the float range (10**400): no finite float holds it
        number = math.inf
    if not math.isfinite(number):
        raise SchemaError(f"{what} must be a finite number, got {_shown(value)}")
    return number


def _shown(value: Any) -> str:
    """`value` for an error message, a huge integer cut short (its repr could be thousands of digits)."""
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:20]}...({len(text)} characters)"


@dataclass(frozen=True)
class TypeRule:
    """For one defect type: at most `max_count` defects of at least `min_size_um` are tolerated."""

    max_count: int = 0
    min_size_um: float = 0.0

    def __post_init__(self) -> None:
        count = self.max_count
        if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= MAX_COUNT_LIMIT:
            raise SchemaError(f"max_count must be an integer from 0 to {MAX_COUNT_LIMIT}, got {_shown(count)}")
        size = _number(self.min_size_um, "min_size_um")
        if size < 0:
            raise SchemaError(f"min_size_um must be >= 0, got {size}")
        object.__setattr__(self, "min_size_um", size)

    @classmethod
    def from_dict(cls, data: Any, where: str) -> TypeRule:
        if not isinstance(data, Mapping):
            kind = type(data).__name__
            raise SchemaError(f"{where} must be an object with {' and '.join(_TYPE_RULE_KEYS)}, got a {kind}")
        _known_keys(data, _TYPE_RULE_KEYS, where)
        count = data.get("max_count", 0)
        if isinstance(count, float) and count.is_integer():  # JSON 2.0
            count = int(count)
        try:
            return cls(max_count=count, min_size_um=data.get("min_size_um", 0.0))
        except SchemaError as exc:
            raise SchemaError(f"{where}: {exc}") from None


@dataclass(frozen=True)
class VerdictRules:
    """Per-type rules; a type without a rule uses `default` (by default: any defect fails)."""

    per_type: Mapping[DefectType, TypeRule] = field(default_factory=dict)
    default: TypeRule = TypeRule()
    min_confidence: float = 0.0

    def __post_init__(self) -> None:
        confidence = _number(self.min_confidence, "min_confidence")
        if not 0.0 <= confidence <= 1.0:  # above 1 every defect would be ignored: a failing board passes
            raise SchemaError(f"min_confidence must be from 0 to 1, got {confidence}")
        object.__setattr__(self, "min_confidence", confidence)

    def rule_for(self, defect_type: DefectType) -> TypeRule:
        return self.per_type.get(defect_type, self.default)

    def counted(self, defect: Defect, px_per_mm: float) -> bool:
        """A defect counts against its type's limit when it is confident and large enough."""
        if defect.confidence < self.min_confidence:
            return False
        w, h = defect.size_wh_px
        size_um = max(w, h) / px_per_mm * 1000.0
        return size_um >= self.rule_for(defect.type).min_size_um

    def verdict(self, defects: Iterable[Defect], px_per_mm: float) -> Verdict:
        counts: dict[DefectType, int] = {}
        for d in defects:
            if self.counted(d, px_per_mm):
                counts[d.type] = counts.get(d.type, 0) + 1
        failed = any(n > self.rule_for(t).max_count for t, n in counts.items())
        return Verdict.FAIL if failed else Verdict.PASS

    def to_dict(self) -> dict[str, Any]:
        return {
            "per_type": {
                t.value: {"max_count": r.max_count, "min_size_um": r.min_size_um} for t, r in self.per_type.items()
            },
            "default": {"max_count": self.default.max_count, "min_size_um": self.default.min_size_um},
            "min_confidence": self.min_confidence,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> VerdictRules:
        """Rules from their `to_dict()` shape; unknown keys, wrong types and out-of-range values are refused."""
        if not data:
            return cls()
        if not isinstance(data, Mapping):
            raise SchemaError(f"verdict rules must be an object with {', '.join(_RULES_KEYS)}")
        _known_keys(data, _RULES_KEYS, "rules")
        per_type_data = data.get("per_type")
        per_type_data = {} if per_type_data is None else per_type_data
        if not isinstance(per_type_data, Mapping):
            raise SchemaError("rules.per_type must be an object of defect type -> rule")
        per_type: dict[DefectType, TypeRule] = {}
        for name, rule in per_type_data.items():
            defect_type = DefectType.parse(name)
            if defect_type in per_type:
                raise SchemaError(f"rules.per_type names {defect_type.value!r} twice")
            per_type[defect_type] = TypeRule.from_dict(rule, f"rules.per_type.{name}")
        default_data = data.get("default")
        default = TypeRule.from_dict({} if default_data is None else default_data, "rules.default")
        return cls(per_type=per_type, default=default, min_confidence=data.get("min_confidence", 0.0))
