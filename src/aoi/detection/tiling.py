"""Inspecting a panel far larger than a tile (line-scan images up to 16k x 16k).

`TiledInspector` wraps an inspector and looks like one: an image no larger than its threshold goes
to the wrapped inspector as it is, a larger one (a panel) is cut into overlapping tiles; each tile
is inspected against the same window of the panel's template (the engine registers the pair,
absorbing the small local shift), detections are moved back to panel pixels and mm, and the
duplicates that overlaps produce are merged. So a caller never asks how large an image is.
Tiles are numpy views (no copies of the panel) and run on a thread pool: the engine releases the
GIL in OpenCV and onnxruntime, so N threads use N cores.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, replace

import cv2
import numpy as np

from aoi.detection.boxes import (
    ExclusiveGroups,
    area,
    covered_fraction,
    gap_px,
    iou_and_containment,
    nearby_pairs,
    union_box,
)
from aoi.detection.candidates import CandidateConfig
from aoi.detection.protocol import InspectorLike
from aoi.registration import RegistrationConfig, RegistrationError
from aoi.schema import DEFAULT_PX_PER_MM, Defect, InspectionInputError, InspectionResult
from aoi.verdict import VerdictRules

MIN_TILE_PX = 32  # a smaller tile holds too little structure to register


class PanelError(InspectionInputError):
    """The panel and its template cannot be tiled together (sizes differ, bad tiling parameters)."""


@dataclass(frozen=True)
class Tile:
    """One window of the panel: its top-left corner and size in panel pixels."""

    index: int
    x_px: int
    y_px: int
    w_px: int
    h_px: int


def tile_starts(length_px: int, tile_px: int, overlap_px: int) -> list[int]:
    """Start offsets covering [0, length) with tiles of `tile_px` overlapping by >= `overlap_px`.

    The last tile is aligned to the far edge, so no tile is narrower than `tile_px` (a short edge
    tile would hold too little structure to register).
    """
    if length_px <= tile_px:
        return [0]
    step = tile_px - overlap_px
    starts = list(range(0, length_px - tile_px, step))
    starts.append(length_px - tile_px)
    return starts


def plan_tiles(size_wh: tuple[int, int], tile_px: int, overlap_px: int) -> list[Tile]:
    if tile_px < MIN_TILE_PX:
        raise PanelError(f"tile_px must be >= {MIN_TILE_PX}, got {tile_px}")
    if not 0 <= overlap_px < tile_px // 2:
        raise PanelError(f"overlap_px must be in [0, tile_px/2), got {overlap_px} for tile_px={tile_px}")
    w, h = size_wh
    tiles: list[Tile] = []
    for y in tile_starts(h, tile_px, overlap_px):
        for x in tile_starts(w, tile_px, overlap_px):
            tiles.append(Tile(len(tiles), x, y, min(tile_px, w), min(tile_px, h)))
    return tiles


PANEL_TILE_PX = 2048  # one tiling for every entry point: uploads, the line, `aoi inspect`
PANEL_OVERLAP_PX = 96


@dataclass(frozen=True)
class TilingConfig:
    """How large images are inspected: one configuration per process, so an HTTP upload and the
    capture line cut a panel into the same tiles (`aoi.api.settings.ServiceSettings.tiling`).

    An image whose longer side is at most `threshold_px` is inspected whole; a larger one (a panel)
    in tiles of `tile_px` overlapping by at least `overlap_px` (raised to what the engine's crop
    window needs and capped below half a tile, see `inspect_panel`), `workers` tiles at once.
    """

    threshold_px: int = 2048
    tile_px: int = 1024
    overlap_px: int = 96
    workers: int = 2

    @classmethod
    def for_panels(
        cls, tile_px: int = PANEL_TILE_PX, overlap_px: int = PANEL_OVERLAP_PX, workers: int = 2
    ) -> TilingConfig:
        """The tiling of every entry point (the service's, `aoi inspect`'s): images up to one tile whole,
        larger ones in tiles of that size."""
        return cls(threshold_px=tile_px, tile_px=tile_px, overlap_px=overlap_px, workers=workers)

    def __post_init__(self) -> None:
        if self.tile_px < MIN_TILE_PX:
            raise ValueError(f"tile_px must be >= {MIN_TILE_PX}, got {self.tile_px}")
        if self.overlap_px < 0:
            raise ValueError(f"overlap_px must be >= 0, got {self.overlap_px}")
        if self.threshold_px < self.tile_px:
            raise ValueError(
                f"threshold_px ({self.threshold_px}) must be at least tile_px ({self.tile_px}):"
                " an image that fits in one tile is inspected whole"
            )
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers}")


class TiledInspector:
    """An inspector that inspects small images whole and panels tile by tile (`InspectorLike`).

    Wrap, don't branch: built once around the engine, it is handed to every caller in place of the
    engine itself. Up to `config.workers` tiles run at once on one pool shared by every panel this
    inspector sees (so concurrent panels share that CPU budget rather than multiply it); the pool is
    started at the first panel. Thread-safe, as the wrapped inspector must be.
    """

    def __init__(self, inspector: InspectorLike, config: TilingConfig | None = None) -> None:
        if isinstance(inspector, TiledInspector):  # tile once: tiles of a tiled inspector are never re-tiled
            inspector = inspector.inspector
        self.inspector: InspectorLike = inspector
        self.config = config or TilingConfig()
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    @property
    def model_version(self) -> str:
        return self.inspector.model_version

    def swap(self, inspector: InspectorLike) -> InspectorLike:
        """Inspect with `inspector` from the next image on (a promoted model); returns the one replaced.
        An image being inspected finishes with the model it started with."""
        if isinstance(inspector, TiledInspector):
            inspector = inspector.inspector
        previous, self.inspector = self.inspector, inspector
        return previous

    @property
    def meta(self) -> object:
        """The wrapped inspector's bundle settings (None for one that declares none), which capture
        setups start from (`aoi.pipeline.capture.CaptureResolver`)."""
        return getattr(self.inspector, "meta", None)

    def inspect(
        self,
        test: np.ndarray,
        template: np.ndarray,
        *,
        image_id: str,
        px_per_mm: float = DEFAULT_PX_PER_MM,
        rules: VerdictRules | None = None,
        product: str | None = None,
        origin_px: tuple[float, float] = (0.0, 0.0),
        candidates: CandidateConfig | None = None,
        registration: RegistrationConfig | None = None,
        threshold: float | None = None,
    ) -> InspectionResult:
        """The wrapped inspector's result for an image up to `config.threshold_px` on its longer side;
        a panel's merged tile results (`inspect_panel`) for a larger one."""
        if max(test.shape) <= self.config.threshold_px:
            return self.inspector.inspect(
                test,
                template,
                image_id=image_id,
                px_per_mm=px_per_mm,
                rules=rules,
                product=product,
                origin_px=origin_px,
                candidates=candidates,
                registration=registration,
                **_threshold_kwarg(threshold),
            )
        result = inspect_panel(
            self.inspector,
            test,
            template,
            px_per_mm=px_per_mm,
            image_id=image_id,
            rules=rules,
            product=product,
            tile_px=self.config.tile_px,
            overlap_px=self.config.overlap_px,
            workers=self.config.workers,
            executor=self._executor(),
            candidates=candidates,
            registration=registration,
            threshold=threshold,
        )
        if origin_px != (0.0, 0.0):
            result = replace(result, defects=tuple(d.with_mm(px_per_mm, origin_px) for d in result.defects))
        return result

    def close(self) -> None:
        """Let the tile threads go once the panels in hand are done (a later panel starts them again)."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)

    def __enter__(self) -> TiledInspector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _executor(self) -> Executor | None:
        if self.config.workers <= 1:
            return None
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.config.workers, thread_name_prefix="aoi-panel")
            return self._pool


def inspect_panel(
    inspector: InspectorLike,
    panel: np.ndarray,
    template: np.ndarray,
    *,
    px_per_mm: float,
    image_id: str,
    rules: VerdictRules | None = None,
    product: str | None = None,
    tile_px: int = 1024,
    overlap_px: int = 96,
    workers: int = 2,
    executor: Executor | None = None,
    align: bool = True,
    max_align_shift_px: int = 512,
    seam_defect_px: int = 192,
    candidates: CandidateConfig | None = None,
    registration: RegistrationConfig | None = None,
    threshold: float | None = None,
) -> InspectionResult:
    """Inspect `panel` against its same-size `template` tile by tile; one merged result in panel coordinates.

    The panel must report what inspecting it whole would, so every defect is called by a tile that
    sees it as the engine would see it in one piece: its candidate and the whole square crop window
    around it (extent + 2 x context, see `candidate_window`). `overlap_px` is therefore raised to
    `seam_overlap_px` (a defect up to `seam_defect_px` across, centred anywhere, then fits with its
    window in the tile whose interior holds its centre), and each defect is kept from the tile that
    sees it whole and deepest (`select_tile_defects`). Larger defects, which no tile sees whole,
    are merged from their pieces (`merge_tile_defects`).

    With `align`, a coarse whole-panel shift (line-scan trigger jitter, beyond what one tile's
    registration searches) is estimated first, and each tile takes the template window moved by
    it; the engine then registers the small local rest. A tile that fails to register makes the
    whole panel fail (RegistrationError): a panel with a hole in its inspection must not pass.

    `candidates` / `registration`: the product's capture setup, the same for every tile (None: the
    inspector's own settings). `threshold`: the cut each tile reports at (None: the model's).
    """
    started = time.perf_counter()
    if panel.ndim != 2 or template.ndim != 2:
        raise PanelError(f"{image_id}: panel and template must be 2-D grayscale arrays")
    if panel.shape != template.shape:
        raise RegistrationError(
            f"{image_id}: template is {template.shape[1]}x{template.shape[0]} but the panel is "
            f"{panel.shape[1]}x{panel.shape[0]}"
        )
    h, w = panel.shape
    context_px, min_window_px = candidate_window(inspector, candidates)
    overlap_px = max(overlap_px, seam_overlap_px(context_px, min_window_px, seam_defect_px))
    overlap_px = min(overlap_px, tile_px // 2 - 1)  # small tiles: as much as plan_tiles allows
    tiles = plan_tiles((w, h), tile_px, overlap_px)
    rules = rules or VerdictRules()
    shift_x, shift_y = estimate_panel_shift(panel, template, max_align_shift_px) if align else (0, 0)

    def run(tile: Tile) -> InspectionResult:
        window = np.s_[tile.y_px : tile.y_px + tile.h_px, tile.x_px : tile.x_px + tile.w_px]
        # test pixel (x, y) shows template pixel (x - shift_x, y - shift_y); clamp at the panel edge,
        # where the engine's registration absorbs what is left
        gx = min(max(tile.x_px - shift_x, 0), w - tile.w_px)
        gy = min(max(tile.y_px - shift_y, 0), h - tile.h_px)
        golden = np.s_[gy : gy + tile.h_px, gx : gx + tile.w_px]
        try:
            return inspector.inspect(
                panel[window],
                template[golden],
                image_id=f"{image_id}#t{tile.index}",
                px_per_mm=px_per_mm,
                rules=rules,
                product=product,
                origin_px=(float(tile.x_px), float(tile.y_px)),
                candidates=candidates,
                registration=registration,
                **_threshold_kwarg(threshold),
            )
        except RegistrationError as exc:
            raise RegistrationError(
                f"{image_id}: tile {tile.index} at x={tile.x_px}, y={tile.y_px} ({tile.w_px}x{tile.h_px} px) "
                f"does not register to its template window: {exc}"
            ) from exc

    if executor is not None:
        tile_results = _run_all(executor, run, tiles)
    elif workers <= 1 or len(tiles) == 1:
        tile_results = [run(t) for t in tiles]
    else:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="aoi-panel") as pool:
            tile_results = _run_all(pool, run, tiles)
    inspected = time.perf_counter()

    moved: list[tuple[int, Defect]] = []
    for tile, result in zip(tiles, tile_results, strict=True):
        for d in result.defects:
            x1, y1, x2, y2 = d.box_px
            box = (x1 + tile.x_px, y1 + tile.y_px, x2 + tile.x_px, y2 + tile.y_px)
            moved.append((tile.index, replace(d, box_px=box).with_mm(px_per_mm)))
    defects = select_tile_defects(moved, tiles, (w, h), px_per_mm, context_px=context_px, min_window_px=min_window_px)
    finished = time.perf_counter()

    timings: dict[str, float] = {}
    aligned: dict[str, float] = {}  # registration figures: mean over tiles, plus the tiling
    for result in tile_results:  # per-stage CPU time summed over tiles
        for key, ms in result.timings_ms.items():
            if key != "total":
                timings[key] = timings.get(key, 0.0) + float(ms)
        for key, value in result.registration.items():
            aligned[key] = aligned.get(key, 0.0) + float(value) / len(tile_results)
    timings["tiles_wall"] = (inspected - started) * 1000.0
    timings["merge"] = (finished - inspected) * 1000.0
    timings["total"] = (finished - started) * 1000.0
    aligned["tiles"] = float(len(tiles))
    aligned["overlap_px"] = float(overlap_px)
    aligned["panel_dx"] = float(shift_x)
    aligned["panel_dy"] = float(shift_y)
    model_version = tile_results[0].model_version if tile_results else getattr(inspector, "model_version", "")
    return InspectionResult(
        image_id=image_id,
        image_size_wh=(w, h),
        defects=tuple(defects),
        verdict=rules.verdict(defects, px_per_mm),
        px_per_mm=px_per_mm,
        model_version=model_version,
        timings_ms=timings,
        registration=aligned,
        product=product,
    )


ALIGN_SCALE = 16  # coarse alignment works on a 1/16 thumbnail: 16k -> 1k, tens of ms
MIN_ALIGN_RESPONSE = 0.05  # phase-correlation peak below this: no trustworthy shift, keep (0, 0)
SMALL_SHIFT_PX = 8  # the engine's own registration handles this much; do not move windows for it


def estimate_panel_shift(panel: np.ndarray, template: np.ndarray, max_shift_px: int) -> tuple[int, int]:
    """Whole-panel (dx, dy) such that panel pixel (x, y) shows template pixel (x - dx, y - dy).

    Phase correlation of thumbnails; returns (0, 0) when the peak is weak, the shift exceeds
    `max_shift_px`, or it is small enough for tile registration alone.
    """
    h, w = panel.shape
    scale = ALIGN_SCALE if min(h, w) >= 64 * ALIGN_SCALE else max(1, min(h, w) // 64)
    size = (w // scale, h // scale)
    small_panel = cv2.resize(panel, size, interpolation=cv2.INTER_AREA).astype(np.float32)
    small_template = cv2.resize(template, size, interpolation=cv2.INTER_AREA).astype(np.float32)
    window = cv2.createHanningWindow(size, cv2.CV_32F)
    (sx, sy), response = cv2.phaseCorrelate(small_template, small_panel, window)
    dx, dy = round(sx * scale), round(sy * scale)
    if response < MIN_ALIGN_RESPONSE or max(abs(dx), abs(dy)) > max_shift_px:
        return 0, 0
    dx, dy = _refine_shift(panel, template, dx, dy)
    if max(abs(dx), abs(dy)) <= SMALL_SHIFT_PX:
        return 0, 0
    return dx, dy


def _refine_shift(panel: np.ndarray, template: np.ndarray, dx: int, dy: int, crop_px: int = 1024) -> tuple[int, int]:
    """Correct a coarse shift to the pixel on a full-resolution crop at the panel centre."""
    h, w = panel.shape
    side = min(crop_px, w - abs(dx), h - abs(dy))
    if side < 64:
        return dx, dy
    x0 = (w - side) // 2
    y0 = (h - side) // 2
    gx = min(max(x0 - dx, 0), w - side)
    gy = min(max(y0 - dy, 0), h - side)
    crop_panel = panel[y0 : y0 + side, x0 : x0 + side].astype(np.float32)
    crop_template = template[gy : gy + side, gx : gx + side].astype(np.float32)
    window = cv2.createHanningWindow((side, side), cv2.CV_32F)
    (rx, ry), response = cv2.phaseCorrelate(crop_template, crop_panel, window)
    if response < MIN_ALIGN_RESPONSE or max(abs(rx), abs(ry)) > side / 4:
        return dx, dy
    return (x0 - gx) + round(rx), (y0 - gy) + round(ry)


def _run_all(
    executor: Executor, run: Callable[[Tile], InspectionResult], tiles: Sequence[Tile]
) -> list[InspectionResult]:
    """Results in tile order; on the first failure the tiles not yet started are cancelled."""
    futures = [executor.submit(run, t) for t in tiles]
    try:
        return [f.result() for f in futures]
    except BaseException:
        for f in futures:
            f.cancel()
        raise


def _same_defect(a: Defect, b: Defect) -> bool:
    """Two detections from different tiles are one defect when their boxes coincide or one holds the other.

    The same type merges readily (a defect cut by a tile edge appears as two partial boxes that
    touch or overlap); different types only when nearly identical (the tiles saw it differently).
    """
    iou, contained = iou_and_containment(a.box_px, b.box_px)
    if a.type == b.type:
        touching = gap_px(a.box_px, b.box_px) <= 1.0
        return iou >= 0.3 or contained >= 0.5 or (touching and _cut_pair(a.box_px, b.box_px))
    return iou >= 0.6 or contained >= 0.9


def _cut_pair(a: Sequence[float], b: Sequence[float]) -> bool:
    """Boxes that share most of one side's span look like one object cut by a tile edge."""
    overlap_x = min(a[2], b[2]) - max(a[0], b[0])
    overlap_y = min(a[3], b[3]) - max(a[1], b[1])
    span_x = min(a[2] - a[0], b[2] - b[0])
    span_y = min(a[3] - a[1], b[3] - b[1])
    return (span_x > 0 and overlap_x >= 0.5 * span_x) or (span_y > 0 and overlap_y >= 0.5 * span_y)


_MERGE_CELL_PX = 256  # spatial hash cell: only detections sharing a cell are compared


SEAM_SLACK_PX = 8  # the reported box is the model's, not the candidate's tight box: allow a few px either way


def candidate_window(inspector: InspectorLike, candidates: CandidateConfig | None = None) -> tuple[int, int]:
    """(context_px, min_window_px) of the crop the inspector classifies a candidate from.

    The engine declares it in its bundle (`meta.candidates`), or a capture setup's `candidates` config
    does; an inspector that does neither is taken to look like the engine's defaults, so a seam is
    never trusted with less context than that.
    """
    config = candidates or getattr(getattr(inspector, "meta", None), "candidates", None)
    if not isinstance(config, CandidateConfig):
        config = CandidateConfig()
    return int(config.context_px), int(config.min_window_px)


def window_side_px(box_px: Sequence[float], context_px: int, min_window_px: int) -> float:
    """Side of the square the engine crops around a candidate with this box, plus the slack."""
    extent = max(box_px[2] - box_px[0], box_px[3] - box_px[1])
    return max(extent + 2 * context_px, min_window_px) + 2 * SEAM_SLACK_PX


def seam_overlap_px(context_px: int, min_window_px: int, defect_px: int) -> int:
    """Overlap at which a defect up to `defect_px` across, centred in a tile's interior (half the
    overlap away from its inner edges), has its whole crop window inside that tile."""
    side = window_side_px((0.0, 0.0, float(defect_px), float(defect_px)), context_px, min_window_px)
    return int(np.ceil(side))


def _seen_whole_depth(box_px: Sequence[float], tile: Tile, size_wh: tuple[int, int], side_px: float) -> float | None:
    """How far the box centre lies from the tile's inner edges, when the window of `side_px` around
    it fits in the tile (the panel's own edges do not count: a whole inspection is clipped there
    too); None when the tile sees the defect or its context cut off."""
    w, h = size_wh
    cx = (box_px[0] + box_px[2]) / 2.0
    cy = (box_px[1] + box_px[3]) / 2.0
    half = side_px / 2.0
    inf = float("inf")
    gaps = (
        cx - tile.x_px if tile.x_px > 0 else inf,
        cy - tile.y_px if tile.y_px > 0 else inf,
        tile.x_px + tile.w_px - cx if tile.x_px + tile.w_px < w else inf,
        tile.y_px + tile.h_px - cy if tile.y_px + tile.h_px < h else inf,
    )
    depth = min(gaps)
    return depth if depth >= half else None


def select_tile_defects(
    candidates: Sequence[tuple[int, Defect]],
    tiles: Sequence[Tile],
    size_wh: tuple[int, int],
    px_per_mm: float,
    *,
    context_px: int,
    min_window_px: int,
) -> list[Defect]:
    """The panel's defects from every tile's detections (boxes already in panel pixels).

    A detection is a *whole view* when its tile holds the defect's crop window (what the engine
    classifies from); it is then the same call a whole-panel inspection makes. Whole views of one
    defect from several tiles are grouped (boxes with IoU >= 0.5, one per tile) and the one whose
    centre lies deepest inside its tile is kept: that is the tile whose interior (the panel split
    along the middle of every overlap) holds the centre. A *cut view* (window reaching a tile edge)
    is dropped when another tile holds its window whole, since that tile's call, defect or none,
    stands; cut views no tile can replace (defects wider than the overlap allows) are merged from
    their pieces by `merge_tile_defects`.
    """
    by_index = {t.index: t for t in tiles}
    whole: list[tuple[int, Defect, float]] = []
    cut_views: list[tuple[int, Defect]] = []
    for tile_index, d in candidates:
        side = window_side_px(d.box_px, context_px, min_window_px)
        depth = _seen_whole_depth(d.box_px, by_index[tile_index], size_wh, side)
        if depth is not None:
            whole.append((tile_index, d, depth))
        elif not any(
            t.index != tile_index and _holds(t, d.box_px) and _seen_whole_depth(d.box_px, t, size_wh, side) is not None
            for t in tiles
        ):
            cut_views.append((tile_index, d))

    kept = _deepest_of_each_defect(whole)
    merged = merge_tile_defects(
        [(-1, d) for d in kept] + cut_views, px_per_mm, cut=[False] * len(kept) + [True] * len(cut_views)
    )
    return merged


def _holds(tile: Tile, box_px: Sequence[float]) -> bool:
    x1, y1, x2, y2 = box_px
    return tile.x_px <= x1 and tile.y_px <= y1 and x2 <= tile.x_px + tile.w_px and y2 <= tile.y_px + tile.h_px


def _deepest_of_each_defect(views: Sequence[tuple[int, Defect, float]]) -> list[Defect]:
    """Group whole views of one defect seen by several tiles; keep the deepest view of each group."""
    groups = ExclusiveGroups([tile for tile, _, _ in views])
    boxes = [d.box_px for _, d, _ in views]
    scored: dict[tuple[int, int], float] = {}
    for i, j in nearby_pairs(boxes, _MERGE_CELL_PX):
        if views[i][0] != views[j][0]:
            iou, _ = iou_and_containment(boxes[i], boxes[j])
            if iou >= 0.5:
                scored[(i, j)] = iou
    for i, j in sorted(scored, key=lambda p: (-scored[p], p)):  # closest views first
        groups.join(i, j)
    return [views[max(group, key=lambda i: (views[i][2], -views[i][0]))][1] for group in groups.groups()]


def merge_tile_defects(
    candidates: Sequence[tuple[int, Defect]], px_per_mm: float, cut: Sequence[bool] | None = None
) -> list[Defect]:
    """Merge detections of one defect seen by several tiles into one box (their union).

    `cut[i]` marks a detection touching an inner tile edge: a partial view whose box and type are
    unreliable. It is dropped when another tile has a whole view (not cut) covering at least a
    third of it; with no whole view (a defect wider than the overlap) the pieces are merged. Two
    whole views never merge: `select_tile_defects`, which calls this, has already kept one view per
    defect and dropped the cut views of regions another tile saw whole.

    Only detections from *different* tiles merge: two boxes inside one tile are the detector's own
    call, and a merged group never holds two detections of one tile (so a defect at a four-tile
    corner becomes one, but two neighbouring defects do not chain into one). The group takes type
    and confidence from its fullest view: an uncut one, else the largest piece (a sliver at a tile
    edge is the least reliable call), then the most confident. Pairs are found through a spatial
    hash, so a 16k panel with thousands of detections merges in milliseconds.
    """
    n = len(candidates)
    pairs = {
        (i, j)
        for i, j in nearby_pairs([d.box_px for _, d in candidates], _MERGE_CELL_PX, reach_px=1.0)
        if candidates[i][0] != candidates[j][0]
    }
    if cut is not None:
        if len(cut) != n:
            raise ValueError(f"cut has {len(cut)} flags for {n} candidates")
        dropped = {
            partial
            for i, j in pairs
            for partial, whole in ((i, j), (j, i))
            if cut[partial]
            and not cut[whole]
            and covered_fraction(candidates[partial][1].box_px, candidates[whole][1].box_px) >= 1 / 3
        }
        if dropped:
            keep = [i for i in range(n) if i not in dropped]
            return merge_tile_defects([candidates[i] for i in keep], px_per_mm, cut=[cut[i] for i in keep])
    # strongest pairs first, so that a group forms around its most confident detections
    groups = ExclusiveGroups([tile for tile, _ in candidates])
    for i, j in sorted(pairs, key=lambda p: (-min(candidates[p[0]][1].confidence, candidates[p[1]][1].confidence), p)):
        if not _same_defect(candidates[i][1], candidates[j][1]):
            continue
        if cut is not None and not cut[i] and not cut[j]:
            continue  # two whole views are two defects (select_tile_defects already chose one per defect)
        groups.join(i, j)

    defects: list[Defect] = []
    for group in groups.groups():
        members = [candidates[i][1] for i in group]
        if len(members) == 1:
            defects.append(members[0])
            continue
        # the fullest view names the defect: an uncut one, else the largest piece, then confidence
        best = max(
            group,
            key=lambda i: (
                cut is None or not cut[i],
                area(candidates[i][1].box_px),
                candidates[i][1].confidence,
            ),
        )
        union = union_box([d.box_px for d in members])
        defects.append(replace(candidates[best][1], box_px=union).with_mm(px_per_mm))
    defects.sort(key=lambda d: (d.box_px[1], d.box_px[0]))
    return defects


def _threshold_kwarg(threshold: float | None) -> dict[str, float]:
    """`threshold=` only when one is asked for: inspectors that always report at their own cut need not
    take the argument."""
    return {} if threshold is None else {"threshold": threshold}
