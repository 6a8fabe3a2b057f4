"""The floor: the least work any template-comparison inspector must do per pair, on this machine, now.

Decode both JPEGs, take their absolute difference, threshold it, open it with a 3x3 square and label
the connected components, in 2 processes (one per core), start-up included. Nothing here is the
engine: it is the yardstick that engine throughput is divided by, measured in the same run, because
absolute pairs/s on a shared machine move +-40% with its load.

    .venv/bin/python scripts/bench_floor.py ../shared/datasets/deeppcb/PCBData --list recipes/deeppcb-speed-500.txt

Last line: JSON with pairs, seconds, pairs_per_s, workers and the 1-minute load average.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np

KERNEL = np.ones((3, 3), np.uint8)


def _pair_paths(root: Path, list_file: Path) -> list[tuple[str, str]]:
    pairs = []
    for line in list_file.read_text().splitlines():
        if not line.split():
            continue
        stem = (root / line.split()[0]).with_suffix("")
        pairs.append((str(stem.with_name(stem.name + "_test.jpg")), str(stem.with_name(stem.name + "_temp.jpg"))))
    return pairs


def _floor_work(paths: tuple[str, str]) -> int:
    test = cv2.imread(paths[0], cv2.IMREAD_GRAYSCALE)
    template = cv2.imread(paths[1], cv2.IMREAD_GRAYSCALE)
    if test is None or template is None:
        raise SystemExit(f"cannot read {paths}")
    _, diff = cv2.threshold(cv2.absdiff(test, template), 127, 1, cv2.THRESH_BINARY)
    opened = cv2.morphologyEx(diff, cv2.MORPH_OPEN, KERNEL)
    n, _ = cv2.connectedComponents(opened, connectivity=8)
    return n - 1


def _init_worker() -> None:
    cv2.setNumThreads(1)


def run_floor(root: Path, list_file: Path, workers: int = 2) -> dict[str, float]:
    pairs = _pair_paths(root, list_file)
    if not pairs:
        raise SystemExit(f"{list_file} names no pairs")
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    with mp.get_context("fork").Pool(workers, initializer=_init_worker) as pool:
        blobs = sum(pool.imap_unordered(_floor_work, pairs, chunksize=8))
    seconds = time.perf_counter() - t0
    return {
        "pairs": len(pairs),
        "seconds": round(seconds, 3),
        "pairs_per_s": round(len(pairs) / seconds, 2),
        "workers": workers,
        "blobs": int(blobs),
        "load_avg_1min": round(load, 2),
    }


DEFAULT_ROOT = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "deeppcb" / "PCBData"
SPEED_LIST = Path(__file__).resolve().parents[1] / "recipes" / "deeppcb-speed-500.txt"


def floor_beside(root: Path | None, workers: int = 2) -> dict[str, float] | None:
    """The floor on the 500-pair speed list, for a benchmark to divide its own throughput by, measured in
    the same run; None (and a note on stderr) when the DeepPCB data is not at `root`."""
    if root is None or not (root / "group77000").is_dir():
        print(f"no DeepPCB data at {root}: throughput not reported as a fraction of the floor", file=sys.stderr)
        return None
    return run_floor(root, SPEED_LIST, workers)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("root", type=Path, help="DeepPCB-layout root")
    parser.add_argument("--list", dest="list_file", type=Path, default=Path("recipes/deeppcb-speed-500.txt"))
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    list_file = args.list_file if args.list_file.is_file() else args.root / args.list_file
    if not list_file.is_file():
        print(f"list file {args.list_file} not found", file=sys.stderr)
        return 2
    print(json.dumps(run_floor(args.root, list_file, args.workers)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
