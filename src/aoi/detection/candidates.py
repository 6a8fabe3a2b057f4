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
    tolerance_px: int = 2
    min_area_px: int = 6
    group_px: int = 1
    thin_group_px: int = 0  # thin, line-like pieces (a scratch cut by copper edges) group this far (0: off)
    thin_width_px: float = 3.5  # mean width (area / extent) at or under which a piece counts as thin
    max_candidates: int = 256
    context_px: int = 24  # window = candidate extent + 2 * context, at least `min_window_px`
    min_window_px: int = 64


@dataclass(frozen=True)
class Candidates:
    boxes_xyxy: np.ndarray  # (N, 4) int32, tight boxes of the grouped disagreement
    windows_xyxy: np.ndarray  # (N, 4) float32, square whole-pixel crop windows in tested-image pixels
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
    if not diff.any():
        return _empty()
    # Group disagreement closer than `group_px` into one candidate: one labelling of the grown mask.
    g = config.group_px
    grown = cv2.dilate(diff, np.ones((2 * g + 1, 2 * g + 1), np.uint8)) if g > 0 else diff
    if config.thin_group_px > g:
        grown = cv2.bitwise_or(grown, _grow_thin_pieces(diff, config.thin_group_px, config.thin_width_px))
    n, labels, stats, _ = cv2.connectedComponentsWithStats(grown, connectivity=8)
    member_counts = np.bincount(labels[diff > 0], minlength=n)
    keep = np.flatnonzero(member_counts[1:] >= config.min_area_px) + 1
    if len(keep) == 0:
        return _empty()
    if g > 0:  # shrink the grown boxes back by the growth margin
        stats = stats.copy()
        stats[:, 0] += g
        stats[:, 1] += g
        stats[:, 2] = np.maximum(stats[:, 2] - 2 * g, 1)
        stats[:, 3] = np.maximum(stats[:, 3] - 2 * g, 1)
    sel = stats[keep]
    order = np.argsort(-member_counts[keep], kind="stable")[: config.max_candidates]
    keep, sel = keep[order], sel[order]
    x, y, w, h = sel[:, 0], sel[:, 1], sel[:, 2], sel[:, 3]
    boxes = np.stack([x, y, x + w, y + h], 1).astype(np.int32)
    side = np.maximum(np.maximum(w, h) + 2 * config.context_px, config.min_window_px)
    wx1 = np.rint(x + w / 2.0 - side / 2.0).astype(np.int64)
    wy1 = np.rint(y + h / 2.0 - side / 2.0).astype(np.int64)
    windows = np.stack([wx1, wy1, wx1 + side, wy1 + side], 1).astype(np.float32)  # square, whole pixels
    crops = _extract_crops(test, template_aligned, labels, diff if g > 0 else None, keep, windows)
    areas = member_counts[keep].astype(np.int32)
    return Candidates(boxes, windows, crops, areas)


def _grow_thin_pieces(diff: np.ndarray, grow_px: int, max_width_px: float) -> np.ndarray:
    """Dilate only the line-like pieces of the difference, so a scratch interrupted at every copper
    edge (the tolerance band cuts it there) stays one candidate while compact defects stay apart."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(diff, connectivity=8)
    extent = np.maximum(stats[:, cv2.CC_STAT_WIDTH], stats[:, cv2.CC_STAT_HEIGHT])
    thin = (stats[:, cv2.CC_STAT_AREA] / np.maximum(extent, 1) <= max_width_px) & (extent >= 8)
    thin[0] = False
    if not thin.any():
        return np.zeros_like(diff)
    mask = thin.astype(np.uint8)[labels]
    return cv2.dilate(mask, np.ones((2 * grow_px + 1, 2 * grow_px + 1), np.uint8))


def _extract_crops(
    test: np.ndarray,
    template: np.ndarray,
    labels: np.ndarray,
    member_mask: np.ndarray | None,
    keep: np.ndarray,
    windows: np.ndarray,
) -> np.ndarray:
    """Cut each square window (zero outside the image) from padded copies and resize to CROP_PX.

    Only window-sized patches are touched per candidate: the cost grows with the candidates' area,
    not with candidates x image size.
    """
    h, w = test.shape
    win = windows.astype(np.int64)
    pad = int(max(0, -win[:, 0].min(), -win[:, 1].min(), win[:, 2].max() - w, win[:, 3].max() - h))
    if pad:
        test = cv2.copyMakeBorder(test, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
        template = cv2.copyMakeBorder(template, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
        labels = cv2.copyMakeBorder(labels, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
        if member_mask is not None:
            member_mask = np.pad(member_mask, pad)
    crops = np.empty((len(keep), N_CHANNELS, CROP_PX, CROP_PX), np.float32)
    size = (CROP_PX, CROP_PX)
    for i, (label, (x1, y1, x2, y2)) in enumerate(zip(keep, win + pad, strict=True)):
        interp = cv2.INTER_AREA if x2 - x1 > CROP_PX else cv2.INTER_LINEAR
        crops[i, 0] = cv2.resize(test[y1:y2, x1:x2], size, interpolation=interp)
        crops[i, 1] = cv2.resize(template[y1:y2, x1:x2], size, interpolation=interp)
        member = labels[y1:y2, x1:x2] == label
        if member_mask is not None:
            member &= member_mask[y1:y2, x1:x2] > 0
        crops[i, 2] = cv2.resize(member.astype(np.uint8) * 255, size, interpolation=interp)
        crops[i, 3] = x2 - x1
    crops[:, :3] *= 1.0 / 255.0
    crops[:, 3] *= 1.0 / 128.0
    return crops


def _empty() -> Candidates:
    return Candidates(
        np.zeros((0, 4), np.int32),
        np.zeros((0, 4), np.float32),
        np.zeros((0, N_CHANNELS, CROP_PX, CROP_PX), np.float32),
        np.zeros((0,), np.int32),
    )
