"""Defect-free synthetic boards: copper planes, nets of pads/vias joined by traces, spare vias."""

from __future__ import annotations

import math

import cv2
import numpy as np

from aoi.data.synthetic.rendering import DEFAULT_SIZE_WH, render_mask


def generate_template(rng: np.random.Generator, size_wh: tuple[int, int] = DEFAULT_SIZE_WH) -> np.ndarray:
    """A defect-free board: copper planes, nets of pads/vias joined by 0/45/90-degree traces, spare vias.

    Every conductor keeps a clearance of 8-18 px to the others, so a copper bridge is a real short.
    """
    w, h = int(size_wh[0]), int(size_wh[1])
    if w < 64 or h < 64:
        raise ValueError(f"size_wh must be at least 64x64, got {size_wh}")
    layout = _Layout(w, h)
    for _ in range(int(rng.integers(1, 3))):
        for _attempt in range(20):
            if layout.try_add(_draw_plane(rng, w, h), clearance_px=float(rng.uniform(10, 18))):
                break
    target_nets = int(rng.integers(30, 50)) * w * h // (640 * 640) + 2
    for _attempt in range(target_nets * 15):
        if layout.n_added >= target_nets + 2:
            break
        layout.try_add(_draw_net(rng, w, h), clearance_px=float(rng.uniform(8, 16)))
    for _attempt in range(40):
        layout.try_add(_draw_terminal_alone(rng, w, h), clearance_px=float(rng.uniform(8, 16)))
    return render_mask(layout.copper)


class _Layout:
    """Copper placed so far, and the distance of every substrate pixel to it (for the clearance rule)."""

    def __init__(self, w: int, h: int) -> None:
        self.copper = np.zeros((h, w), bool)
        self._distance_px: np.ndarray = np.full((h, w), 1e6, np.float32)
        self.n_added = 0

    def try_add(self, element: np.ndarray, clearance_px: float) -> bool:
        drawn = element > 0
        if not drawn.any() or float(self._distance_px[drawn].min()) < clearance_px:
            return False
        self.copper |= drawn
        self._distance_px = cv2.distanceTransform((~self.copper).astype(np.uint8), cv2.DIST_L2, 5)
        self.n_added += 1
        return True


_DIRECTIONS = [(math.cos(k * math.pi / 4), math.sin(k * math.pi / 4)) for k in range(8)]


def _draw_plane(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    """A copper pour with a chamfered corner and a few isolated vias in clearance holes."""
    canvas = np.zeros((h, w), np.uint8)
    pw, ph = int(rng.uniform(0.15, 0.35) * w), int(rng.uniform(0.12, 0.3) * h)
    x0, y0 = int(rng.integers(-pw // 3, w - pw * 2 // 3)), int(rng.integers(-ph // 3, h - ph * 2 // 3))
    c = int(rng.uniform(0.1, 0.35) * min(pw, ph))
    poly = np.array([(x0 + c, y0), (x0 + pw, y0), (x0 + pw, y0 + ph), (x0, y0 + ph), (x0, y0 + c)], np.int32)
    cv2.fillPoly(canvas, [poly], 255)
    placed: list[tuple[int, int, int]] = []
    for _ in range(int(rng.integers(0, 4))):
        ring_r = int(rng.integers(8, 13))
        hole_r = int(rng.integers(30, 50) * ring_r // 100)
        gap = int(rng.integers(6, 10))
        reach = ring_r + gap + 6
        if pw <= 2 * reach or ph <= 2 * reach:
            break
        cx, cy = int(rng.integers(x0 + reach, x0 + pw - reach)), int(rng.integers(y0 + reach, y0 + ph - reach))
        if any(math.hypot(cx - px, cy - py) < reach + pr for px, py, pr in placed):
            continue
        placed.append((cx, cy, reach))
        cv2.circle(canvas, (cx, cy), ring_r + gap, 0, -1)
        cv2.circle(canvas, (cx, cy), ring_r, 255, -1)
        cv2.circle(canvas, (cx, cy), hole_r, 0, -1)
    return canvas


def _draw_terminal(canvas: np.ndarray, rng: np.random.Generator, xy: tuple[int, int], trace_w: int) -> None:
    """A rectangular pad, round pad or via (ring with a drilled hole) at `xy`, larger than the trace."""
    kind = int(rng.integers(0, 3))
    x, y = xy
    if kind == 0:
        hw, hh = int(rng.integers(trace_w // 2 + 4, trace_w // 2 + 16)), int(rng.integers(trace_w // 2 + 4, 24))
        cv2.rectangle(canvas, (x - hw, y - hh), (x + hw, y + hh), 255, -1)
    elif kind == 1:
        cv2.circle(canvas, (x, y), int(rng.integers(max(8, trace_w // 2 + 3), 18)), 255, -1)
    else:
        ring_r = int(rng.integers(max(8, trace_w // 2 + 4), 16))
        cv2.circle(canvas, (x, y), ring_r, 255, -1)
        cv2.circle(canvas, (x, y), int(ring_r * rng.uniform(0.35, 0.55)), 0, -1)


def _draw_net(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    """Two terminals joined by a polyline of 1-4 segments at multiples of 45 degrees."""
    canvas = np.zeros((h, w), np.uint8)
    trace_w = int(rng.integers(6, 21))
    x, y = float(rng.uniform(0, w)), float(rng.uniform(0, h))
    points = [(int(round(x)), int(round(y)))]
    heading = int(rng.integers(0, 8))
    for segment in range(int(rng.integers(1, 5))):
        if segment:
            heading = (heading + int(rng.choice([-2, -1, 1, 2]))) % 8
        length = float(rng.uniform(40, 240))
        dx, dy = _DIRECTIONS[heading]
        x, y = x + dx * length, y + dy * length
        points.append((int(round(x)), int(round(y))))
    cv2.polylines(canvas, [np.array(points, np.int32)], False, 255, trace_w, cv2.LINE_8)
    _draw_terminal(canvas, rng, points[0], trace_w)
    _draw_terminal(canvas, rng, points[-1], trace_w)
    return canvas


def _draw_terminal_alone(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    canvas = np.zeros((h, w), np.uint8)
    _draw_terminal(canvas, rng, (int(rng.integers(0, w)), int(rng.integers(0, h))), int(rng.integers(6, 14)))
    return canvas
