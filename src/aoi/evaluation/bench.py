"""`aoi bench`: accuracy and CPU throughput on held-out DeepPCB groups, a robustness sweep, scratch F-score.

Every figure is measured here, in this process, on this machine; nothing is copied from elsewhere.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from aoi.data.annotations import AnnotatedPair, LabeledBox
from aoi.data.deeppcb import read_deeppcb
from aoi.data.images import read_image
from aoi.data.synthetic import make_pair, perturb
from aoi.detection.boxes import iou_matrix
from aoi.detection.inspector import Inspector
from aoi.evaluation.cli_eval import peak_rss_mb
from aoi.evaluation.metrics import ImageEval, mean_ap, per_class_ap
from aoi.evaluation.runner import accuracy_report, run_pairs
from aoi.schema import Defect, DefectType


@dataclass(frozen=True)
class Condition:
    name: str
    shift_xy_px: tuple[float, float] = (0.0, 0.0)
    rotation_deg: float = 0.0
    brightness: float = 1.0
    noise_sigma: float = 0.0


SWEEP = (
    Condition("shift +8 px", shift_xy_px=(8.0, 8.0)),
    Condition("shift -8 px", shift_xy_px=(-8.0, -8.0)),
    Condition("rotate +1 deg", rotation_deg=1.0),
    Condition("rotate -1 deg", rotation_deg=-1.0),
    Condition("brightness +20%", brightness=1.2),
    Condition("brightness -20%", brightness=0.8),
    Condition("noise sigma 8", noise_sigma=8.0),
)


def _sweep_condition(inspector: Inspector, pairs: Sequence[AnnotatedPair], cond: Condition, workers: int) -> float:
    def one(i_pair: tuple[int, AnnotatedPair]) -> ImageEval:
        i, pair = i_pair
        test, template = read_image(pair.test_path), read_image(pair.template_path)
        moved, labels = perturb(
            test,
            pair.labels,
            cond.shift_xy_px,
            cond.rotation_deg,
            cond.brightness,
            cond.noise_sigma,
            np.random.default_rng(1000 + i),
        )
        dets, _, _ = inspector.detect(moved, template)
        return ImageEval(dets, labels)

    with ThreadPoolExecutor(workers) as pool:
        images = list(pool.map(one, enumerate(pairs)))
    return mean_ap(per_class_ap(images, 0.33))


def scratch_f_score(inspector: Inspector, n_boards: int, seed: int = 20261127, workers: int = 2) -> dict[str, float]:
    """Scratch precision/recall/F on synthetic boards the model never saw (same-type IoU > 0.33)."""
    rng = np.random.default_rng(seed)
    boards = [make_pair(rng) for _ in range(n_boards)]
    cut = inspector.meta.threshold

    def one(b: Any) -> tuple[int, int, int]:
        dets = [d for d in inspector.detect(b.test, b.template)[0] if d.confidence >= cut]
        pred = [d for d in dets if d.type is DefectType.SCRATCH]
        truth = [t for t in b.labels if t.type is DefectType.SCRATCH]
        return _match_counts(pred, truth)

    with ThreadPoolExecutor(workers) as pool:
        counts = np.array(list(pool.map(one, boards))).sum(0)
    tp, n_pred, n_truth = (int(v) for v in counts)
    p = tp / n_pred if n_pred else 1.0
    r = tp / n_truth if n_truth else 1.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return {
        "boards": n_boards,
        "scratches": n_truth,
        "precision": round(p, 4),
        "recall": round(r, 4),
        "f_score": round(f, 4),
    }


def _match_counts(pred: Sequence[Defect], truth: Sequence[LabeledBox]) -> tuple[int, int, int]:
    if not pred or not truth:
        return 0, len(pred), len(truth)
    ious = iou_matrix(
        np.array([d.box_px for d in sorted(pred, key=lambda d: -d.confidence)], float),
        np.array([t.box_px for t in truth], float),
    )
    used = np.zeros(len(truth), bool)
    tp = 0
    for row in ious:
        cand = np.where(used, -1.0, row)
        g = int(np.argmax(cand))
        if cand[g] > 0.33:
            used[g] = True
            tp += 1
    return tp, len(pred), len(truth)


def run_bench(
    root: Path,
    list_file: str,
    groups: str | None,
    model: Path | None,
    workers: int,
    sweep: bool,
    scratch_boards: int,
    limit: int | None,
    console: Console,
) -> dict[str, Any]:
    t_load = time.perf_counter()
    inspector = Inspector.load(model)
    load_s = time.perf_counter() - t_load
    wanted = (
        [g for g in groups.split(",") if g] if groups else list(inspector.meta.training.get("validation_groups", []))
    )
    pairs = read_deeppcb(root, list_file)
    if wanted:
        pairs = [p for p in pairs if p.group in set(wanted)]
    trained_on = set(inspector.meta.training.get("train_groups", [])) & {p.group for p in pairs}
    if not wanted or trained_on:
        console.print(
            "[yellow]note:[/yellow] scoring groups the model trained on: a speed and regression figure, "
            "not an accuracy one (held-out accuracy: aoi cv, or --groups with a fold's model)"
        )
    if limit:
        pairs = pairs[:limit]
    console.print(
        f"benchmarking {len(pairs)} pairs from groups {sorted({p.group for p in pairs})} with {workers} workers"
    )
    t0 = time.perf_counter()
    outcomes = list(
        run_pairs(inspector, pairs, score_floor=inspector.meta.score_floor, workers=workers, processes=True)
    )
    elapsed = time.perf_counter() - t0
    ok = [o for o in outcomes if o.failure is None]
    images = [ImageEval(o.detections, o.pair.labels) for o in ok]
    accuracy = accuracy_report(images, inspector.meta.threshold).as_dict()
    stages = sorted({k for o in ok for k in o.stage_ms})
    stage_ms = {k: round(float(np.mean([o.stage_ms.get(k, 0.0) for o in ok])), 3) for k in stages}
    report: dict[str, Any] = {
        "machine": f"{platform.machine()} cpus={len(os.sched_getaffinity(0))}",
        "model": inspector.model_version,
        "pairs": len(pairs),
        "groups": sorted({p.group for p in pairs}),
        "groups_seen_in_training": bool(not wanted or trained_on),
        "failed": len(outcomes) - len(ok),
        "accuracy": accuracy,
        "throughput": {
            "pairs_per_s": round(len(pairs) / (elapsed + load_s), 2),
            "pairs_per_s_excluding_load": round(len(pairs) / elapsed, 2),
            "model_load_s": round(load_s, 3),
            "stage_ms_mean_per_pair": stage_ms,
            "workers": workers,
        },
    }
    console.print(
        f"accuracy: mAP33 {accuracy['map33']}, DeepPCB mAP {accuracy['deeppcb_map']}, F {accuracy['f_score']}"
    )
    console.print(f"throughput: {report['throughput']}")
    if sweep:
        base = accuracy["map33"]
        rows = {}
        for cond in SWEEP:
            m = _sweep_condition(inspector, pairs, cond, workers)
            rows[cond.name] = {"map33": round(m, 5), "drop_points": round((base - m) * 100, 3)}
            console.print(f"sweep {cond.name}: mAP33 {m:.4f} (drop {100 * (base - m):.2f} points)")
        report["robustness"] = rows
        report["robustness_max_drop_points"] = max(r["drop_points"] for r in rows.values())
    if scratch_boards:
        report["scratch_synthetic"] = scratch_f_score(inspector, scratch_boards, workers=workers)
        console.print(f"scratch on synthetic boards: {report['scratch_synthetic']}")
    report["peak_rss_mb"] = round(peak_rss_mb(), 1)
    return report
