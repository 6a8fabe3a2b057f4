"""Where the real datasets lie, when the machine holds them (tests that need one skip without it)."""

from __future__ import annotations

from pathlib import Path

SHARED_DEEPPCB = Path(__file__).resolve().parents[2].parent / "shared" / "datasets" / "deeppcb" / "PCBData"
