"""Detection metrics.

`deeppcb_*` follow the protocol published with DeepPCB: each ground-truth box in turn pairs with the
first still-unpaired detection (by falling confidence) whose IoU exceeds 0.33, whatever its type; the
pair is correct only when types agree; AP is pooled over all types. `per_class_ap` is the usual
detection-paper AP (same-type greedy matching, all-point interpolation).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from aoi.data.annotations import LabeledBox
from aoi.detection.boxes import Box, iou_matrix
from aoi.schema import Defect, DefectType

DEEPPCB_IOU = 0.33
BACKGROUND = "background"


@dataclass(frozen=True)
class ImageEval:
    """Detections (any order) and ground truth of one image."""

    detections: Sequence[Defect]
    truth: Sequence[LabeledBox]


def _pair_image(dets: Sequence[Defect], truth: Sequence[LabeledBox], iou_thr: float) -> list[int]:
    """For each detection (sorted by falling confidence), the index of the truth box it paired with, or -1."""
    paired = [-1] * len(dets)
    if not dets or not truth:
        return paired
    ious = iou_matrix(np.array([t.box_px for t in truth], float), np.array([d.box_px for d in dets], float))
    for g in range(len(truth)):
        for j in range(len(dets)):
            if paired[j] == -1 and ious[g, j] > iou_thr:
                paired[j] = g
                break
    return paired


def _sorted(dets: Sequence[Defect]) -> list[Defect]:
    return sorted(dets, key=lambda d: -d.confidence)


def deeppcb_ap(images: Sequence[ImageEval], iou_thr: float = DEEPPCB_IOU) -> float:
    """Pooled AP: precision at each correct detection, summed over all, divided by the truth count."""
    records: list[tuple[float, bool]] = []
    n_truth = 0
    for im in images:
        dets = _sorted(im.detections)
        paired = _pair_image(dets, im.truth, iou_thr)
        n_truth += len(im.truth)
        for d, g in zip(dets, paired, strict=True):
            records.append((d.confidence, g >= 0 and im.truth[g].type == d.type))
    if n_truth == 0:
        return float("nan")
    records.sort(key=lambda r: -r[0])
    correct = np.array([c for _, c in records], bool)
    if not correct.any():
        return 0.0
    cum = np.cumsum(correct)
    precision = cum / np.arange(1, len(correct) + 1)
    return float(precision[correct].sum() / n_truth)


@dataclass(frozen=True)
class OperatingPoint:
    threshold: float
    precision: float
    recall: float
    f_score: float
    correct: int
    n_detections: int
    n_truth: int


def deeppcb_operating_point(
    images: Sequence[ImageEval], threshold: float, iou_thr: float = DEEPPCB_IOU
) -> OperatingPoint:
    correct = n_det = n_truth = 0
    for im in images:
        dets = _sorted([d for d in im.detections if d.confidence >= threshold])
        paired = _pair_image(dets, im.truth, iou_thr)
        n_det += len(dets)
        n_truth += len(im.truth)
        correct += sum(1 for d, g in zip(dets, paired, strict=True) if g >= 0 and im.truth[g].type == d.type)
    p = correct / n_det if n_det else 1.0
    r = correct / n_truth if n_truth else 1.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return OperatingPoint(threshold, p, r, f, correct, n_det, n_truth)


def best_threshold(images: Sequence[ImageEval], candidates: Sequence[float] | None = None) -> OperatingPoint:
    """The threshold with the best DeepPCB F-score (ties: the lower threshold)."""
    grid = candidates if candidates is not None else [round(t, 3) for t in np.arange(0.05, 0.96, 0.025)]
    points = [deeppcb_operating_point(images, t) for t in grid]
    return max(points, key=lambda op: (op.f_score, -op.threshold))


def per_class_ap(images: Sequence[ImageEval], iou_thr: float) -> dict[str, float]:
    """AP per defect type present in the truth (same-type greedy matching, all-point interpolation)."""
    out: dict[str, float] = {}
    types = sorted({t.type for im in images for t in im.truth}, key=lambda t: list(DefectType).index(t))
    for cls in types:
        records: list[tuple[float, bool]] = []
        n_truth = 0
        for im in images:
            truth = [t for t in im.truth if t.type == cls]
            dets = _sorted([d for d in im.detections if d.type == cls])
            n_truth += len(truth)
            if not dets:
                continue
            ious = iou_matrix(np.array([d.box_px for d in dets], float), np.array([t.box_px for t in truth], float))
            used = np.zeros(len(truth), bool)
            for j, d in enumerate(dets):
                ok = False
                if len(truth):
                    cand = np.where(~used, ious[j], -1.0)
                    g = int(np.argmax(cand))
                    if cand[g] > iou_thr:
                        used[g] = ok = True
                records.append((d.confidence, ok))
        records.sort(key=lambda r: -r[0])
        tp = np.array([ok for _, ok in records], float)
        if n_truth == 0:
            continue
        if len(tp) == 0:
            out[cls.value] = 0.0
            continue
        ctp = np.cumsum(tp)
        recall = ctp / n_truth
        precision = ctp / np.arange(1, len(tp) + 1)
        mrec = np.concatenate([[0.0], recall, [1.0]])
        mpre = np.concatenate([[1.0], precision, [0.0]])
        mpre = np.maximum.accumulate(mpre[::-1])[::-1]
        idx = np.flatnonzero(mrec[1:] != mrec[:-1])
        out[cls.value] = float(np.sum((mrec[idx + 1] - mrec[idx]) * mpre[idx + 1]))
    return out


def mean_ap(aps: dict[str, float]) -> float:
    return float(np.mean(list(aps.values()))) if aps else float("nan")


def confusion_matrix(
    images: Sequence[ImageEval], threshold: float, iou_thr: float = DEEPPCB_IOU
) -> dict[str, dict[str, int]]:
    """Rows: true type (or background for false alarms); columns: predicted type (or background for misses)."""
    labels = [t.value for t in DefectType] + [BACKGROUND]
    matrix = {r: {c: 0 for c in labels} for r in labels}
    for im in images:
        dets = _sorted([d for d in im.detections if d.confidence >= threshold])
        paired = _pair_image(dets, im.truth, iou_thr)
        hit = set()
        for d, g in zip(dets, paired, strict=True):
            if g >= 0:
                matrix[im.truth[g].type.value][d.type.value] += 1
                hit.add(g)
            else:
                matrix[BACKGROUND][d.type.value] += 1
        for g, t in enumerate(im.truth):
            if g not in hit:
                matrix[t.type.value][BACKGROUND] += 1
    return matrix


def same_defect_scores(reported_boxes: Sequence[Box], true_boxes: Sequence[Box]) -> np.ndarray:
    """How clearly each reported defect is each true one, as an operator judges (0: not that defect):
    its IoU when at least 0.33, else a small score when either box holds the other's centre (a person
    confirms a real defect boxed loosely), else 0."""
    reported = np.asarray(reported_boxes, np.float64).reshape(-1, 4)
    true = np.asarray(true_boxes, np.float64).reshape(-1, 4)
    overlap = iou_matrix(reported, true)

    def centre_inside(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        cx, cy = (a[:, 0] + a[:, 2]) / 2, (a[:, 1] + a[:, 3]) / 2
        return (
            (cx[:, None] >= b[None, :, 0])
            & (cx[:, None] <= b[None, :, 2])
            & (cy[:, None] >= b[None, :, 1])
            & (cy[:, None] <= b[None, :, 3])
        )

    loose = centre_inside(reported, true) | centre_inside(true, reported).T
    return np.where(overlap >= DEEPPCB_IOU, overlap, np.where(loose, 1e-3 + overlap * 1e-3, 0.0))
