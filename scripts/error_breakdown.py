"""Where a model loses a DeepPCB group: each true defect found, mistyped, mis-boxed, scored low, dropped
as background, or never a candidate; and the unmatched detections (false calls) by type.

    .venv/bin/python scripts/error_breakdown.py ../shared/datasets/deeppcb/PCBData runs/cv/group20085/bundle \
        group20085 --threshold 0.5

Use it on a group the model never trained on (a cross-validation fold's scored or calibration group).
A truth is "found" when a detection of its type overlaps it at IoU >= 0.33 with a confidence at or above
the threshold; "misboxed" when the best-overlapping detection is under IoU 0.33; "candidate-dropped"
when a candidate overlapped it but no detection did.
"""

from __future__ import annotations

import argparse
import collections
from pathlib import Path

import numpy as np

from aoi.data.images import read_image
from aoi.detection.boxes import iou_matrix
from aoi.detection.bundle import ModelBundle
from aoi.detection.inspector import Inspector
from aoi.training.trainer import load_dataset

MATCH_IOU = 0.33


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, help="DeepPCB PCBData folder")
    parser.add_argument("model", type=Path, help="model bundle folder")
    parser.add_argument("group", help="DeepPCB group to score, e.g. group20085")
    parser.add_argument("--list", default="trainval.txt")
    parser.add_argument("--threshold", type=float, default=None, help="default: the bundle's")
    args = parser.parse_args()
    inspector = Inspector(ModelBundle.load(args.model))
    threshold = inspector.meta.threshold if args.threshold is None else args.threshold
    pairs = [p for p in load_dataset(args.root, "deeppcb", args.list) if p.group == args.group]
    outcome: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    false_calls: collections.Counter[str] = collections.Counter()
    for pair in pairs:
        test, template = read_image(pair.test_path), read_image(pair.template_path)
        detections, analysed, _ = inspector.detect(test, template, score_floor=inspector.meta.score_floor)
        det_boxes = np.array([d.box_px for d in detections], np.float32).reshape(-1, 4)
        truth_boxes = np.array([t.box_px for t in pair.labels], np.float32).reshape(-1, 4)
        cand_boxes = analysed.candidates.boxes_xyxy.astype(np.float32).reshape(-1, 4)
        ious = iou_matrix(truth_boxes, det_boxes) if len(det_boxes) and len(truth_boxes) else None
        touched = iou_matrix(truth_boxes, cand_boxes) > 0 if len(cand_boxes) and len(truth_boxes) else None
        matched: set[int] = set()
        for i, truth in enumerate(pair.labels):
            best = int(np.argmax(ious[i])) if ious is not None else -1
            best_iou = float(ious[i, best]) if ious is not None else 0.0
            if best_iou >= MATCH_IOU:
                found = detections[best]
                matched.add(best)
                if found.type is not truth.type:
                    kind = f"mistyped as {found.type.value}"
                elif found.confidence < threshold:
                    kind = "low score"
                else:
                    kind = "found"
            elif best_iou > 0:
                kind = "misboxed"
            elif touched is not None and touched[i].any():
                kind = "candidate dropped"
            else:
                kind = "no candidate"
            outcome[truth.type.value][kind] += 1
        for j, found in enumerate(detections):
            if j not in matched and found.confidence >= threshold:
                false_calls[found.type.value] += 1
    print(f"{args.group}: {len(pairs)} pairs, threshold {threshold}")
    total: collections.Counter[str] = collections.Counter()
    for kind, counts in sorted(outcome.items()):
        total.update(counts)
        print(f"  {kind}: {dict(counts.most_common())}")
    print(f"  all: {dict(total.most_common())}")
    print(f"  false calls at the threshold: {dict(false_calls.most_common())}")


if __name__ == "__main__":
    main()
