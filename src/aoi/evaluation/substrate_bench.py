"""Fine-pitch substrate benchmark: found-rate per defect type and false calls per clean capture.

For each synthetic design (`aoi.data.substrate`), the capture's edge band and gross size are learnt
from a few good captures of that design (as a line would from its first good panels), then every
defect type is painted on fresh captures, half of them shifted and rotated. A defect is found when a
reported defect's box overlaps its truth box; the type is counted separately. Clean captures give
the false calls per board. Nothing here is tuned on the captures it scores.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from aoi.data.substrate import capture, generate_design
from aoi.detection.inspector import Inspector
from aoi.detection.tolerance import learn_fine_pitch_setup
from aoi.schema import DefectType

GOOD_CAPTURES_FOR_LEARNING = 3


def _overlaps(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def run_substrate_bench(inspector: Inspector, designs: int, per_type: int, seed: int = 6000) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    found = {t.value: 0 for t in DefectType}
    typed = {t.value: 0 for t in DefectType}
    total = {t.value: 0 for t in DefectType}
    false_calls = clean = 0
    bands = []
    cut = inspector.meta.threshold
    for _ in range(designs):
        design = generate_design(rng)
        good = [capture(design, rng, None, shifted=i % 2 == 1) for i in range(GOOD_CAPTURES_FOR_LEARNING)]
        setup = learn_fine_pitch_setup([(g.test, g.template, ()) for g in good], inspector.meta.candidates)
        bands.append(setup.tolerance.tolerance_px)
        config, reg = setup.candidates, setup.registration
        for k in range(per_type):
            for kind in DefectType:
                cap = capture(design, rng, kind, shifted=k % 2 == 1)
                found_here = inspector.detect(cap.test, cap.template, candidates=config, registration=reg)[0]
                dets = [d for d in found_here if d.confidence >= cut]
                for truth in cap.labels:
                    total[kind.value] += 1
                    hits = [d for d in dets if _overlaps(d.box_px, truth.box_px)]
                    found[kind.value] += bool(hits)
                    typed[kind.value] += any(d.type is kind for d in hits)
            clean_cap = capture(design, rng, None, shifted=k % 2 == 1)
            clean_found = inspector.detect(clean_cap.test, clean_cap.template, candidates=config, registration=reg)[0]
            false_calls += sum(d.confidence >= cut for d in clean_found)
            clean += 1
    all_found = sum(found.values()) / max(sum(total.values()), 1)
    return {
        "designs": designs,
        "captures_per_type_per_design": per_type,
        "learnt_band_px": [round(b, 2) for b in bands],
        "found_rate": {t: round(found[t] / total[t], 4) if total[t] else None for t in total},
        "typed_right_rate": {t: round(typed[t] / total[t], 4) if total[t] else None for t in total},
        "defects": sum(total.values()),
        "found_all": round(all_found, 4),
        "clean_captures": clean,
        "false_calls_per_clean_capture": round(false_calls / max(clean, 1), 4),
    }
