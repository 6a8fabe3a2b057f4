"""`aoi eval`: DeepPCB submission files plus the protocol figures, timed end to end (model load included)."""

from __future__ import annotations

import json
import resource
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from aoi.data.deeppcb import format_submission, read_deeppcb
from aoi.detection.inspector import Inspector
from aoi.evaluation.metrics import ImageEval
from aoi.evaluation.runner import accuracy_report, run_pairs
from aoi.schema import InspectionInputError


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def peak_worker_rss_mb() -> float:
    """The largest peak resident size of any finished worker process (0 when there were none)."""
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0


def run_eval(
    root: Path, list_file: str, out: Path, model: Path | None, threshold: float | None, workers: int, console: Console
) -> int:
    t0 = time.perf_counter()
    try:
        pairs = read_deeppcb(root, list_file)
        inspector = Inspector.load(model)
    except InspectionInputError as exc:
        console.print(f"[red]error:[/red] {exc}")
        return 2
    out.mkdir(parents=True, exist_ok=True)
    images: list[ImageEval] = []
    failures = []
    stage_totals: dict[str, float] = {}
    for outcome in run_pairs(inspector, pairs, score_floor=inspector.meta.score_floor, workers=workers, processes=True):
        if outcome.failure is not None:
            failures.append(outcome.failure)
            console.print(f"[red]{outcome.failure.image_id}: {outcome.failure.error}: {outcome.failure.message}")
            continue
        (out / f"{outcome.pair.image_id}.txt").write_text(format_submission(outcome.detections))
        images.append(ImageEval(outcome.detections, outcome.pair.labels))
        for k, v in outcome.stage_ms.items():
            stage_totals[k] = stage_totals.get(k, 0.0) + v
    elapsed = time.perf_counter() - t0
    cut = inspector.meta.threshold if threshold is None else threshold
    report = accuracy_report(images, cut)
    figures = report.as_dict()
    n_ok = len(images)
    figures.update(
        {
            "images": len(pairs),
            "failed": len(failures),
            "images_per_s": round(len(pairs) / elapsed, 2),
            "seconds": round(elapsed, 3),
            "workers": workers,
            "stage_ms_mean": {k: round(v / max(n_ok, 1), 3) for k, v in stage_totals.items()},
            "peak_rss_mb": round(peak_rss_mb(), 1),
            "peak_worker_rss_mb": round(peak_worker_rss_mb(), 1),
            "model": inspector.model_version,
        }
    )
    _print_tables(console, figures, report.confusion)
    print(json.dumps(figures))
    return 1 if failures else 0


def _print_tables(console: Console, figures: dict, confusion: dict[str, dict[str, int]]) -> None:
    console.print(
        f"DeepPCB protocol (IoU > 0.33): mAP {figures['deeppcb_map']:.4f}  F-score {figures['f_score']:.4f} "
        f"(P {figures['precision']:.4f}, R {figures['recall']:.4f}) at threshold {figures['threshold']}"
    )
    t = Table(title="Per-class AP")
    t.add_column("type")
    t.add_column("AP@0.33")
    t.add_column("AP@0.5")
    for k in figures["ap33"]:
        t.add_row(k, f"{figures['ap33'][k]:.4f}", f"{figures['ap50'].get(k, float('nan')):.4f}")
    t.add_row("mean", f"{figures['map33']:.4f}", f"{figures['map50']:.4f}")
    console.print(t)
    c = Table(title="Confusion (rows: truth, columns: predicted)")
    labels = [k for k in confusion if any(confusion[k].values()) or any(confusion[r][k] for r in confusion)]
    c.add_column("")
    for lab in labels:
        c.add_column(lab[:9])
    for r in labels:
        c.add_row(r, *[str(confusion[r][col]) for col in labels])
    console.print(c)
    console.print(
        f"{figures['images']} pairs in {figures['seconds']} s = {figures['images_per_s']} pairs/s "
        f"({figures['workers']} workers, model load included); mean ms per stage {figures['stage_ms_mean']}; "
        f"peak RSS {figures['peak_rss_mb']} MB (each worker at most {figures['peak_worker_rss_mb']} MB); "
        f"failed {figures['failed']}"
    )
