"""Register a tested image to its golden template: shift, small rotation, grey-level differences.

Fast path: phase correlation on a 4x-downsampled copy gives the shift; if the aligned pair still
disagrees on more pixels than a well-aligned pair would, a Euclidean ECC refinement (shift + rotation)
runs on a 2x-downsampled copy. A pair whose residual stays high is not the same board: refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from aoi.schema import InspectionInputError


class RegistrationError(InspectionInputError):
    """The template cannot be registered to the tested image (other size, other board, failed fit)."""


@dataclass(frozen=True)
class Registration:
    """Affine map from tested-image coordinates to template coordinates, plus fit quality."""

    matrix: np.ndarray  # 2x3, template = matrix @ [x, y, 1] of test
    dx_px: float
    dy_px: float
    rotation_deg: float
    residual: float  # fraction of valid pixels whose binarised values disagree after alignment
    refined: bool

    @property
    def whole_pixel_shift(self) -> bool:
        return _integer_shift(self.matrix) is not None

    def as_dict(self) -> dict[str, float]:
        return {
            "dx_px": self.dx_px,
            "dy_px": self.dy_px,
            "rotation_deg": self.rotation_deg,
            "residual": self.residual,
            "refined": float(self.refined),
        }


@dataclass(frozen=True)
class RegistrationConfig:
    coarse_scale: int = 4
    refine_scale: int = 4
    refine_above_residual: float = 0.004
    max_residual: float = 0.12
    max_shift_fraction: float = 0.25
    max_shift_px: int = 48
    peak_candidates: int = 4  # correlation peaks checked against the whole image (periodic layouts)
    # Fine-pitch captures: always fit shift + rotation to a fraction of a pixel on the grey images
    # (a 0.5 px residue is a sixth of a 3 px line). Off for coarse boards, where whole pixels suffice.
    subpixel: bool = False
    subpixel_scale: int = 2


SUBPIXEL_RESIDUAL_SLACK = 0.002


def binarise(image: np.ndarray) -> np.ndarray:
    """Otsu threshold after a light blur: robust to brightness changes and sensor noise. Returns 0/1 uint8."""
    blurred = cv2.GaussianBlur(image, (3, 3), 0)
    _, binary = cv2.threshold(blurred, 0, 1, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    return binary


def _residual(test_bin: np.ndarray, template_bin: np.ndarray, valid: np.ndarray) -> float:
    disagree = cv2.bitwise_and(cv2.bitwise_xor(test_bin, template_bin), valid)
    n_valid = int(cv2.countNonZero(valid))
    if n_valid == 0:
        return 1.0
    # Ignore 1-px edge disagreement (JPEG ringing, binarisation): count only what survives an erosion.
    core = cv2.erode(disagree, np.ones((3, 3), np.uint8))
    return float(cv2.countNonZero(core)) / n_valid


def _integer_shift(matrix: np.ndarray) -> tuple[int, int] | None:
    """(tx, ty) when `matrix` is a pure whole-pixel translation, else None."""
    (a, b, tx), (c, d, ty) = matrix.tolist()
    if abs(a - 1) > 1e-6 or abs(b) > 1e-6 or abs(c) > 1e-6 or abs(d - 1) > 1e-6:
        return None
    if abs(tx - round(tx)) > 1e-6 or abs(ty - round(ty)) > 1e-6:
        return None
    return int(round(tx)), int(round(ty))


def _translate(image: np.ndarray, tx: int, ty: int, fill: int) -> np.ndarray:
    """out(x, y) = image(x + tx, y + ty), `fill` outside: a copy by slicing, no interpolation."""
    h, w = image.shape
    out = np.full_like(image, fill)
    xs, xd = (tx, 0) if tx >= 0 else (0, -tx)
    ys, yd = (ty, 0) if ty >= 0 else (0, -ty)
    cw, ch = w - abs(tx), h - abs(ty)
    if cw > 0 and ch > 0:
        out[yd : yd + ch, xd : xd + cw] = image[ys : ys + ch, xs : xs + cw]
    return out


def warp_template(template: np.ndarray, matrix: np.ndarray, size_wh: tuple[int, int], border: int = 0) -> np.ndarray:
    """Template resampled into tested-image coordinates (`matrix` maps test -> template)."""
    shift = _integer_shift(matrix)
    if shift is not None and template.shape == (size_wh[1], size_wh[0]):
        return template.copy() if shift == (0, 0) else _translate(template, shift[0], shift[1], border)
    return cv2.warpAffine(
        template,
        matrix,
        size_wh,
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=border,
    )


def valid_mask(matrix: np.ndarray, size_wh: tuple[int, int], margin_px: int = 2) -> np.ndarray:
    """Pixels of the tested image that map inside the template (minus a margin)."""
    w, h = size_wh
    shift = _integer_shift(matrix)
    if shift is not None:
        tx, ty = shift
        mask = np.zeros((h, w), np.uint8)
        x1, y1 = max(0, -tx) + margin_px, max(0, -ty) + margin_px
        x2, y2 = min(w, w - tx) - margin_px, min(h, h - ty) - margin_px
        if x2 > x1 and y2 > y1:
            mask[y1:y2, x1:x2] = 1
        return mask
    warped = warp_template(np.ones((h, w), np.uint8), matrix, size_wh)
    if margin_px:
        # erosion leaves the image's own frame alone (the border counts as valid): cut the margin there too
        warped = cv2.erode(warped, np.ones((2 * margin_px + 1, 2 * margin_px + 1), np.uint8))
        warped[:margin_px], warped[h - margin_px :] = 0, 0
        warped[:, :margin_px], warped[:, w - margin_px :] = 0, 0
    return warped


def register(
    test: np.ndarray,
    template: np.ndarray,
    config: RegistrationConfig = RegistrationConfig(),
    test_bin: np.ndarray | None = None,
    template_bin: np.ndarray | None = None,
) -> Registration:
    if test.shape != template.shape:
        raise RegistrationError(
            f"template size {template.shape[1]}x{template.shape[0]} differs from image size "
            f"{test.shape[1]}x{test.shape[0]}"
        )
    h, w = test.shape
    size_wh = (w, h)
    tb = binarise(test) if test_bin is None else test_bin
    gb = binarise(template) if template_bin is None else template_bin

    s = config.coarse_scale if min(h, w) >= 64 * config.coarse_scale else 1
    small_t = cv2.resize(tb.astype(np.float32), (w // s, h // s), interpolation=cv2.INTER_AREA)
    small_g = cv2.resize(gb.astype(np.float32), (w // s, h // s), interpolation=cv2.INTER_AREA)
    max_shift = min(config.max_shift_px, int(config.max_shift_fraction * min(h, w)))
    dx, dy = _best_shift(tb, gb, small_g, small_t, s, max_shift, config.peak_candidates)
    # Snap to whole pixels when close: keeps the warped template crisp.
    dx, dy = (round(dx) if abs(dx - round(dx)) < 0.25 else dx), (round(dy) if abs(dy - round(dy)) < 0.25 else dy)
    matrix = np.array([[1.0, 0.0, -dx], [0.0, 1.0, -dy]], np.float32)
    mask = valid_mask(matrix, size_wh)
    residual = _residual(tb, warp_template(gb, matrix, size_wh), mask)
    refined = False
    angle = 0.0
    if config.subpixel:
        fine = _refine_grey(test, template, matrix, config.subpixel_scale)
        if fine is not None:
            residual_fine = _residual(tb, binarise(warp_template(template, fine, size_wh)), valid_mask(fine, size_wh))
            # The binarised residual ignores 1 px edge disagreement, so it barely tells a half-pixel fit
            # from the whole-pixel one: the fit is kept unless it makes the pair clearly worse.
            if residual_fine <= residual + SUBPIXEL_RESIDUAL_SLACK:
                matrix, residual, refined = fine, residual_fine, True
                angle = float(np.degrees(np.arctan2(matrix[1, 0], matrix[0, 0])))
                inv = cv2.invertAffineTransform(matrix)
                dx, dy = float(inv[0, 2]), float(inv[1, 2])
    if residual > config.refine_above_residual and not refined:
        refined_matrix = _refine_ecc(tb, gb, matrix, config.refine_scale)
        if refined_matrix is not None:
            mask2 = valid_mask(refined_matrix, size_wh)
            residual2 = _residual(tb, warp_template(gb, refined_matrix, size_wh), mask2)
            if residual2 < residual:
                matrix, residual, refined = refined_matrix, residual2, True
                angle = float(np.degrees(np.arctan2(matrix[1, 0], matrix[0, 0])))
                # matrix maps test->template: x_t = R x + t; test offset is -R^T t
                inv = cv2.invertAffineTransform(matrix)
                dx, dy = float(inv[0, 2]), float(inv[1, 2])
    if residual > config.max_residual:
        raise RegistrationError(
            f"template does not match the tested image ({residual:.1%} of pixels disagree after alignment): "
            "another board, or a misalignment beyond what can be registered"
        )
    return Registration(matrix, float(dx), float(dy), angle, residual, refined)


def _best_shift(
    tb: np.ndarray, gb: np.ndarray, small_g: np.ndarray, small_t: np.ndarray, s: int, max_shift: int, k: int
) -> tuple[float, float]:
    """The correlation peak that the whole image agrees with best.

    Ball-grid arrays, finger rows and line bundles repeat every few pixels, so the correlation surface
    has several near-equal peaks, and the downsampled and the cropped full-resolution searches can
    both settle on one a period (or a stretch along a line) off. The `k` strongest coarse peaks and
    the full-resolution runner-ups of the strongest are scored by the binarised disagreement over the
    whole overlap, where the layout's non-periodic parts (array edges, other features) break the tie.
    Only the strongest coarse peak is refined by correlation (the costly part); the others are
    settled by the whole-pixel climb."""
    coarse = phase_correlation_peaks(small_g, small_t, max_shift / s, k)
    options = _refine_shift(tb, gb, coarse[0][0] * s, coarse[0][1] * s, k=3)
    options += [(sx * s, sy * s) for sx, sy in coarse[1:]]  # runner-ups: the climb below settles them
    seen: dict[tuple[int, int], tuple[float, float]] = {}
    for dx, dy in options:  # strongest first; one per whole-pixel shift
        seen.setdefault((round(dx), round(dy)), (dx, dy))
    options = list(seen.values())
    scores = [_shift_disagreement(tb, gb, ix, iy) for ix, iy in seen]
    best = options[int(np.argmin(scores))]
    # A line bundle smears its peak into a ridge along the lines: climb to the whole-pixel optimum.
    ix, iy, score = round(best[0]), round(best[1]), min(scores)
    for _ in range(2 * max_shift):
        moves = [(ix + mx, iy + my) for mx in (-1, 0, 1) for my in (-1, 0, 1) if mx or my]
        trial = [_shift_disagreement(tb, gb, x, y) for x, y in moves]
        if min(trial) >= score:
            break
        score = min(trial)
        ix, iy = moves[int(np.argmin(trial))]
    return best if (ix, iy) == (round(best[0]), round(best[1])) else (float(ix), float(iy))


def _shift_disagreement(tb: np.ndarray, gb: np.ndarray, dx: int, dy: int) -> float:
    """Fraction of overlapping pixels that disagree when test(x) is compared with template(x - d)."""
    h, w = tb.shape
    if abs(dx) >= w or abs(dy) >= h:
        return 1.0
    t = tb[max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)]
    g = gb[max(-dy, 0) : h + min(-dy, 0), max(-dx, 0) : w + min(-dx, 0)]
    return float(cv2.countNonZero(cv2.bitwise_xor(t, g))) / max(t.size, 1)


@dataclass(frozen=True)
class AlignedPair:
    """A registered pair in tested-image coordinates: what candidate finding and tolerance learning read."""

    registration: Registration
    test_bin: np.ndarray
    template_aligned: np.ndarray
    template_bin_aligned: np.ndarray
    valid: np.ndarray


def align_pair(
    test: np.ndarray, template: np.ndarray, config: RegistrationConfig = RegistrationConfig()
) -> AlignedPair:
    """Binarise both images, register them and bring the template (grey and binary) onto the test."""
    test_bin, template_bin = binarise(test), binarise(template)
    reg = register(test, template, config, test_bin, template_bin)
    h, w = test.shape
    template_aligned = warp_template(template, reg.matrix, (w, h))
    if reg.whole_pixel_shift:
        template_bin_aligned = warp_template(template_bin, reg.matrix, (w, h))
    else:
        template_bin_aligned = binarise(template_aligned)
    return AlignedPair(reg, test_bin, template_aligned, template_bin_aligned, valid_mask(reg.matrix, (w, h)))


@lru_cache(maxsize=8)
def _hanning(w: int, h: int) -> np.ndarray:
    window = cv2.createHanningWindow((w, h), cv2.CV_32F)
    window.setflags(write=False)
    return window


def phase_correlate(reference: np.ndarray, moved: np.ndarray, max_shift: float) -> tuple[float, float]:
    """Shift (dx, dy) with moved(x) ~ reference(x - d), searched only within |d| <= max_shift (sub-pixel)."""
    return phase_correlation_peaks(reference, moved, max_shift, 1)[0]


def phase_correlation_peaks(
    reference: np.ndarray, moved: np.ndarray, max_shift: float, k: int
) -> list[tuple[float, float]]:
    """The `k` strongest local maxima of the phase-correlation surface within |d| <= max_shift, strongest
    first, each as a sub-pixel shift (dx, dy) with moved(x) ~ reference(x - d)."""
    h, w = reference.shape
    window = _hanning(w, h)
    # OpenCV's DFT: about 3x numpy's on these sizes, same surface to float precision.
    fa = cv2.dft(np.asarray(reference, np.float32) * window, flags=cv2.DFT_COMPLEX_OUTPUT)
    fb = cv2.dft(np.asarray(moved, np.float32) * window, flags=cv2.DFT_COMPLEX_OUTPUT)
    cross = cv2.mulSpectrums(fb, fa, 0, conjB=True)
    cross /= (cv2.magnitude(cross[..., 0], cross[..., 1]) + 1e-9)[..., None]
    surface = np.fft.fftshift(cv2.idft(cross, flags=cv2.DFT_REAL_OUTPUT | cv2.DFT_SCALE))
    cy, cx = h // 2, w // 2
    r = max(1, int(np.ceil(max_shift)))
    oy, ox = max(cy - r, 0), max(cx - r, 0)
    sub = np.ascontiguousarray(surface[oy : cy + r + 1, ox : cx + r + 1], np.float32)
    if k <= 1:
        flat = [int(np.argmax(sub))]
    else:
        local_max = (sub >= cv2.dilate(sub, np.ones((3, 3), np.uint8))).ravel()
        ranked = np.argsort(-sub.ravel())
        flat = [int(i) for i in ranked[local_max[ranked]][:k]] or [int(ranked[0])]

    def vertex(m1: float, c0: float, p1: float) -> float:
        denom = m1 - 2 * c0 + p1
        return 0.0 if abs(denom) < 1e-12 else 0.5 * (m1 - p1) / denom

    peaks = []
    for i in flat:
        iy, ix = divmod(i, sub.shape[1])
        py, px = iy + oy, ix + ox
        fx = vertex(surface[py, px - 1], surface[py, px], surface[py, (px + 1) % w]) if px > 0 else 0.0
        fy = vertex(surface[py - 1, px], surface[py, px], surface[(py + 1) % h, px]) if py > 0 else 0.0
        peaks.append((float(px - cx + fx), float(py - cy + fy)))
    return peaks


def _refine_shift(
    tb: np.ndarray, gb: np.ndarray, dx: float, dy: float, crop: int = 256, k: int = 1
) -> list[tuple[float, float]]:
    """Full-resolution phase correlation on a central crop around the coarse shift: its `k` best peaks."""
    h, w = tb.shape
    c = min(crop, h // 2 * 2 - 2 * int(abs(dy)) - 4, w // 2 * 2 - 2 * int(abs(dx)) - 4)
    if c < 32:
        return [(dx, dy)]
    y0, x0 = (h - c) // 2, (w - c) // 2
    ix, iy = int(round(dx)), int(round(dy))
    t_crop = tb[y0 : y0 + c, x0 : x0 + c].astype(np.float32)
    g_crop = gb[y0 - iy : y0 - iy + c, x0 - ix : x0 - ix + c].astype(np.float32)
    if g_crop.shape != t_crop.shape:
        return [(dx, dy)]
    return [(ix + fx, iy + fy) for fx, fy in phase_correlation_peaks(g_crop, t_crop, 4.0, k)]


def _refine_grey(test: np.ndarray, template: np.ndarray, init: np.ndarray, scale: int) -> np.ndarray | None:
    """Euclidean ECC on the lightly blurred grey images, from a whole-pixel start: sub-pixel shift + rotation."""
    return _ecc_fit(test, template, init, scale, ((0, 0), 1.0), (30, 1e-4), max_wander_px=2.0)


def _refine_ecc(tb: np.ndarray, gb: np.ndarray, init: np.ndarray, scale: int) -> np.ndarray | None:
    """Euclidean ECC on the binarised images: shift + rotation when the whole-pixel fit leaves a residual."""
    return _ecc_fit(tb.astype(np.float32), gb.astype(np.float32), init, scale, ((3, 3), 0.0), (60, 1e-5))


def _ecc_fit(
    test: np.ndarray,
    template: np.ndarray,
    init: np.ndarray,
    scale: int,
    blur: tuple[tuple[int, int], float],
    stop: tuple[int, float],
    max_wander_px: float | None = None,
) -> np.ndarray | None:
    """ECC at 1/`scale` (Gaussian `blur` = (ksize, sigma), `stop` = (iterations, eps)) from `init`; None when it
    fails or its shift moves more than `max_wander_px` from the start."""
    h, w = test.shape
    s = max(1, scale)
    ksize, sigma = blur
    small_t = cv2.GaussianBlur(cv2.resize(test, (w // s, h // s), interpolation=cv2.INTER_AREA).astype(np.float32),
                               ksize, sigma)  # fmt: skip
    small_g = cv2.GaussianBlur(cv2.resize(template, (w // s, h // s), interpolation=cv2.INTER_AREA).astype(np.float32),
                               ksize, sigma)  # fmt: skip
    warp = init.astype(np.float32).copy()
    warp[:, 2] /= s
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, stop[0], stop[1])
    try:
        # ECC finds W with small_g(W x) ~ small_t(x): W maps test coordinates to template coordinates.
        _, warp = cv2.findTransformECC(  # type: ignore[call-overload]
            small_t, small_g, warp, cv2.MOTION_EUCLIDEAN, criteria, None, 1
        )
    except cv2.error:
        return None
    warp[:, 2] *= s
    if max_wander_px is not None and np.abs(warp[:, 2] - init[:, 2]).max() > max_wander_px:
        return None
    return warp.astype(np.float32)
