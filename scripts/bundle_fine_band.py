"""The shipped bundle with and without the finer band of `recipes/fineband-22-epochs.json` (not retrained).

Scores both on the next 200 demo boards (seed 2027) and on DeepPCB group77000 + group92000, and counts
synthetic mousebites that reach the candidate stage with each band.

    PYTHONPATH=scripts .venv/bin/python scripts/bundle_fine_band.py
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
from learning_loop_bench import next_boards

from aoi.data.synthetic import make_pair
from aoi.detection.bundle import ModelBundle
from aoi.detection.inspector import Inspector, analyse_pair
from aoi.evaluation.metrics import same_defect_scores
from aoi.training.data import load_dataset
from aoi.training.finetune import score_model


def main() -> None:
    shipped = ModelBundle.load()
    fine = replace(shipped.meta.candidates, fine_tolerance_px=1, fine_min_width_px=1.5)
    bundles = {
        "shipped": shipped,
        "shipped + fine band": ModelBundle(shipped.path, replace(shipped.meta, candidates=fine)),
    }
    demo = next_boards(Path("runs/bundle-fine-band/next"), 200, 2027)
    dataset = load_dataset(Path("../shared/datasets/deeppcb/PCBData"), "deeppcb", None)
    check = [p for p in dataset if p.group in ("group77000", "group92000")]
    for name, bundle in bundles.items():
        for set_name, pairs in (("next 200 demo boards", demo), ("DeepPCB 77000+92000", check)):
            print(json.dumps({"bundle": name, set_name: score_model(Inspector(bundle), pairs).as_dict()}), flush=True)
    rng = np.random.default_rng(1)
    reached = dict.fromkeys(bundles, 0)
    total = 0
    for _ in range(60):
        pair = make_pair(rng, defect_types=("mousebite",), n_defects=(2, 3))
        total += len(pair.labels)
        for name, bundle in bundles.items():
            boxes = analyse_pair(pair.test, pair.template, bundle.meta.registration, bundle.meta.candidates)
            found = boxes.candidates.boxes_xyxy
            reached[name] += sum(
                1 for t in pair.labels if len(found) and same_defect_scores(found, [t.box_px]).max() > 0
            )
    print(json.dumps({"synthetic mousebites": total, "reaching the candidate stage": reached}))


if __name__ == "__main__":
    main()
