"""Benchmark: inspect one large line-scan panel end to end and check it against board-by-board inspection.

The panel is a grid of synthetic boards (each with painted, known defects). The script times
`inspect_panel` over the whole panel, then inspects every board of the grid on its own and checks
that the panel found the same defects (same type, IoU >= 0.5 after moving to panel coordinates).
Its tiles (1024 px, 96 px overlap) do not line up with the boards, so defects cross tile seams.

    python scripts/bench_panel.py                       # 16384 x 16384, the default model, 2 threads
    python scripts/bench_panel.py --size 4096 --inspector fake   # quick check of the tiling path

Exit status 1 when the panel misses or adds defects relative to the board-by-board inspection.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from bench_floor import DEFAULT_ROOT, floor_beside

from aoi.detection.protocol import InspectorLike
from aoi.detection.tiling import inspect_panel
from aoi.schema import Defect, DefectType


@dataclass(frozen=True)
class PanelCase:
    template: np.ndarray
    test: np.ndarray
    truth: list[tuple[DefectType, tuple[float, float, float, float]]]
    board_px: int
    boards: list[tuple[int, int, int]]  # (board index, x, y) of each grid cell


def build_panel(size_px: int, board_px: int, distinct: int, seed: int) -> PanelCase:
    """Tile `distinct` synthetic board pairs over a size_px square panel (boards repeat across the grid)."""
    from aoi.data.synthetic import make_pair

    rng = np.random.default_rng(seed)
    pairs = [make_pair(rng, size_wh=(board_px, board_px)) for _ in range(distinct)]
    template = np.empty((size_px, size_px), np.uint8)
    test = np.empty((size_px, size_px), np.uint8)
    truth: list[tuple[DefectType, tuple[float, float, float, float]]] = []
    boards: list[tuple[int, int, int]] = []
    cells = size_px // board_px
    if cells * board_px != size_px:
        raise SystemExit(f"--size {size_px} must be a multiple of --board {board_px}")
    for gy in range(cells):
        for gx in range(cells):
            k = int(rng.integers(distinct))
            x, y = gx * board_px, gy * board_px
            template[y : y + board_px, x : x + board_px] = pairs[k].template
            test[y : y + board_px, x : x + board_px] = pairs[k].test
            boards.append((k, x, y))
            for label in pairs[k].labels:
                x1, y1, x2, y2 = label.box_px
                truth.append((label.type, (x1 + x, y1 + y, x2 + x, y2 + y)))
    return PanelCase(template, test, truth, board_px, boards)


class DiffInspector:
    """A stand-in with the engine's surface for timing the tiling path without a model."""

    model_version = "diff-only"

    def inspect(
        self,
        test,
        template,
        *,
        image_id,
        px_per_mm=48.0,
        rules=None,
        product=None,
        origin_px=(0.0, 0.0),
        candidates=None,
        registration=None,
    ):  # type: ignore[no-untyped-def]
        import cv2

        from aoi.schema import InspectionResult
        from aoi.verdict import VerdictRules

        diff = cv2.absdiff(np.ascontiguousarray(test), np.ascontiguousarray(template))
        mask = (diff > 64).astype(np.uint8)
        n, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        defects = [
            Defect(DefectType.SHORT, 0.9, (float(x), float(y), float(x + w), float(y + h))).with_mm(
                px_per_mm, origin_px
            )
            for x, y, w, h, area in stats[1:]
            if area >= 4
        ]
        rules = rules or VerdictRules()
        return InspectionResult(
            image_id,
            (test.shape[1], test.shape[0]),
            tuple(defects),
            rules.verdict(defects, px_per_mm),
            px_per_mm,
            self.model_version,
            {"total": 0.0},
        )


def iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def match(
    found: list[Defect],
    reference: list[tuple[DefectType, tuple[float, ...]]],
    min_iou: float = 0.5,
    typed: bool = True,
) -> int:
    """Greedy one-to-one matching on IoU (and type when `typed`); returns the number of matched reference boxes."""
    used = [False] * len(found)
    by_row: dict[int, list[int]] = {}
    for i, d in enumerate(found):
        by_row.setdefault(int(d.box_px[1]) // 256, []).append(i)
    matched = 0
    for kind, box in reference:
        row = int(box[1]) // 256
        best, best_iou = -1, min_iou
        for r in (row - 1, row, row + 1):
            for i in by_row.get(r, []):
                if used[i] or (typed and found[i].type != kind):
                    continue
                overlap = iou(found[i].box_px, box)
                if overlap >= best_iou:
                    best, best_iou = i, overlap
        if best >= 0:
            used[best] = True
            matched += 1
    return matched


def board_by_board(inspector: InspectorLike, case: PanelCase, px_per_mm: float) -> list[Defect]:
    """Each grid board inspected on its own (boards repeat, so each distinct board runs once)."""
    by_board: dict[int, list[Defect]] = {}
    out: list[Defect] = []
    b = case.board_px
    for k, x, y in case.boards:
        if k not in by_board:
            window = np.s_[y : y + b, x : x + b]
            by_board[k] = list(
                inspector.inspect(
                    case.test[window], case.template[window], image_id=f"board{k}", px_per_mm=px_per_mm
                ).defects
            )
        for d in by_board[k]:
            x1, y1, x2, y2 = d.box_px
            out.append(Defect(d.type, d.confidence, (x1 + x, y1 + y, x2 + x, y2 + y)))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=16384, help="panel side in px (multiple of --board)")
    parser.add_argument("--board", type=int, default=1024, help="side of each synthetic board in px")
    parser.add_argument("--distinct", type=int, default=6, help="distinct synthetic boards repeated over the grid")
    parser.add_argument("--tile", type=int, default=1024)
    parser.add_argument("--overlap", type=int, default=96)
    parser.add_argument("--workers", type=int, default=2, help="inspection threads (one per core)")
    parser.add_argument("--px-per-mm", type=float, default=48.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--inspector", choices=["default", "fake"], default="default")
    parser.add_argument("--bundle", default=None, help="model bundle folder (default: the installed default model)")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON line")
    parser.add_argument(
        "--engine-processes",
        action="store_true",
        help="tiles inspected in --workers engine processes (what `aoi serve` does), not threads of this one",
    )
    parser.add_argument(
        "--floor-data",
        type=Path,
        default=DEFAULT_ROOT,
        help="DeepPCB root for the floor benchmark run before the panel (scripts/bench_floor.py)",
    )
    args = parser.parse_args(argv)
    floor = floor_beside(args.floor_data)

    t0 = time.perf_counter()
    case = build_panel(args.size, args.board, args.distinct, args.seed)
    build_s = time.perf_counter() - t0
    if args.inspector == "fake":
        inspector: InspectorLike = DiffInspector()
    elif args.engine_processes:
        from aoi.detection.process_inspector import ProcessInspector

        inspector = ProcessInspector.load(args.bundle, processes=args.workers)
    else:
        from aoi.detection.inspector import Inspector

        inspector = Inspector.load(args.bundle)

    t0 = time.perf_counter()
    result = inspect_panel(
        inspector,
        case.test,
        case.template,
        px_per_mm=args.px_per_mm,
        image_id="bench-panel",
        tile_px=args.tile,
        overlap_px=args.overlap,
        workers=args.workers,
    )
    panel_s = time.perf_counter() - t0

    reference = board_by_board(inspector, case, args.px_per_mm)
    ref_boxes = [(d.type, d.box_px) for d in reference]
    panel = list(result.defects)
    found_of_reference = match(panel, ref_boxes)
    extra = len(panel) - match(reference, [(d.type, d.box_px) for d in panel])
    located_any_type = match(panel, ref_boxes, typed=False)
    extra_any_type = len(panel) - match(reference, [(d.type, d.box_px) for d in panel], typed=False)
    truth_found = match(panel, case.truth)
    truth_located = match(panel, case.truth, min_iou=0.3, typed=False)
    figures = {
        "panel_wh": [args.size, args.size],
        "tiles": int(result.registration.get("tiles", 0)),
        "workers": args.workers,
        "cpu_count": os.cpu_count(),
        "machine": platform.processor() or platform.machine(),
        "load_avg_1m": round(os.getloadavg()[0], 2),  # other work on the machine slows the figure
        "model_version": result.model_version,
        "build_s": round(build_s, 2),
        "inspect_panel_s": round(panel_s, 2),
        "engine": "processes" if args.engine_processes else "threads",
        # the panel's pixels in DeepPCB boards' worth (640 x 640) per second, against the floor's pairs/s
        "boards_worth_per_s": round(args.size**2 / 640**2 / panel_s, 1),
        "floor_pairs_per_s": floor["pairs_per_s"] if floor else None,
        "fraction_of_floor": round(args.size**2 / 640**2 / panel_s / floor["pairs_per_s"], 3) if floor else None,
        "per_stage_cpu_ms": {k: round(v, 1) for k, v in result.timings_ms.items()},
        "panel_defects": len(panel),
        "board_by_board_defects": len(reference),
        "board_by_board_found_in_panel": found_of_reference,
        "panel_defects_not_in_board_by_board": extra,
        "board_by_board_located_in_panel_any_type": located_any_type,
        "panel_defects_not_in_board_by_board_any_type": extra_any_type,
        "ground_truth": len(case.truth),
        "ground_truth_found": truth_found,
        "ground_truth_located_any_type_iou_0.3": truth_located,
    }
    if args.json:
        print(json.dumps(figures))
    else:
        for key, value in figures.items():
            print(f"{key:>36}: {value}")
    same = found_of_reference == len(reference) and extra == 0
    if not same:
        print("panel and board-by-board inspections differ", file=sys.stderr)
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
