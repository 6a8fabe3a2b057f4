"""The defect-type catalogue, served so the dashboard and clients never keep their own copy."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from aoi.schema import DEFECT_CATALOGUE

router = APIRouter(tags=["catalogue"])


@router.get("/defect-types")
def defect_types() -> list[dict[str, Any]]:
    """Every defect type the service knows, in review-key order: value, DeepPCB code, colour (the
    overlay's and the dashboard's), review hotkey, name per language, accepted aliases. Open to all:
    it is vocabulary, not stored data."""
    return [info.as_dict() for info in DEFECT_CATALOGUE]
