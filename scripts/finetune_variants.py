"""Fine-tuning variants on the reviews of a learning-loop benchmark run: replay size and settings.

Takes the line that `scripts/learning_loop_bench.py --out runs/loop-bench` left, fine-tunes v5 on its
older reviewed boards with REPLAY DeepPCB pairs (picked with seed 0 from the five groups v5 trained on)
and the FineTuneSettings given as JSON, and scores the candidate on the next 200 demo boards (seed
2027) and on DeepPCB group77000 + group92000.

    PYTHONPATH=scripts .venv/bin/python scripts/finetune_variants.py 300 '{"learning_rate": 0.0003}'
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from learning_loop_bench import next_boards

from aoi.detection.bundle import ModelBundle
from aoi.detection.inspector import Inspector
from aoi.storage import Storage
from aoi.training.data import load_dataset
from aoi.training.finetune import FineTuneSettings, fine_tune, score_model, split_by_time
from aoi.training.retrain import stage_reviews

CHECK_GROUPS = ("group77000", "group92000")


def main() -> None:
    replay_pairs = int(sys.argv[1])
    settings = FineTuneSettings(**(json.loads(sys.argv[2]) if len(sys.argv) > 2 else {}))
    work = Path("runs/finetune-variants")
    storage = Storage.open("runs/loop-bench/line")
    staged = stage_reviews(storage, work / "staged")
    storage.close()
    train, _recent = split_by_time(staged.pairs, staged.captured_at, settings.holdout_fraction)
    demo = next_boards(work / "next", 200, 2027)
    dataset = load_dataset(Path("../shared/datasets/deeppcb/PCBData"), "deeppcb", None)
    check = [p for p in dataset if p.group in CHECK_GROUPS]
    pool = [p for p in dataset if p.group not in CHECK_GROUPS]
    picked = np.random.default_rng(0).choice(len(pool), replay_pairs, replace=False) if replay_pairs else []
    replay = [pool[i] for i in picked]
    result = fine_tune(ModelBundle.load(), train, work / "out", settings, checks={}, replay=replay, log=lambda _: None)
    candidate = Inspector(result.bundle)
    for name, pairs in (("next 200 demo boards", demo), ("DeepPCB 77000+92000", check)):
        print(
            json.dumps(
                {"replay": replay_pairs, "settings": sys.argv[2:], name: score_model(candidate, pairs).as_dict()}
            )
        )


if __name__ == "__main__":
    main()
