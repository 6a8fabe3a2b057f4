"""The engine's surface as its callers see it: what the capture line and the API inspect through.

`aoi.detection.inspector.Inspector` satisfies it, and so does `aoi.detection.tiling.TiledInspector`
(which wraps one), so a caller takes either without asking which, and tests pass small doubles.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from aoi.detection.candidates import CandidateConfig
from aoi.registration import RegistrationConfig
from aoi.schema import DEFAULT_PX_PER_MM, InspectionResult
from aoi.verdict import VerdictRules


class InspectorLike(Protocol):
    """Inspects one test image against its template.

    `origin_px`: where the image's top-left lies in a larger image (a tile in its panel); it moves the
    defects' `box_mm`, not their `box_px`. `candidates` / `registration`: a product's capture setup
    (`aoi.pipeline.capture`); None: the inspector's own settings. `threshold`: the confidence a defect
    needs to be reported (None: the model's calibrated cut; `aoi eval` passes the model's score floor
    to rank every detection).
    """

    @property
    def model_version(self) -> str: ...

    def inspect(
        self,
        test: np.ndarray,
        template: np.ndarray,
        *,
        image_id: str,
        px_per_mm: float = DEFAULT_PX_PER_MM,
        rules: VerdictRules | None = None,
        product: str | None = None,
        origin_px: tuple[float, float] = (0.0, 0.0),
        candidates: CandidateConfig | None = None,
        registration: RegistrationConfig | None = None,
        threshold: float | None = None,
    ) -> InspectionResult: ...
