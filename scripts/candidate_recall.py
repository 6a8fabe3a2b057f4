"""Candidate recall per DeepPCB group: the share of true defects that at least one candidate overlaps.

A defect no candidate overlaps can never be reported, whatever the classifier; this measures the
candidate stage alone (no network), for the bundle's candidate settings with optional overrides:

    .venv/bin/python scripts/candidate_recall.py ../shared/datasets/deeppcb/PCBData \
        --set '{"topology": true, "thin_group_px": 3, "fine_tolerance_px": 1, "fine_min_width_px": 1.5}'

Prints, per group, defects / overlapped / recall, the misses per type, and candidates per pair.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import json
from pathlib import Path

import numpy as np

from aoi.data.images import read_image
from aoi.detection.inspector import Inspector, analyse_pair
from aoi.training.trainer import load_dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, help="DeepPCB PCBData folder")
    parser.add_argument("--list", default="trainval.txt")
    parser.add_argument("--model", type=Path, default=None, help="bundle whose candidate settings to use")
    parser.add_argument("--set", default="{}", help="JSON of CandidateConfig fields to override")
    args = parser.parse_args()
    meta = Inspector.load(args.model).meta
    config = dataclasses.replace(meta.candidates, **json.loads(args.set))
    pairs = load_dataset(args.root, "deeppcb", args.list)
    per_group: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0])
    misses: collections.Counter[tuple[str, str]] = collections.Counter()
    n_candidates = 0
    for pair in pairs:
        cands = analyse_pair(read_image(pair.test_path), read_image(pair.template_path), meta.registration, config)
        boxes = cands.candidates.boxes_xyxy
        n_candidates += len(boxes)
        for truth in pair.labels:
            x1, y1, x2, y2 = truth.box_px
            hit = bool(
                len(boxes)
                and (
                    (np.minimum(boxes[:, 2], x2) > np.maximum(boxes[:, 0], x1))
                    & (np.minimum(boxes[:, 3], y2) > np.maximum(boxes[:, 1], y1))
                ).any()
            )
            per_group[pair.group][0] += 1
            per_group[pair.group][1] += int(hit)
            if not hit:
                misses[(pair.group, truth.type.value)] += 1
    print(f"candidate settings: {config}")
    for group, (n, overlapped) in sorted(per_group.items()):
        print(f"{group}: {n} defects, {overlapped} overlapped by a candidate, recall {overlapped / n:.4f}")
    for (group, kind), n in sorted(misses.items()):
        print(f"  missed {group} {kind}: {n}")
    print(f"candidates per pair: {n_candidates / max(len(pairs), 1):.2f}")


if __name__ == "__main__":
    main()
