"""Candidate defects from a registered tested/template pair, and the fixed-size crops the classifier reads.

A pixel is a candidate when it disagrees with the template beyond an edge tolerance: missing copper
must lie inside the template's copper eroded by `tolerance_px`, extra copper outside its dilation. That
removes 1-2 px edge disagreement (binarisation, JPEG ringing, sub-pixel misregistration) while keeping
thin defects that cross copper or substrate (scratches). Nearby disagreement is grouped into one candidate.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

CROP_PX = 48  # classifier input side
N_CHANNELS = 4  # tested, template, candidate mask, scale


@dataclass(frozen=True)
class CandidateConfig:
    tolerance_px: int = 1
    min_area_px: int = 6
    group_px: int = 3
    max_candidates: int = 256
    context_px: int = 24  # window = candidate extent + 2 * context, at least `min_window_px`
    min_window_px: int = 64


@dataclass(frozen=True)
class Candidates:
    boxes_xyxy: np.ndarray  # (N, 4) int32, tight boxes of the grouped disagreement
    windows_xyxy: np.ndarray  # (N, 4) float32, square crop windows in tested-image pixels
    crops: np.ndarray  # (N, N_CHANNELS, CROP_PX, CROP_PX) float32
    areas_px: np.ndarray  # (N,) int32 disagreeing pixels per candidate


def difference_mask(test_bin: np.ndarray, template_bin: np.ndarray, valid: np.ndarray, tolerance_px: int) -> np.ndarray:
    k = np.ones((2 * tolerance_px + 1, 2 * tolerance_px + 1), np.uint8)
    missing = cv2.bitwise_and(cv2.erode(template_bin, k), 1 - test_bin)
    extra = cv2.bitwise_and(test_bin, 1 - cv2.dilate(template_bin, k))
    return cv2.bitwise_and(cv2.bitwise_or(missing, extra), valid)


def find_candidates(
    test: np.ndarray,
    template_aligned: np.ndarray,
    test_bin: np.ndarray,
    template_bin: np.ndarray,
    valid: np.ndarray,
    config: CandidateConfig = CandidateConfig(),
) -> Candidates:
    diff = difference_mask(test_bin, template_bin, valid, config.tolerance_px)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(diff, connectivity=8)
    keep = np.flatnonzero(stats[1:, cv2.CC_STAT_AREA] >= config.min_area_px) + 1
    if len(keep) == 0:
        return _empty()
    if config.group_px > 0:
        kept = np.isin(labels, keep).astype(np.uint8) if len(keep) < n - 1 else (diff > 0).astype(np.uint8)
        grown = cv2.dilate(kept, np.ones((2 * config.group_px + 1,) * 2, np.uint8))
        n, labels, stats, _ = cv2.connectedComponentsWithStats(grown, connectivity=8)
        keep = np.arange(1, n)
        mask_for_crops = kept
        # Shrink the grown boxes back by the growth margin.
        stats = stats.copy()
        g = config.group_px
        stats[:, 0] += g
        stats[:, 1] += g
        stats[:, 2] = np.maximum(stats[:, 2] - 2 * g, 1)
        stats[:, 3] = np.maximum(stats[:, 3] - 2 * g, 1)
    else:
        mask_for_crops = diff
    sel = stats[keep]
    order = np.argsort(-sel[:, cv2.CC_STAT_AREA])[: config.max_candidates]
    keep, sel = keep[order], sel[order]
    x, y, w, h = sel[:, 0], sel[:, 1], sel[:, 2], sel[:, 3]
    boxes = np.stack([x, y, x + w, y + h], 1).astype(np.int32)
    side = np.maximum(np.maximum(w, h) + 2 * config.context_px, config.min_window_px).astype(np.float32)
    cx, cy = x + w / 2.0, y + h / 2.0
    windows = np.stack([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2], 1).astype(np.float32)
    own = labels if config.group_px > 0 else labels
    crops = np.empty((len(keep), N_CHANNELS, CROP_PX, CROP_PX), np.float32)
    areas = np.empty(len(keep), np.int32)
    for i, (label, win) in enumerate(zip(keep, windows, strict=True)):
        member = ((own == label) & (mask_for_crops > 0)).astype(np.uint8) if config.group_px > 0 else (own == label).astype(np.uint8)
        areas[i] = int(member.sum())
        crops[i, 0] = _crop(test, win)
        crops[i, 1] = _crop(template_aligned, win)
        crops[i, 2] = _crop(member * 255, win)
        crops[i, 3] = win[2] - win[0]
    crops[:, :3] *= 1.0 / 255.0
    crops[:, 3] *= 1.0 / 128.0
    return Candidates(boxes, windows, crops, areas)


def _crop(image: np.ndarray, window: np.ndarray) -> np.ndarray:
    """Resample a square window (may extend past the border: filled with 0) to CROP_PX x CROP_PX."""
    x1, y1, x2, y2 = (float(v) for v in window)
    scale = CROP_PX / (x2 - x1)
    m = np.array([[scale, 0.0, -x1 * scale], [0.0, (CROP_PX / (y2 - y1)), -y1 * (CROP_PX / (y2 - y1))]], np.float32)
    return cv2.warpAffine(image, m, (CROP_PX, CROP_PX), flags=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)


def _empty() -> Candidates:
    return Candidates(
        np.zeros((0, 4), np.int32),
        np.zeros((0, 4), np.float32),
        np.zeros((0, N_CHANNELS, CROP_PX, CROP_PX), np.float32),
        np.zeros((0,), np.int32),
    )
