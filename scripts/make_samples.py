"""Regenerate the bundled sample boards (src/aoi/samples): synthetic pairs with every defect type.

Run: python scripts/make_samples.py   (deterministic: same seed, same files)
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from aoi.data.synthetic import make_pair
from aoi.schema import DefectType

OUT = Path(__file__).resolve().parent.parent / "src" / "aoi" / "samples"


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(20261127)
    truth = {}
    plans = [
        ("board01", dict(n_defects=(4, 6))),
        ("board02", dict(n_defects=(4, 6), misalign=True)),
        ("board03", dict(defect_types=[DefectType.SCRATCH, DefectType.OPEN], n_defects=(2, 3))),
        ("board04", dict(n_defects=(5, 7), noise_sigma=4.0, brightness=0.9)),
        ("board05", dict(n_defects=(0, 0))),
    ]
    for name, kwargs in plans:
        pair = make_pair(rng, **kwargs)
        cv2.imwrite(str(OUT / f"{name}_test.png"), pair.test)
        cv2.imwrite(str(OUT / f"{name}_temp.png"), pair.template)
        truth[name] = [{"type": t.type.value, "box_px": [round(v, 1) for v in t.box_px]} for t in pair.labels]
    (OUT / "truth.json").write_text(json.dumps(truth, indent=1) + "\n")
    print(f"wrote {len(plans)} pairs to {OUT}")


if __name__ == "__main__":
    main()
