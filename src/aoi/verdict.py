"""Pass/fail rules of a product recipe and the verdict they give an inspection."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aoi.schema import Defect, DefectType, SchemaError, Verdict


@dataclass(frozen=True)
class TypeRule:
    """For one defect type: at most `max_count` defects of at least `min_size_um` are tolerated."""

    max_count: int = 0
    min_size_um: float = 0.0

    def __post_init__(self) -> None:
        if self.max_count < 0:
            raise SchemaError(f"max_count must be >= 0, got {self.max_count}")
        if self.min_size_um < 0:
            raise SchemaError(f"min_size_um must be >= 0, got {self.min_size_um}")


@dataclass(frozen=True)
class VerdictRules:
    """Per-type rules; a type without a rule uses `default` (by default: any defect fails)."""

    per_type: Mapping[DefectType, TypeRule] = field(default_factory=dict)
    default: TypeRule = TypeRule()
    min_confidence: float = 0.0

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
        if not data:
            return cls()
        try:
            per_type = {
                DefectType.parse(k): TypeRule(int(v.get("max_count", 0)), float(v.get("min_size_um", 0.0)))
                for k, v in dict(data.get("per_type", {})).items()
            }
            d = data.get("default") or {}
            default = TypeRule(int(d.get("max_count", 0)), float(d.get("min_size_um", 0.0)))
            return cls(per_type=per_type, default=default, min_confidence=float(data.get("min_confidence", 0.0)))
        except (AttributeError, TypeError, ValueError) as exc:
            if isinstance(exc, SchemaError):
                raise
            raise SchemaError(f"malformed verdict rules: {exc}") from exc
