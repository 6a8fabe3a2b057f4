"""Review -> retrain -> promote on the demo line, and the false-call rate on the next demo boards.

1. A real line (`LinePipeline`, the bundled model, a SQLite store) inspects REVIEW demo boards from
   `DemoSource` (the demo line's generator: half good, some misaligned, 30% dusty).
2. An operator who knows each board's true defects reviews every reported defect
   (`aoi.evaluation.simulated_operator`: confirm, reclassify, false call, add the missed ones).
3. `retrain_from_reviews` (what `aoi train --reviews DATA_DIR` runs) fine-tunes the serving model on
   the older reviewed boards (with `--deeppcb`, replaying DeepPCB pairs of the groups it trained on),
   compares it on the most recent ones (and on the DeepPCB check groups) and promotes it if not worse.
4. The next NEXT demo boards (another seed, never reviewed) are inspected by the model that served
   before and by the one that serves now; false calls per board, F-score and recall of each.

    .venv/bin/python scripts/learning_loop_bench.py --review 300 --next 200 --out runs/loop-bench \
        --deeppcb ../shared/datasets/deeppcb/PCBData   # replay 300 pairs of 5 groups, check on the other 2
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

import cv2
import numpy as np

from aoi.api.line import DatabaseTemplateProvider
from aoi.data.annotations import AnnotatedPair, LabeledBox
from aoi.detection.inspector import Inspector
from aoi.detection.model_registry import ModelRegistry
from aoi.evaluation.simulated_operator import review_with_truth
from aoi.pipeline import DemoSource, LinePipeline
from aoi.pipeline.sources import demo_board
from aoi.storage import Storage
from aoi.storage.inspections import InspectionFilter, InspectionRepository
from aoi.training.data import load_dataset
from aoi.training.finetune import FineTuneSettings, score_model
from aoi.training.retrain import retrain_from_reviews


def run_demo_line(storage: Storage, inspector: Inspector, boards: int, seed: int) -> dict[str, list[LabeledBox]]:
    """The demo line over `boards` boards; returns each stored board's true defects by image id."""
    truth_by_index: list[list[LabeledBox]] = []

    def board_with_truth(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        pair = demo_board(rng)
        truth_by_index.append(list(pair.labels))
        return pair.template, pair.test

    line = LinePipeline(inspector, storage.sink(), DatabaseTemplateProvider(storage))
    line.add_source(DemoSource(None, rate_hz=1000.0, seed=seed, limit=boards, pair_factory=board_with_truth))
    with line:
        while sum(line.metrics()["counts"][k] for k in ("stored", "failed", "store_errors")) < boards:
            time.sleep(0.2)
    with storage.db.session() as session:
        stored, _ = InspectionRepository(session).page(InspectionFilter(), boards, 0)
    return {s.result.image_id: truth_by_index[int(s.result.image_id.rsplit("-", 1)[1])] for s in stored}


def next_boards(folder: Path, boards: int, seed: int) -> list[AnnotatedPair]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    pairs = []
    for i in range(boards):
        pair = demo_board(rng)
        test, template = folder / f"{i:04d}_test.png", folder / f"{i:04d}_temp.png"
        cv2.imwrite(str(test), pair.test)
        cv2.imwrite(str(template), pair.template)
        pairs.append(AnnotatedPair(f"next-{i:04d}", test, template, tuple(pair.labels), "demo"))
    return pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--review", type=int, default=300, help="demo boards inspected and reviewed")
    parser.add_argument("--next", type=int, default=200, help="later demo boards the two models are scored on")
    parser.add_argument("--epochs", type=int, default=FineTuneSettings().epochs)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--out", type=Path, default=Path("runs/loop-bench"))
    parser.add_argument(
        "--deeppcb", type=Path, help="DeepPCB root: replay its training groups, check its --check-groups"
    )
    parser.add_argument("--check-groups", default="group77000,group92000")
    parser.add_argument("--replay-pairs", type=int, default=300)
    args = parser.parse_args()
    if args.out.exists():
        shutil.rmtree(args.out)
    started = time.time()
    storage = Storage.open(args.out / "line")
    base = Inspector.load()
    truth = run_demo_line(storage, base, args.review, args.seed)
    tally = review_with_truth(storage, truth, _all_ids(storage))
    held_out: dict[str, list[AnnotatedPair]] = {}
    replay: list[AnnotatedPair] = []
    if args.deeppcb is not None:
        groups = set(args.check_groups.split(","))
        dataset = load_dataset(args.deeppcb, "deeppcb", None)
        held_out[f"DeepPCB {args.check_groups}"] = [p for p in dataset if p.group in groups]
        pool = [p for p in dataset if p.group not in groups]
        picked = np.random.default_rng(args.seed).choice(len(pool), min(args.replay_pairs, len(pool)), replace=False)
        replay = [pool[i] for i in sorted(picked)]
    registry = ModelRegistry(storage.data_dir / "models")
    outcome = retrain_from_reviews(
        storage,
        registry,
        base.bundle,
        args.out / "retrain",
        FineTuneSettings(epochs=args.epochs),
        held_out=held_out,
        replay=replay,
    )
    storage.close()
    serving_bundle = registry.active_bundle()
    now = Inspector(serving_bundle) if serving_bundle is not None else base
    pairs = next_boards(args.out / "next", args.next, args.seed + 1)
    before, after = score_model(base, pairs), score_model(now, pairs)
    report = {
        "review_boards": args.review,
        "reviews": vars(tally),
        "candidate": outcome.registered.version,
        "promoted": outcome.promoted,
        "comparison": outcome.result.comparison.as_dict(),
        "next_boards": args.next,
        "before": before.as_dict(),
        "after": after.as_dict(),
        "serving_after": now.model_version,
        "seconds": round(time.time() - started),
        "load_average_1min": round(os.getloadavg()[0], 2),
        "cpus": os.cpu_count(),
    }
    print(json.dumps(report, indent=1))


def _all_ids(storage: Storage) -> list[str]:
    with storage.db.session() as session:
        stored, _ = InspectionRepository(session).page(InspectionFilter(), 1_000_000, 0)
    return [s.id for s in stored]


if __name__ == "__main__":
    main()
