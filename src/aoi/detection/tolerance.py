"""The edge band and the gross-difference size, learnt from good-to-good variation of a capture.

Two good captures of one design never agree exactly: registration residue, blur and binarisation
move edges by a fraction of a pixel to a couple of pixels, depending on the optics. The band that
`find_candidates` ignores should be just that wide, so it is measured rather than assumed: on pairs
known to be good (or on defective pairs with their defect boxes left out), each disagreeing pixel's
distance to the nearest template edge is taken, and the band is a high quantile of those distances.
The largest blob of disagreement that survives the band on good pairs bounds what capture noise can
do; twice that is the size at which a disagreement is always reported (`gross_area_px`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

import cv2
import numpy as np

from aoi.detection.candidates import DISTANCE_METRICS, CandidateConfig, difference_mask, grey_residual
from aoi.detection.labelling import label_components
from aoi.registration import RegistrationConfig, align_pair
from aoi.schema import BoxXYXY, InspectionInputError


@dataclass(frozen=True)
class CaptureTolerance:
    tolerance_px: float  # edge band for `CandidateConfig.tolerance_px`
    gross_area_px: int  # for `CandidateConfig.gross_area_px`
    pairs: int
    edge_pixels: int  # disagreeing pixels the quantile was taken over


def learn_capture_tolerance(
    pairs: Iterable[tuple[np.ndarray, np.ndarray, Sequence[BoxXYXY]]],
    *,
    metric: str = "euclidean",
    quantile: float = 0.999,
    min_gross_area_px: int = 12,
    registration: RegistrationConfig = RegistrationConfig(),
) -> CaptureTolerance:
    """Learn the band from (test, template, boxes to leave out) triples of one capture setup."""
    if metric not in DISTANCE_METRICS:
        raise InspectionInputError(f"tolerance metric must be one of {sorted(DISTANCE_METRICS)}, got {metric!r}")
    kind, mask_size = DISTANCE_METRICS[metric]
    distances: list[np.ndarray] = []
    prepared = []
    for test, template, excluded in pairs:
        aligned = align_pair(test, template, registration)
        tb, gba, valid = aligned.test_bin, aligned.template_bin_aligned, aligned.valid.copy()
        for x1, y1, x2, y2 in excluded:
            valid[max(int(y1), 0) : int(np.ceil(y2)), max(int(x1), 0) : int(np.ceil(x2))] = 0
        inside = cv2.distanceTransform(gba, kind, mask_size)
        outside = cv2.distanceTransform(1 - gba, kind, mask_size)
        disagree = (cv2.bitwise_xor(tb, gba) > 0) & (valid > 0)
        distances.append(np.where(gba > 0, inside, outside)[disagree])
        prepared.append((tb, gba, valid))
    if not prepared:
        raise InspectionInputError("learning a capture tolerance needs at least one good pair")
    flat = np.concatenate(distances) if distances else np.zeros(0, np.float32)
    # "> band" must exclude the jitter: the band is the quantile itself (0 when the pairs agree exactly).
    band = float(np.quantile(flat, quantile)) if flat.size else 0.0
    band = round(band, 2)
    largest = 0
    for tb, gba, valid in prepared:
        diff = difference_mask(tb, gba, valid, band, metric)
        if diff.any():
            _, _, stats = label_components(diff)
            largest = max(largest, int(stats[1:, cv2.CC_STAT_AREA].max()))
    return CaptureTolerance(band, max(min_gross_area_px, 2 * largest), len(prepared), int(flat.size))


LEARNT_CANDIDATE_FIELDS = (
    "tolerance_px",
    "tolerance_metric",
    "gross_area_px",
    "topology",
    "min_area_px",
    "grey_threshold",
    "template_blur_px",
    "gross_grey_mass",
)


@dataclass(frozen=True)
class CaptureSetup:
    """Registration and candidate settings of one product's capture, learnt from its good captures."""

    registration: RegistrationConfig
    candidates: CandidateConfig
    tolerance: CaptureTolerance

    def settings(self) -> dict[str, dict[str, object]]:
        """The learnt fields in the shape a product's `capture` takes (and `aoi tolerance --fine-pitch` prints)."""
        return {
            "registration": {"subpixel": self.registration.subpixel},
            "candidates": {name: getattr(self.candidates, name) for name in LEARNT_CANDIDATE_FIELDS},
        }


FINE_PITCH_REGISTRATION = RegistrationConfig(subpixel=True)


BLUR_GRID_PX = (0.0, 0.3, 0.5, 0.7, 0.9, 1.1, 1.3)  # template blurs tried to match a capture's optics
GREY_MARGIN = 1.25  # the grey threshold sits this far above the largest residual good captures make
MIN_GREY_THRESHOLD = 0.2  # never closer to the noise than a fifth of the contrast
# The grey threshold sits above every residual the good captures make, so they leave no grey
# disagreement at all; a blob above it that carries this many pixels of full contrast (a 2 px bite on
# a 3 px line carries 2-3) is always reported, whatever the classifier says.
GROSS_GREY_MASS = 1.5


def optics_blur_px(test: np.ndarray, template_aligned: np.ndarray, valid: np.ndarray) -> float:
    """The Gaussian sigma that makes the (sharp) template look most like this capture."""
    t = test.astype(np.float32)
    g = template_aligned.astype(np.float32)
    errors = [
        cv2.mean(cv2.absdiff(t, cv2.GaussianBlur(g, (0, 0), s) if s > 0 else g), mask=valid)[0] for s in BLUR_GRID_PX
    ]
    return BLUR_GRID_PX[int(np.argmin(errors))]


def learn_fine_pitch_setup(
    good_pairs: Iterable[tuple[np.ndarray, np.ndarray, Sequence[BoxXYXY]]], base: CandidateConfig
) -> CaptureSetup:
    """A fine-pitch capture (3-6 px line/space): sub-pixel registration, the learnt Euclidean band and
    gross size, the connectivity check, no minimum size (a one-pixel residue of a bite counts; the
    classifier judges it), and the grey-level check: the template blurred like the optics, and a
    threshold above the largest grey residual the good captures make."""
    pairs = [(test, template, tuple(boxes)) for test, template, boxes in good_pairs]
    learnt = learn_capture_tolerance(pairs, registration=FINE_PITCH_REGISTRATION)
    aligned = []
    for test, template, boxes in pairs:
        a = align_pair(test, template, FINE_PITCH_REGISTRATION)
        valid = a.valid.copy()
        for x1, y1, x2, y2 in boxes:
            valid[max(int(y1), 0) : int(np.ceil(y2)), max(int(x1), 0) : int(np.ceil(x2))] = 0
        aligned.append((test, a, valid))
    blur = float(np.median([optics_blur_px(test, a.template_aligned, valid) for test, a, valid in aligned]))
    largest = max(
        float(grey_residual(test, a.template_aligned, a.test_bin, a.valid, blur)[valid > 0].max(initial=0.0))
        for test, a, valid in aligned
    )
    candidates = replace(
        base,
        tolerance_px=learnt.tolerance_px,
        tolerance_metric="euclidean",
        topology=True,
        gross_area_px=learnt.gross_area_px,
        min_area_px=1,
        grey_threshold=round(max(MIN_GREY_THRESHOLD, GREY_MARGIN * largest), 3),
        template_blur_px=blur,
        gross_grey_mass=GROSS_GREY_MASS,
    )
    return CaptureSetup(FINE_PITCH_REGISTRATION, candidates, learnt)
