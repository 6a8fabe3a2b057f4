"""Defect painters: each edits the copper mask locally and re-renders only the touched neighbourhood, so the
tested image differs from its input exactly where the defect was painted; plus dust (not a defect).

A painter returns the new image (the input is not modified) and the DeepPCB-style box of the change, and
avoids the boxes it is given; it raises `NoSuitableSpotError` when the board has no place for its defect.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from aoi.data.annotations import LabeledBox
from aoi.data.images import validate_image
from aoi.data.synthetic.rendering import BOX_MARGIN_PX, changed_box, copper_mask, rerender
from aoi.schema import DEFECT_CATALOGUE, BoxXYXY, DefectType

_MAX_TRIES = 80


class NoSuitableSpotError(RuntimeError):
    """A painter found no place on the image where its defect can be painted (e.g. no trace, all avoided)."""


Painter = Callable[[np.ndarray, np.random.Generator, Sequence[BoxXYXY | LabeledBox]], tuple[np.ndarray, LabeledBox]]


def _as_box(item: BoxXYXY | LabeledBox) -> BoxXYXY:
    return item.box_px if isinstance(item, LabeledBox) else tuple(float(v) for v in item)  # type: ignore[return-value]


def _overlaps_any(box: BoxXYXY, avoid: Sequence[BoxXYXY | LabeledBox]) -> bool:
    x1, y1, x2, y2 = box
    for other in avoid:
        a1, b1, a2, b2 = _as_box(other)
        if x1 < a2 and a1 < x2 and y1 < b2 and b1 < y2:
            return True
    return False


class _View:
    """Analyses of one image shared by the painters: copper mask, conductors, distances to edges."""

    def __init__(self, image: np.ndarray) -> None:
        self.image = validate_image(image)
        self.mask = copper_mask(self.image)
        self.h, self.w = self.mask.shape
        _, self.labels = cv2.connectedComponents(self.mask.astype(np.uint8), connectivity=8)
        self._inside: np.ndarray | None = None
        self._outside: np.ndarray | None = None

    @property
    def inside_px(self) -> np.ndarray:
        """Distance of each copper pixel to the nearest substrate."""
        if self._inside is None:
            self._inside = cv2.distanceTransform(self.mask.astype(np.uint8), cv2.DIST_L2, 5)
        return self._inside

    @property
    def outside_px(self) -> np.ndarray:
        """Distance of each substrate pixel to the nearest copper."""
        if self._outside is None:
            self._outside = cv2.distanceTransform((~self.mask).astype(np.uint8), cv2.DIST_L2, 5)
        return self._outside

    def label_at(self, x: float, y: float) -> int:
        return int(self.labels[int(round(y)), int(round(x))])

    def inside(self, x: float, y: float) -> bool:
        return 0 <= round(x) < self.w and 0 <= round(y) < self.h

    def run_px(self, x: float, y: float, ux: float, uy: float, copper: bool, max_px: int) -> int:
        """How many 1-px steps from (x, y) along (ux, uy) stay on copper (or substrate); stops at the border."""
        for t in range(1, max_px + 1):
            px, py = x + ux * t, y + uy * t
            if not self.inside(px, py) or self.mask[int(round(py)), int(round(px))] != copper:
                return t - 1
        return max_px

    def finish(
        self, new_mask: np.ndarray, kind: DefectType, avoid: Sequence[BoxXYXY | LabeledBox]
    ) -> tuple[np.ndarray, LabeledBox] | None:
        """Render the edit; None when it changed nothing or its box would overlap an avoided box."""
        out = rerender(self.image, self.mask, new_mask)
        box = changed_box(self.image, out)
        if box is None or _overlaps_any(box, avoid):
            return None
        return out, LabeledBox(kind, box)


@dataclass(frozen=True)
class _TraceSite:
    """A point on the centre line of a straight trace stretch, its direction and half-widths."""

    x: float
    y: float
    along: tuple[float, float]
    normal: tuple[float, float]
    half_width_px: float
    label: int

    def edge(self, side: int) -> tuple[float, float]:
        reach_px = side * self.half_width_px
        return (self.x + self.normal[0] * reach_px, self.y + self.normal[1] * reach_px)


_AXES = [(1.0, 0.0), (math.sqrt(0.5), math.sqrt(0.5)), (0.0, 1.0), (-math.sqrt(0.5), math.sqrt(0.5))]


def _trace_sites(view: _View, rng: np.random.Generator, avoid: Sequence[BoxXYXY | LabeledBox]):
    """Yield random trace centre-line sites (traces 5-22 px wide), skipping pads, planes and avoided boxes."""
    dist = view.inside_px
    ridge = (dist >= 2.5) & (dist <= 11.5) & (dist >= cv2.dilate(dist, np.ones((3, 3), np.uint8)))
    ys, xs = np.nonzero(ridge)
    if xs.size == 0:
        return
    for i in rng.permutation(xs.size)[: _MAX_TRIES * 4]:
        x, y = float(xs[i]), float(ys[i])
        if _overlaps_any((x - 20, y - 20, x + 20, y + 20), avoid):
            continue
        runs = [view.run_px(x, y, ux, uy, True, 80) + view.run_px(x, y, -ux, -uy, True, 80) for ux, uy in _AXES]
        a = int(np.argmax(runs))
        along, normal = _AXES[a], _AXES[(a + 2) % 4]
        plus = view.run_px(x, y, normal[0], normal[1], True, 30)
        minus = view.run_px(x, y, -normal[0], -normal[1], True, 30)
        width = plus + minus + 1
        if runs[a] < max(24, 3 * width) or abs(plus - minus) > 2 or not 5 <= width <= 23:
            continue
        # the stretch must be straight: the width is the same a few px either side
        same = all(
            abs(
                view.run_px(x + along[0] * s, y + along[1] * s, normal[0], normal[1], True, 30)
                + view.run_px(x + along[0] * s, y + along[1] * s, -normal[0], -normal[1], True, 30)
                + 1
                - width
            )
            <= 2
            for s in (-8, 8)
        )
        if not same:
            continue
        yield _TraceSite(x, y, along, normal, width / 2.0, view.label_at(x, y))


def _rotated_rect(center: tuple[float, float], along: tuple[float, float], half_along: float, half_across: float):
    cx, cy = center
    ax, ay = along
    nx, ny = -ay, ax
    corners = [
        (cx + ax * sa * half_along + nx * sn * half_across, cy + ay * sa * half_along + ny * sn * half_across)
        for sa, sn in ((-1, -1), (1, -1), (1, 1), (-1, 1))
    ]
    return np.array([[round(px), round(py)] for px, py in corners], np.int32)


def _labels_touched(view: _View, changed: np.ndarray, grow_px: int) -> set[int]:
    near = cv2.dilate(changed.astype(np.uint8), np.ones((2 * grow_px + 1, 2 * grow_px + 1), np.uint8)) > 0
    return set(np.unique(view.labels[near & view.mask]).tolist())


def _n_conductors_near(mask: np.ndarray, box: BoxXYXY) -> int:
    x1, y1, x2, y2 = (int(v) for v in box)
    n, _ = cv2.connectedComponents(mask[y1:y2, x1:x2].astype(np.uint8), connectivity=8)
    return n - 1


# ---------------------------------------------------------------------------------------------- painters


def paint_open(
    image: np.ndarray, rng: np.random.Generator, avoid: Sequence[BoxXYXY | LabeledBox] = ()
) -> tuple[np.ndarray, LabeledBox]:
    """Cut a 3-12 px gap straight across a trace, severing it."""
    view = _View(image)
    for site in _trace_sites(view, rng, avoid):
        gap_px = float(rng.uniform(3, 12))
        cut = np.zeros_like(view.mask, np.uint8)
        poly = _rotated_rect((site.x, site.y), site.normal, site.half_width_px + 3, gap_px / 2)
        cv2.fillPoly(cut, [poly], 255)
        cut_copper = (cut > 0) & view.mask
        if set(np.unique(view.labels[cut_copper]).tolist()) != {site.label}:
            continue
        new = view.mask & ~(cut > 0)
        result = view.finish(new, DefectType.OPEN, avoid)
        if result is not None and _n_conductors_near(new, result[1].box_px) > _n_conductors_near(
            view.mask, result[1].box_px
        ):
            return result
    raise NoSuitableSpotError("no straight trace stretch to cut open")


BITE_CENTRE_INSIDE = 0.15  # of the radius; the notch reaches 1.15 radius into the trace


def paint_mousebite(
    image: np.ndarray, rng: np.random.Generator, avoid: Sequence[BoxXYXY | LabeledBox] = ()
) -> tuple[np.ndarray, LabeledBox]:
    """Bite 1-3 round notches out of one edge of a trace without severing it."""
    view = _View(image)
    for site in _trace_sites(view, rng, avoid):
        side = int(rng.choice([-1, 1]))
        ex, ey = site.edge(side)
        radius_px = float(rng.uniform(3.5, max(4.0, 0.8 * site.half_width_px)))
        n_bites = int(rng.integers(1, 4))
        bites = np.zeros_like(view.mask, np.uint8)
        for k in range(n_bites):
            # centred just inside the edge: each notch is about 1.15 radius (>= 4 px) deep, DeepPCB-sized
            offset = (k - (n_bites - 1) / 2) * radius_px * 1.3
            bx = ex + site.along[0] * offset - site.normal[0] * side * radius_px * BITE_CENTRE_INSIDE
            by = ey + site.along[1] * offset - site.normal[1] * side * radius_px * BITE_CENTRE_INSIDE
            cv2.circle(bites, (round(bx), round(by)), max(2, round(radius_px)), 255, -1)
        removed = (bites > 0) & view.mask
        if not removed.any() or set(np.unique(view.labels[removed]).tolist()) != {site.label}:
            continue
        new = view.mask & ~(bites > 0)
        result = view.finish(new, DefectType.MOUSEBITE, avoid)
        if result is not None and _n_conductors_near(new, result[1].box_px) == _n_conductors_near(
            view.mask, result[1].box_px
        ):
            return result
    raise NoSuitableSpotError("no trace edge to bite")


def _gap_outward(view: _View, site: _TraceSite, side: int, max_px: int) -> tuple[int, int]:
    """Substrate run from the trace edge outward, and the conductor label met at its end (0 if none)."""
    ex, ey = site.edge(side)
    ux, uy = site.normal[0] * side, site.normal[1] * side
    start = 0
    while (
        start < 4
        and view.inside(ex + ux * start, ey + uy * start)
        and view.mask[int(round(ey + uy * start)), int(round(ex + ux * start))]
    ):
        start += 1
    sx, sy = ex + ux * start, ey + uy * start
    gap = view.run_px(sx, sy, ux, uy, False, max_px)
    hx, hy = sx + ux * (gap + 1), sy + uy * (gap + 1)
    hit = view.label_at(hx, hy) if gap < max_px and view.inside(hx, hy) else 0
    return start + gap, hit


def paint_spur(
    image: np.ndarray, rng: np.random.Generator, avoid: Sequence[BoxXYXY | LabeledBox] = ()
) -> tuple[np.ndarray, LabeledBox]:
    """Grow a tapered protrusion from a trace edge, reaching at most 60% of the way to the next conductor."""
    view = _View(image)
    for site in _trace_sites(view, rng, avoid):
        side = int(rng.choice([-1, 1]))
        gap_px, _ = _gap_outward(view, site, side, 60)
        if gap_px < 10:
            continue
        length_px = min(24.0, max(4.0, float(rng.uniform(0.3, 0.6)) * gap_px))
        base_px = float(rng.uniform(4, 12))
        ex, ey = site.edge(side)
        ax, ay = site.along
        nx, ny = site.normal[0] * side, site.normal[1] * side
        bx, by = ex - nx * 2, ey - ny * 2
        tx, ty = ex + nx * length_px, ey + ny * length_px
        tip = base_px * float(rng.uniform(0.2, 0.5))
        poly = np.array(
            [
                (bx - ax * base_px / 2, by - ay * base_px / 2),
                (bx + ax * base_px / 2, by + ay * base_px / 2),
                (tx + ax * tip / 2, ty + ay * tip / 2),
                (tx - ax * tip / 2, ty - ay * tip / 2),
            ]
        )
        grown = np.zeros_like(view.mask, np.uint8)
        cv2.fillPoly(grown, [np.rint(poly).astype(np.int32)], 255)
        added = (grown > 0) & ~view.mask
        if not added.any() or _labels_touched(view, added, 3) != {site.label}:
            continue
        result = view.finish(view.mask | (grown > 0), DefectType.SPUR, avoid)
        if result is not None:
            return result
    raise NoSuitableSpotError("no trace edge with room for a spur")


def paint_short(
    image: np.ndarray, rng: np.random.Generator, avoid: Sequence[BoxXYXY | LabeledBox] = ()
) -> tuple[np.ndarray, LabeledBox]:
    """Bridge a trace to a neighbouring conductor less than 45 px away with a 3-9 px copper strip."""
    view = _View(image)
    for site in _trace_sites(view, rng, avoid):
        side = int(rng.choice([-1, 1]))
        gap_px, hit = _gap_outward(view, site, side, 45)
        if hit in (0, site.label) or gap_px < 3:
            continue
        width_px = float(rng.uniform(3, 9))
        ex, ey = site.edge(side)
        nx, ny = site.normal[0] * side, site.normal[1] * side
        a = (ex - nx * 2, ey - ny * 2)
        b = (ex + nx * (gap_px + 3), ey + ny * (gap_px + 3))
        center = ((a[0] + b[0]) / 2, (a[1] + b[1]) / 2)
        poly = _rotated_rect(center, (nx, ny), (gap_px + 5) / 2, width_px / 2)
        bridge = np.zeros_like(view.mask, np.uint8)
        cv2.fillPoly(bridge, [poly], 255)
        added = (bridge > 0) & ~view.mask
        if not added.any() or _labels_touched(view, added, 1) != {site.label, hit}:
            continue
        result = view.finish(view.mask | (bridge > 0), DefectType.SHORT, avoid)
        if result is not None:
            return result
    raise NoSuitableSpotError("no pair of nearby conductors to short")


def _blob(rng: np.random.Generator, center: tuple[float, float], radius_px: float) -> np.ndarray:
    n = int(rng.integers(6, 10))
    angles = np.arange(n) * 2 * math.pi / n + rng.uniform(-0.3, 0.3, n)
    radii = radius_px * rng.uniform(0.6, 1.0, n)
    pts = np.stack([center[0] + radii * np.cos(angles), center[1] + radii * np.sin(angles)], axis=1)
    return np.rint(pts).astype(np.int32)


def _random_point_where(ok: np.ndarray, rng: np.random.Generator, avoid, reach_px: float):
    ys, xs = np.nonzero(ok)
    if xs.size == 0:
        return
    for i in rng.permutation(xs.size)[:_MAX_TRIES]:
        x, y = float(xs[i]), float(ys[i])
        if not _overlaps_any((x - reach_px, y - reach_px, x + reach_px, y + reach_px), avoid):
            yield x, y


def paint_copper(
    image: np.ndarray, rng: np.random.Generator, avoid: Sequence[BoxXYXY | LabeledBox] = ()
) -> tuple[np.ndarray, LabeledBox]:
    """Drop an isolated irregular copper blob (radius 3-10 px) on bare substrate, clear of all conductors."""
    view = _View(image)
    radius_px = float(rng.uniform(3, 10))
    h, w = view.mask.shape
    ok = view.outside_px >= radius_px + 5
    ok[: int(radius_px) + 1, :] = ok[h - int(radius_px) - 1 :, :] = False
    ok[:, : int(radius_px) + 1] = ok[:, w - int(radius_px) - 1 :] = False
    for x, y in _random_point_where(ok, rng, avoid, radius_px + BOX_MARGIN_PX):
        blob = np.zeros_like(view.mask, np.uint8)
        cv2.fillPoly(blob, [_blob(rng, (x, y), radius_px)], 255)
        result = view.finish(view.mask | (blob > 0), DefectType.COPPER, avoid)
        if result is not None:
            return result
    raise NoSuitableSpotError("no bare substrate wide enough for a copper blob")


def paint_dust(image: np.ndarray, rng: np.random.Generator, count: int) -> np.ndarray:
    """Lay `count` dust particles on bare substrate: soft grey specks (radius 2.5-5 px, grey 70-115 where
    copper is 0 and substrate 255). Not a defect: a plant's operators reject them, and a model that has
    never seen them may call them spurious copper (what the retraining loop is for)."""
    view = _View(image)
    out = image.astype(np.float32)
    h, w = view.mask.shape
    for _ in range(count):
        radius_px = float(rng.uniform(2.5, 5.0))
        ok = view.outside_px >= radius_px + 4
        margin = int(radius_px) + 2
        ok[:margin, :] = ok[h - margin :, :] = False
        ok[:, :margin] = ok[:, w - margin :] = False
        spot = next(_random_point_where(ok, rng, (), 0.0), None)
        if spot is None:
            break
        speck = np.zeros((h, w), np.uint8)
        cv2.fillPoly(speck, [_blob(rng, spot, radius_px)], 255)
        weight = cv2.GaussianBlur(speck.astype(np.float32) / 255.0, (5, 5), 1.0)
        grey = float(rng.uniform(70, 115))
        out = out * (1.0 - weight) + grey * weight
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def paint_pin_hole(
    image: np.ndarray, rng: np.random.Generator, avoid: Sequence[BoxXYXY | LabeledBox] = ()
) -> tuple[np.ndarray, LabeledBox]:
    """Punch a small round or oval hole (radius 1.5-5 px) fully inside copper."""
    view = _View(image)
    radius_px = float(rng.uniform(1.5, 5))
    for x, y in _random_point_where(view.inside_px >= radius_px + 3, rng, avoid, radius_px + BOX_MARGIN_PX):
        hole = np.zeros_like(view.mask, np.uint8)
        axes = (max(1, round(radius_px)), max(1, round(radius_px * rng.uniform(0.6, 1.0))))
        cv2.ellipse(hole, (round(x), round(y)), axes, float(rng.uniform(0, 180)), 0, 360, 255, -1)
        result = view.finish(view.mask & ~(hole > 0), DefectType.PIN_HOLE, avoid)
        if result is not None:
            return result
    raise NoSuitableSpotError("no copper wide enough for a pin-hole")


def paint_scratch(
    image: np.ndarray, rng: np.random.Generator, avoid: Sequence[BoxXYXY | LabeledBox] = ()
) -> tuple[np.ndarray, LabeledBox]:
    """Draw a thin (2-3 px), slightly curved 40-160 px scratch that inverts what it crosses.

    Works on any binarised scan, including real DeepPCB tested images (it only inverts grey levels
    along an anti-aliased curve), so it can add scratches to real training data away from `avoid`.
    """
    base = validate_image(image)
    h, w = base.shape
    for _ in range(_MAX_TRIES):
        length_px = float(rng.uniform(40, min(160, 0.8 * min(w, h))))
        angle = float(rng.uniform(0, math.pi))
        ux, uy = math.cos(angle), math.sin(angle)
        margin = 2
        x0 = float(rng.uniform(margin, w - margin))
        y0 = float(rng.uniform(margin, h - margin))
        x2, y2 = x0 + ux * length_px, y0 + uy * length_px
        if not (margin <= x2 <= w - margin and margin <= y2 <= h - margin):
            continue
        bend = float(rng.uniform(-0.15, 0.15)) * length_px
        cx, cy = (x0 + x2) / 2 - uy * bend, (y0 + y2) / 2 + ux * bend
        t = np.linspace(0.0, 1.0, 32)[:, None]
        curve = (1 - t) ** 2 * np.array([x0, y0]) + 2 * (1 - t) * t * np.array([cx, cy]) + t**2 * np.array([x2, y2])
        guess = (
            float(curve[:, 0].min()) - 12, float(curve[:, 1].min()) - 12,
            float(curve[:, 0].max()) + 12, float(curve[:, 1].max()) + 12,
        )  # fmt: skip
        if _overlaps_any(guess, avoid):
            continue
        alpha_canvas = np.zeros((h, w), np.uint8)
        thickness = int(rng.integers(2, 4))
        cv2.polylines(alpha_canvas, [np.rint(curve * 16).astype(np.int32)], False, 255, thickness, cv2.LINE_AA, 4)
        alpha = alpha_canvas.astype(np.float32) / 255.0
        inverted = 255.0 - base.astype(np.float32)
        out = np.clip(np.rint(base * (1 - alpha) + inverted * alpha), 0, 255).astype(np.uint8)
        box = changed_box(base, out)
        if box is None or _overlaps_any(box, avoid):
            continue
        return out, LabeledBox(DefectType.SCRATCH, box)
    raise NoSuitableSpotError("no place for a scratch clear of the avoided boxes")


PAINTERS: Mapping[DefectType, Painter] = {
    DefectType.OPEN: paint_open,
    DefectType.SHORT: paint_short,
    DefectType.MOUSEBITE: paint_mousebite,
    DefectType.SPUR: paint_spur,
    DefectType.COPPER: paint_copper,
    DefectType.PIN_HOLE: paint_pin_hole,
    DefectType.SCRATCH: paint_scratch,
}
if set(PAINTERS) != {info.type for info in DEFECT_CATALOGUE}:  # a type added to the catalogue needs a painter
    raise AssertionError(f"PAINTERS must paint every catalogued type; missing {set(DefectType) - set(PAINTERS)}")


def paint_defect(
    image: np.ndarray,
    defect_type: DefectType | str,
    rng: np.random.Generator,
    avoid: Sequence[BoxXYXY | LabeledBox] = (),
) -> tuple[np.ndarray, LabeledBox]:
    """Paint one defect of `defect_type`; returns the new image (the input is not modified) and its box."""
    return PAINTERS[DefectType.parse(defect_type)](image, rng, avoid)
