"""Synthetic fine-pitch package-substrate captures: 3-6 px line/space, with defects at that scale.

Beside `aoi.data.synthetic` (DeepPCB-like boards, 6-20 px traces), this draws what a substrate maker
inspects: a ball-grid array of pads with dog-bone vias, a bundle of parallel lines with a 45-degree
jog, a row of bond fingers and a plane with anti-pads, all in DeepPCB polarity (copper dark). Every
conductor drawn is recorded as a straight stretch (centre line, direction, width, room to the next
conductor), so the painters put each defect where it means what its name says: an open severs a
line, a short bridges one space, a bite or a spur stays shallower than the line or the space.
Captures are shifted, rotated, blurred and noisy like a line-scan camera's.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from aoi.data.annotations import LabeledBox
from aoi.data.synthetic import NoSuitableSpotError, changed_box, paint_scratch, perturb, render_mask
from aoi.schema import DefectType

SUBSTRATE_BOX_MARGIN_PX = 3
# Blobs and pin-holes keep this far from the image border: a capture shifted by up to 3 px leaves a
# frame the template does not cover (plus the 2 px valid margin), which a line covers with overlapping
# tiles, not with one image.
BORDER_CLEARANCE_PX = 6


@dataclass(frozen=True)
class Stretch:
    """A straight piece of line: centre from (x0, y0) along unit (ux, uy) for `length_px`."""

    x0: float
    y0: float
    ux: float
    uy: float
    length_px: float
    width_px: int
    space_px: int  # clearance to the next conductor on the +normal side (0: unknown / open)


@dataclass(frozen=True)
class SubstrateDesign:
    copper: np.ndarray  # bool mask
    stretches: tuple[Stretch, ...]
    plane: tuple[int, int, int, int]  # x1, y1, x2, y2 of the plane with anti-pads


def generate_design(rng: np.random.Generator, size_px: int = 512) -> SubstrateDesign:
    h = w = size_px
    m = np.zeros((h, w), np.uint8)
    stretches: list[Stretch] = []
    half = size_px // 2
    # Ball-grid array with dog-bones (top-left quarter).
    pitch = int(rng.integers(14, 19))
    pad_r = int(rng.integers(3, 5))
    for y in range(16, half - 16, pitch):
        for x in range(16, half - 16, pitch):
            cv2.circle(m, (x, y), pad_r, 255, -1)
            vx, vy = x + pitch // 2 - 1, y + pitch // 2 - 1
            if vx < half - 10 and vy < half - 10:
                cv2.line(m, (x, y), (vx - 1, vy - 1), 255, 2)
                cv2.circle(m, (vx, vy), 2, 255, -1)
    # Bundle of parallel lines with a 45-degree jog (top-right quarter).
    lw, sp = int(rng.integers(3, 7)), int(rng.integers(3, 7))
    for k in range((half - 40) // (lw + sp)):
        y = 20 + k * (lw + sp) + lw // 2
        x_a, x_b = half + 12, half + 90
        jog = 24
        pts = np.array([(x_a, y), (x_b, y), (x_b + jog, y + jog), (w - 12, y + jog)], np.int32)
        cv2.polylines(m, [pts], False, 255, 1)
        for off in range(-(lw // 2), lw - lw // 2):  # exact width lw in whole pixels
            cv2.polylines(m, [pts + np.array([0, off], np.int32)], False, 255, 1)
        stretches.append(Stretch(x_a + 8, y + (lw % 2 == 0) * -0.5, 1.0, 0.0, x_b - x_a - 16, lw, sp))
        y_after = y + jog + (lw % 2 == 0) * -0.5
        stretches.append(Stretch(x_b + jog + 8, y_after, 1.0, 0.0, w - 20 - x_b - jog - 8, lw, sp))
    # Bond fingers (bottom-left quarter): vertical fingers, each its own conductor.
    fw, fs = int(rng.integers(4, 8)), int(rng.integers(3, 7))
    for k in range((half - 32) // (fw + fs)):
        x = 16 + k * (fw + fs)
        m[half + 16 : h - 60, x : x + fw] = 255
        stretches.append(Stretch(x + (fw - 1) / 2, half + 30, 0.0, 1.0, h - 60 - half - 44, fw, fs))
    # Plane with anti-pads (bottom-right quarter).
    plane = (half + 12, half + 12, w - 12, h - 12)
    m[plane[1] : plane[3], plane[0] : plane[2]] = 255
    ap_pitch = int(rng.integers(28, 40))
    for y in range(plane[1] + 20, plane[3] - 14, ap_pitch):
        for x in range(plane[0] + 20, plane[2] - 14, ap_pitch):
            cv2.circle(m, (x, y), 7, 0, -1)
            cv2.circle(m, (x, y), 3, 255, -1)
    return SubstrateDesign(m > 0, tuple(stretches), plane)


def _site(design: SubstrateDesign, rng: np.random.Generator) -> tuple[Stretch, float, float]:
    s = design.stretches[int(rng.integers(0, len(design.stretches)))]
    t = float(rng.uniform(0.1, 0.9)) * s.length_px
    return s, s.x0 + s.ux * t, s.y0 + s.uy * t


def _away_from_border(allowed: np.ndarray, clearance_px: int) -> np.ndarray:
    out = allowed.copy()
    out[:clearance_px], out[-clearance_px:], out[:, :clearance_px], out[:, -clearance_px:] = False, False, False, False
    return out


def _rect(cx: float, cy: float, ux: float, uy: float, half_along: float, half_across: float) -> np.ndarray:
    nx, ny = -uy, ux
    return np.array(
        [
            (cx + ux * a * half_along + nx * b * half_across, cy + uy * a * half_along + ny * b * half_across)
            for a, b in ((-1, -1), (1, -1), (1, 1), (-1, 1))
        ]
    )


def paint_substrate_defect(
    design: SubstrateDesign, copper: np.ndarray, kind: DefectType, rng: np.random.Generator
) -> np.ndarray:
    """A new copper mask with one defect of `kind` at the design's scale (raises NoSuitableSpotError)."""
    out = copper.astype(np.uint8) * 255
    if kind in (DefectType.OPEN, DefectType.SHORT, DefectType.MOUSEBITE, DefectType.SPUR):
        s, x, y = _site(design, rng)
        nx, ny = -s.uy, s.ux
        hw = s.width_px / 2.0
        if kind is DefectType.OPEN:
            gap = float(rng.uniform(2, max(3, 2 * s.width_px)))
            cv2.fillPoly(out, [np.rint(_rect(x, y, s.ux, s.uy, gap / 2, hw + 1)).astype(np.int32)], 0)
        elif kind is DefectType.SHORT:
            if s.space_px <= 0:
                raise NoSuitableSpotError("no space to bridge")
            bw = float(rng.uniform(1, 3))
            reach = hw + s.space_px / 2.0
            bridge = _rect(x + nx * reach, y + ny * reach, nx, ny, reach, bw / 2)
            cv2.fillPoly(out, [np.rint(bridge).astype(np.int32)], 255)
        elif kind is DefectType.MOUSEBITE:
            r = float(rng.uniform(max(1.5, 0.45 * s.width_px), max(2.0, 0.7 * s.width_px)))
            side = float(rng.choice([-1, 1]))
            reach = hw + r * 0.3
            cv2.circle(out, (round(x + nx * side * reach), round(y + ny * side * reach)), round(r), 0, -1)
        else:
            side = 1.0  # toward the recorded space
            room = s.space_px if s.space_px else 4
            depth = float(rng.uniform(max(1.5, 0.4 * room), max(2.0, 0.6 * room)))
            c = (x + nx * side * (hw + depth / 2 - 0.5), y + ny * side * (hw + depth / 2 - 0.5))
            spur = _rect(c[0], c[1], nx, ny, depth / 2, float(rng.uniform(1, 2.5)))
            cv2.fillPoly(out, [np.rint(spur).astype(np.int32)], 255)
    elif kind is DefectType.COPPER:
        free = cv2.distanceTransform((~copper).astype(np.uint8), cv2.DIST_L2, 5)
        r = float(rng.uniform(1.5, 4))
        ys, xs = np.nonzero(_away_from_border(free >= r + 4, round(r) + BORDER_CLEARANCE_PX))
        if xs.size == 0:
            raise NoSuitableSpotError("no bare substrate for a blob")
        i = int(rng.integers(0, xs.size))
        cv2.circle(out, (int(xs[i]), int(ys[i])), round(r), 255, -1)
    elif kind is DefectType.PIN_HOLE:
        x1, y1, x2, y2 = design.plane
        inside = cv2.distanceTransform(copper.astype(np.uint8), cv2.DIST_L2, 5)
        r = float(rng.uniform(1, 2.5))
        zone = np.zeros_like(copper)
        zone[y1:y2, x1:x2] = True
        ys, xs = np.nonzero(_away_from_border(zone & (inside >= r + 3), round(r) + BORDER_CLEARANCE_PX))
        if xs.size == 0:
            raise NoSuitableSpotError("no plane for a pin-hole")
        i = int(rng.integers(0, xs.size))
        cv2.circle(out, (int(xs[i]), int(ys[i])), max(1, round(r)), 0, -1)
    else:
        raise NoSuitableSpotError(f"{kind.value} is painted on the rendered image")
    return out > 0


@dataclass(frozen=True)
class SubstrateCapture:
    template: np.ndarray
    test: np.ndarray
    labels: tuple[LabeledBox, ...]


def capture(
    design: SubstrateDesign,
    rng: np.random.Generator,
    kind: DefectType | None,
    shifted: bool,
) -> SubstrateCapture:
    """Render the design as template and one capture, with one defect of `kind` (None: a good capture)."""
    template = render_mask(design.copper)
    labels: list[LabeledBox] = []
    if kind is DefectType.SCRATCH:
        test, scratch = paint_scratch(template, rng)
        labels.append(scratch)
    elif kind is not None:
        for _ in range(20):
            try:
                mask = paint_substrate_defect(design, design.copper, kind, rng)
            except NoSuitableSpotError:
                continue
            test = render_mask(mask)
            box = changed_box(template, test, SUBSTRATE_BOX_MARGIN_PX)
            if box is not None:
                labels.append(LabeledBox(kind, box))
                break
        else:
            raise NoSuitableSpotError(f"no place for {kind.value}")
    else:
        test = template
    test = cv2.GaussianBlur(test, (0, 0), float(rng.uniform(0.4, 0.8)))
    shift = (float(rng.uniform(-3, 3)), float(rng.uniform(-3, 3))) if shifted else (0.0, 0.0)
    rotation = float(rng.uniform(-0.2, 0.2)) if shifted else 0.0
    test, moved = perturb(test, labels, shift, rotation, 1.0 + float(rng.uniform(-0.1, 0.1)),
                          float(rng.uniform(0, 5)), rng)  # fmt: skip
    return SubstrateCapture(template, test, moved)
