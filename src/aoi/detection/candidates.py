"""Candidate defects from a registered tested/template pair, and the fixed-size crops the classifier reads.

A pixel is a candidate when it disagrees with the template beyond an edge tolerance: missing copper
must lie deeper than `tolerance_px` inside the template's copper, extra copper farther than
`tolerance_px` outside it (Euclidean distance transforms, so the band can be sub-pixel). The band is
the capture's good-to-good edge jitter (see `aoi.detection.tolerance`), not a constant: a coarse scan
needs 2 px, a sharp fine-pitch capture about 1, where a 2 px bite on a 3 px line still shows.
Nearby disagreement is grouped into one candidate.

Two kinds of candidate are marked *forced* (the classifier may name their type, never drop them):
a change of copper connectivity (`aoi.detection.topology`: an open or a short of any size), and a
disagreement good captures never reach: at least `gross_area_px` pixels, or (with the grey-level
check) at least `gross_grey_mass` pixels of full contrast.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from aoi.detection.labelling import AREA, HEIGHT, WIDTH, components_mask, label_components, pixel_counts
from aoi.detection.topology import ConnectivityChange, connectivity_changes
from aoi.schema import DefectType

CROP_PX = 48  # classifier input side
N_CHANNELS = 4  # tested, template, candidate mask, scale


@dataclass(frozen=True)
class CandidateConfig:
    tolerance_px: float = 2.0  # edge band: disagreement within this distance of a template edge is jitter
    copper_dark: bool = True  # copper is the dark phase of the binarised scan (DeepPCB polarity)
    tolerance_metric: str = "chessboard"  # "chessboard" (square band, what the v5 model learnt) | "euclidean"
    topology: bool = False  # connectivity check: opens and shorts of any size become forced candidates
    topology_min_overlap_px: int = 6
    # A connectivity change inside a candidate more than this many times its extent (at least 16 px) in
    # either direction gets a candidate and window of its own (0: never): edge jitter grouped along a
    # trace must not stretch the cut's window over the whole trace.
    change_window_ratio: float = 2.0
    gross_area_px: int = 0  # disagreement of this many pixels is always reported (0: off)
    min_area_px: int = 6
    group_px: int = 1
    thin_group_px: int = 0  # thin, line-like pieces (a scratch cut by copper edges) group this far (0: off)
    thin_width_px: float = 3.5  # mean width (area / extent) at or under which a piece counts as thin
    max_candidates: int = 256
    # Grey-level check (fine-pitch setups; 0: off): a pixel also disagrees when |test - template| (the
    # template blurred like the capture's optics, the difference smoothed) exceeds this fraction of the
    # copper/substrate contrast. It sees bites and pin-holes too small to survive binarisation.
    grey_threshold: float = 0.0
    template_blur_px: float = 0.0  # Gaussian sigma that makes the template look like a capture
    # Grey disagreement (the residual summed over a candidate's pixels above `grey_threshold`, in pixels
    # of full contrast) at which a candidate is always reported, like `gross_area_px` (0: off). It sees
    # a bite or a spur that is small in area but strong, where capture noise is weak.
    gross_grey_mass: float = 0.0
    # Finer band (0: off): pieces that disagree beyond this narrower band, away from the main band's
    # disagreement, compact (mean width, area / extent, at least `fine_min_width_px`) and of at least
    # `min_area_px`, become candidates too: a shallow bite shows there, edge jitter (thin slivers) not.
    fine_tolerance_px: float = 0.0
    fine_min_width_px: float = 2.0
    context_px: int = 24  # window = candidate extent + 2 * context, at least `min_window_px`
    min_window_px: int = 64


@dataclass(frozen=True)
class Candidates:
    boxes_xyxy: np.ndarray  # (N, 4) int32, tight boxes of the grouped disagreement
    windows_xyxy: np.ndarray  # (N, 4) float32, square whole-pixel crop windows in tested-image pixels
    crops: np.ndarray  # (N, N_CHANNELS, CROP_PX, CROP_PX) float32
    areas_px: np.ndarray  # (N,) int32 disagreeing pixels per candidate
    forced: np.ndarray  # (N,) int8 ForcedBy code: why the candidate must be reported (0: it need not)


class ForcedBy:
    """Codes of `Candidates.forced`, and the type a rule implies when the classifier names none."""

    NONE = 0
    OPEN = 1  # a template conductor split in the test
    SHORT = 2  # two template conductors joined in the test
    GROSS = 3  # a disagreement larger than capture noise ever makes

    TYPE_OF = {OPEN: DefectType.OPEN, SHORT: DefectType.SHORT}

    @staticmethod
    def of_change(kind: DefectType) -> int:
        return ForcedBy.OPEN if kind is DefectType.OPEN else ForcedBy.SHORT


DISTANCE_METRICS = {"chessboard": (cv2.DIST_C, 3), "euclidean": (cv2.DIST_L2, cv2.DIST_MASK_5)}


def difference_mask(
    test_bin: np.ndarray,
    template_bin: np.ndarray,
    valid: np.ndarray,
    tolerance_px: float,
    metric: str = "chessboard",
) -> np.ndarray:
    """0/1 pixels that disagree farther than `tolerance_px` from any template edge.

    "chessboard" equals the binary erosion/dilation by a (2t+1) square; "euclidean" allows a
    sub-pixel band (e.g. 1.2 px)."""
    if metric not in DISTANCE_METRICS:
        raise ValueError(f"tolerance metric must be one of {sorted(DISTANCE_METRICS)}, got {metric!r}")
    if tolerance_px <= 0:
        return cv2.bitwise_and(cv2.bitwise_xor(test_bin, template_bin), valid)
    if metric == "chessboard" and float(tolerance_px).is_integer():  # same band, cheaper: a square erosion
        k = np.ones((2 * int(tolerance_px) + 1, 2 * int(tolerance_px) + 1), np.uint8)
        missing_sq = cv2.bitwise_and(cv2.erode(template_bin, k), 1 - test_bin)
        extra_sq = cv2.bitwise_and(test_bin, 1 - cv2.dilate(template_bin, k))
        return cv2.bitwise_and(cv2.bitwise_or(missing_sq, extra_sq), valid)
    kind, mask = DISTANCE_METRICS[metric]
    deep_in = cv2.distanceTransform(template_bin, kind, mask) > tolerance_px
    far_out = cv2.distanceTransform(1 - template_bin, kind, mask) > tolerance_px
    missing = deep_in & (test_bin == 0)
    extra = far_out & (test_bin > 0)
    return cv2.bitwise_and((missing | extra).astype(np.uint8), valid)


GREY_SMOOTHING_PX = 0.7  # Gaussian sigma over the grey difference: sensor noise averages out, a defect does not


def grey_residual(
    test: np.ndarray, template: np.ndarray, test_bin: np.ndarray, valid: np.ndarray, template_blur_px: float
) -> np.ndarray:
    """|test - template| per pixel, smoothed, as a fraction of the capture's copper/substrate contrast.

    The template is first mapped onto the capture's grey levels (the gain and offset that carry its
    bright and dark phase means onto the capture's), so a lamp or sensor gain change is not a defect.
    Pixels outside `valid` (where the warped template has no data) count as agreeing, so the smoothing
    never carries the border's disagreement inside."""
    t = test.astype(np.float32)
    g = template.astype(np.float32)
    blurred = cv2.GaussianBlur(g, (0, 0), template_blur_px) if template_blur_px > 0 else g
    bright_mask = cv2.bitwise_and(test_bin, valid)
    dark_mask = cv2.bitwise_and(1 - test_bin, valid)
    bright, dark = cv2.mean(t, mask=bright_mask)[0], cv2.mean(t, mask=dark_mask)[0]
    contrast = max(abs(bright - dark), 1.0)
    g_bright, g_dark = cv2.mean(blurred, mask=bright_mask)[0], cv2.mean(blurred, mask=dark_mask)[0]
    if abs(g_bright - g_dark) >= 1.0:
        gain = (bright - dark) / (g_bright - g_dark)
        blurred = blurred * np.float32(gain) + np.float32(bright - gain * g_bright)
    diff = cv2.GaussianBlur(cv2.absdiff(t, blurred) * valid.astype(np.float32), (0, 0), GREY_SMOOTHING_PX)
    return diff * np.float32(1.0 / contrast)


def grey_masses(labels: np.ndarray, strong_grey: np.ndarray, n: int) -> np.ndarray:
    """Per label, the sum of the strong grey residual: how much contrast the disagreement carries."""
    return np.bincount(labels.ravel(), weights=strong_grey.ravel(), minlength=n)


def find_candidates(
    test: np.ndarray,
    template_aligned: np.ndarray,
    test_bin: np.ndarray,
    template_bin: np.ndarray,
    valid: np.ndarray,
    config: CandidateConfig = CandidateConfig(),
) -> Candidates:
    diff = difference_mask(test_bin, template_bin, valid, config.tolerance_px, config.tolerance_metric)
    if 0 < config.fine_tolerance_px < config.tolerance_px:
        diff = cv2.bitwise_or(diff, _compact_fine_pieces(test_bin, template_bin, valid, diff, config))
    strong_grey: np.ndarray | None = None  # the grey residual where it exceeds the threshold, else 0
    if config.grey_threshold > 0:
        grey = grey_residual(test, template_aligned, test_bin, valid, config.template_blur_px)
        above = cv2.bitwise_and((grey > config.grey_threshold).astype(np.uint8), valid)
        diff = cv2.bitwise_or(diff, above)
        strong_grey = grey * above
    changes: list[ConnectivityChange] = []
    topo_pixels = np.zeros_like(diff)  # 1 on connectivity-change pixels
    if config.topology:
        copper = (lambda b: 1 - b) if config.copper_dark else (lambda b: b)
        changes, topo_pixels = connectivity_changes(
            copper(test_bin), copper(template_bin), valid, config.topology_min_overlap_px
        )
        # A change the tolerance band hid entirely (a hairline cut, a one-pixel bridge) becomes a
        # candidate of its own; one already covered keeps the candidate the classifier was trained on.
        uncovered = (topo_pixels > 0) & (cv2.dilate(diff, np.ones((3, 3), np.uint8)) == 0)
        if uncovered.any():
            _, lab_c = cv2.connectedComponents(topo_pixels, connectivity=8)
            hidden = np.setdiff1d(np.unique(lab_c[uncovered]), np.unique(lab_c[(topo_pixels > 0) & ~uncovered]))
            diff = cv2.bitwise_or(diff, np.isin(lab_c, hidden[hidden > 0]).astype(np.uint8))
    if not diff.any():
        return _empty()
    # Group disagreement closer than `group_px` into one candidate: one labelling of the grown mask.
    g = config.group_px
    grown = cv2.dilate(diff, np.ones((2 * g + 1, 2 * g + 1), np.uint8)) if g > 0 else diff
    if config.thin_group_px > g:
        grown = cv2.bitwise_or(grown, _grow_thin_pieces(diff, config.thin_group_px, config.thin_width_px))
    n, labels, stats = label_components(grown)
    member_counts = pixel_counts(labels, diff, n)
    forced_code = np.zeros(n, np.int8)
    if config.gross_area_px > 0:
        forced_code[member_counts >= config.gross_area_px] = ForcedBy.GROSS
    if config.gross_grey_mass > 0 and strong_grey is not None:
        forced_code[grey_masses(labels, strong_grey, n) >= config.gross_grey_mass] = ForcedBy.GROSS
    own: list[tuple[ConnectivityChange, np.ndarray]] = []  # changes that get a candidate of their own
    for ch in changes:  # each change forces the one candidate holding most of it; it outranks size
        x1, y1, x2, y2 = ch.box_xyxy
        change_pixels = topo_pixels[y1:y2, x1:x2] > 0
        local = labels[y1:y2, x1:x2][change_pixels]
        local = local[local > 0]
        if not local.size:
            continue
        holder = int(np.bincount(local).argmax())
        extent = max(x2 - x1, y2 - y1, 16)
        if config.change_window_ratio > 0 and max(stats[holder, 2:4]) - 2 * g > config.change_window_ratio * extent:
            own.append((ch, change_pixels))
        else:
            forced_code[holder] = ForcedBy.of_change(ch.kind)
    if own:
        labels, stats, member_counts, forced_code, diff = _give_changes_their_own(
            own, labels, stats, member_counts, forced_code, diff, g
        )
    forced_code[0] = ForcedBy.NONE
    keep = np.flatnonzero((member_counts[1:] >= config.min_area_px) | (forced_code[1:] != ForcedBy.NONE)) + 1
    if len(keep) == 0:
        return _empty()
    if g > 0:  # shrink the grown boxes back by the growth margin
        stats = stats.copy()
        stats[:, 0] += g
        stats[:, 1] += g
        stats[:, 2] = np.maximum(stats[:, 2] - 2 * g, 1)
        stats[:, 3] = np.maximum(stats[:, 3] - 2 * g, 1)
    sel = stats[keep]
    # forced candidates first, so the candidate cap can never drop one
    rank = member_counts[keep].astype(np.int64) + (forced_code[keep] != ForcedBy.NONE) * (1 << 40)
    order = np.argsort(-rank, kind="stable")[: config.max_candidates]
    keep, sel = keep[order], sel[order]
    x, y, w, h = sel[:, 0], sel[:, 1], sel[:, 2], sel[:, 3]
    boxes = np.stack([x, y, x + w, y + h], 1).astype(np.int32)
    side = np.maximum(np.maximum(w, h) + 2 * config.context_px, config.min_window_px)
    wx1 = np.rint(x + w / 2.0 - side / 2.0).astype(np.int64)
    wy1 = np.rint(y + h / 2.0 - side / 2.0).astype(np.int64)
    windows = np.stack([wx1, wy1, wx1 + side, wy1 + side], 1).astype(np.float32)  # square, whole pixels
    crops = _extract_crops(test, template_aligned, labels, diff if g > 0 else None, keep, windows)
    areas = member_counts[keep].astype(np.int32)
    return Candidates(boxes, windows, crops, areas, forced_code[keep])


def _give_changes_their_own(
    own: list[tuple[ConnectivityChange, np.ndarray]],
    labels: np.ndarray,
    stats: np.ndarray,
    member_counts: np.ndarray,
    forced_code: np.ndarray,
    diff: np.ndarray,
    g: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """New labels for the pixels of each change in `own` (each with the change's box, grown by `g` like
    the others' boxes, and forced), taken out of the candidate that held them."""
    n = len(stats)
    labels = labels.copy()
    diff = diff.copy()
    extra_stats = np.zeros((len(own), 5), stats.dtype)
    for k, (ch, change_pixels) in enumerate(own):
        x1, y1, x2, y2 = ch.box_xyxy
        labels[y1:y2, x1:x2][change_pixels] = n + k
        diff[y1:y2, x1:x2][change_pixels] = 1  # the mask channel shows the cut or the bridge
        extra_stats[k] = (x1 - g, y1 - g, x2 - x1 + 2 * g, y2 - y1 + 2 * g, int(change_pixels.sum()))
    stats = np.concatenate([stats, extra_stats])
    member_counts = pixel_counts(labels, diff, n + len(own))
    codes = np.array([ForcedBy.of_change(ch.kind) for ch, _ in own], forced_code.dtype)
    return labels, stats, member_counts, np.concatenate([forced_code, codes]), diff


def _compact_fine_pieces(
    test_bin: np.ndarray, template_bin: np.ndarray, valid: np.ndarray, diff: np.ndarray, config: CandidateConfig
) -> np.ndarray:
    """The finer band's compact pieces (those touching the main band's disagreement merge with it)."""
    fine = difference_mask(test_bin, template_bin, valid, config.fine_tolerance_px, config.tolerance_metric)
    n, labels, stats = label_components(fine)
    if n <= 1:
        return np.zeros_like(diff)
    extent = np.maximum(stats[:, WIDTH], stats[:, HEIGHT])
    area = stats[:, AREA]
    wanted = (area >= config.min_area_px) & (area >= config.fine_min_width_px * np.maximum(extent, 1))
    wanted[0] = False
    return components_mask(labels, wanted, fine)


def _grow_thin_pieces(diff: np.ndarray, grow_px: int, max_width_px: float) -> np.ndarray:
    """Dilate only the line-like pieces of the difference, so a scratch interrupted at every copper
    edge (the tolerance band cuts it there) stays one candidate while compact defects stay apart."""
    n, labels, stats = label_components(diff)
    extent = np.maximum(stats[:, cv2.CC_STAT_WIDTH], stats[:, cv2.CC_STAT_HEIGHT])
    thin = (stats[:, cv2.CC_STAT_AREA] / np.maximum(extent, 1) <= max_width_px) & (extent >= 8)
    thin[0] = False
    if not thin.any():
        return np.zeros_like(diff)
    mask = components_mask(labels, thin, diff)
    return cv2.dilate(mask, np.ones((2 * grow_px + 1, 2 * grow_px + 1), np.uint8))


def _extract_crops(
    test: np.ndarray,
    template: np.ndarray,
    labels: np.ndarray,
    member_mask: np.ndarray | None,
    keep: np.ndarray,
    windows: np.ndarray,
) -> np.ndarray:
    """Cut each square window (zero outside the image) and resize it to CROP_PX.

    Only window-sized patches are touched per candidate: the cost grows with the candidates' area,
    not with candidates x image size (a window over the border is padded alone, not the images).
    """
    crops = np.empty((len(keep), N_CHANNELS, CROP_PX, CROP_PX), np.float32)
    size = (CROP_PX, CROP_PX)
    for i, (label, window) in enumerate(zip(keep, windows.astype(np.int64), strict=True)):
        x1, _, x2, _ = window
        interp = cv2.INTER_AREA if x2 - x1 > CROP_PX else cv2.INTER_LINEAR
        crops[i, 0] = cv2.resize(_patch(test, window), size, interpolation=interp)
        crops[i, 1] = cv2.resize(_patch(template, window), size, interpolation=interp)
        member = _patch(labels, window) == label
        if member_mask is not None:
            member &= _patch(member_mask, window) > 0
        crops[i, 2] = cv2.resize(member.astype(np.uint8) * 255, size, interpolation=interp)
        crops[i, 3] = x2 - x1
    crops[:, :3] *= 1.0 / 255.0
    crops[:, 3] *= 1.0 / 128.0
    return crops


def _patch(image: np.ndarray, window: np.ndarray) -> np.ndarray:
    """image[y1:y2, x1:x2] for a window that may reach past the image, zero there."""
    x1, y1, x2, y2 = (int(v) for v in window)
    h, w = image.shape
    if x1 >= 0 and y1 >= 0 and x2 <= w and y2 <= h:
        return image[y1:y2, x1:x2]
    out = np.zeros((y2 - y1, x2 - x1), image.dtype)
    cx1, cy1, cx2, cy2 = max(x1, 0), max(y1, 0), min(x2, w), min(y2, h)
    if cx2 > cx1 and cy2 > cy1:
        out[cy1 - y1 : cy2 - y1, cx1 - x1 : cx2 - x1] = image[cy1:cy2, cx1:cx2]
    return out


def _empty() -> Candidates:
    return Candidates(
        np.zeros((0, 4), np.int32),
        np.zeros((0, 4), np.float32),
        np.zeros((0, N_CHANNELS, CROP_PX, CROP_PX), np.float32),
        np.zeros((0,), np.int32),
        np.zeros((0,), np.int8),
    )
