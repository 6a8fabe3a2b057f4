"""Settings of one line service process (from `aoi serve` flags or built by tests)."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

from aoi.detection.tiling import PANEL_OVERLAP_PX, PANEL_TILE_PX, TilingConfig
from aoi.schema import DEFAULT_PX_PER_MM, SchemaError, check_trace_id
from aoi.shifts import DEFAULT_SHIFTS, ShiftError, ShiftPlan, plant_zone

DEFAULT_DATA_DIR = Path("aoi-data")
DEFAULT_MAX_UPLOAD_BYTES = 256 * 1024 * 1024  # a 16k x 16k PNG panel plus its template fits
INFLIGHT_UPLOADS_OF_MAX_SIZE = 4  # default in-flight byte budget: this many largest uploads at once
UPLOAD_QUEUE_PER_SLOT = 4  # default upload queue: this many more uploads admitted per `upload_concurrency`
DEFAULT_UPLOAD_WAIT_S = 30.0
DEFAULT_UPLOAD_RESULT_TIMEOUT_S = 60.0
DEFAULT_RATE_LIMIT_BURST = 20


@dataclass(frozen=True)
class ServiceSettings:
    """`database_url` None means the embedded default: SQLite under `data_dir`.

    `panel_tile_px`: images larger than this in either dimension (uploads and the line's alike) are
    inspected tile by tile, in tiles of this size overlapping by at least `panel_overlap_px`,
    `panel_workers` tiles at once (see `tiling`).
    `default_px_per_mm` applies to uploads with an explicit template and no product.
    Uploads are inspected by the line's inspect workers (`aoi.api.line.LineOptions.inspect_workers`,
    `aoi serve --workers`), the one CPU budget shared with the hot folder, camera and demo.
    `upload_concurrency` (deprecated: it no longer sets how many uploads are inspected at once) and
    `upload_queue` (None: 4 per `upload_concurrency`) size only the door: past `upload_concurrency` +
    `upload_queue` uploads admitted at once, one more is refused with 503 + Retry-After before its body
    is read.
    `upload_wait_s`: an upload that finds the line's inspect queue full this long is refused (503 +
    Retry-After).
    `upload_result_timeout_s`: how long a request waits for the line to inspect and store its accepted
    upload; past it the request is answered 503 + Retry-After and the line still inspects and stores it (a
    retry with the same Idempotency-Key gets that result).
    `max_inflight_bytes`: request bodies held at once, all requests together (None: 4 of the largest
    uploads); a body that would pass it is refused with 503 + Retry-After.
    `rate_limit_per_s`: writes a second per API key (0: no limit), `rate_limit_burst` at once (429).
    `open_reads`: serve stored data (inspections, images, stats, products, export) without an API key;
    False: every such read needs a key with the `read` scope (`aoi serve --open-reads` sets it).
    `review_lease_s`: how long the review queue keeps a defect it handed to one operator from the others.
    `line_name`: this line's name, recorded with every board it inspects (`aoi serve --line-name`).
    `shifts` / `shift_timezone`: the plant's shifts for shift reports (`aoi.shifts`; zone None: the server's).
    `registry_poll_s`: without `model_bundle`, how often the service looks for a model promoted or rolled
    back in `data_dir/models` and swaps it in (`aoi.api.model_follow`; 0: never).
    `upload_latency_budget_s`: with every inspect worker busy, an upload is admitted only while the ones
    queued ahead of it, at the recent inspection time, leave it answered within this (0: no budget, only
    the door's count); past it, 503 + Retry-After before its body is read. `aoi serve` sets 0.1 s.
    `engine_processes`: 0 runs the engine in the line's own threads; N > 0 in N worker processes
    (`aoi.detection.process_inspector.ProcessInspector`, `aoi serve` gives one per inspect worker), so the
    engine's Python holds no GIL the event loop and the other workers need. Used when the app loads its
    model itself (`create_app` without `inspector=`) and for every model the registry swaps in.
    """

    data_dir: Path = DEFAULT_DATA_DIR
    database_url: str | None = None
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES
    model_bundle: Path | None = None
    default_px_per_mm: float = DEFAULT_PX_PER_MM
    panel_tile_px: int = PANEL_TILE_PX
    panel_overlap_px: int = PANEL_OVERLAP_PX
    panel_workers: int = 2
    serve_dashboard: bool = True
    upload_concurrency: int = max(1, os.cpu_count() or 1)
    upload_queue: int | None = None
    upload_wait_s: float = DEFAULT_UPLOAD_WAIT_S
    upload_result_timeout_s: float = DEFAULT_UPLOAD_RESULT_TIMEOUT_S
    max_inflight_bytes: int | None = None
    rate_limit_per_s: float = 0.0
    rate_limit_burst: int = DEFAULT_RATE_LIMIT_BURST
    open_reads: bool = False
    review_lease_s: float = 120.0
    line_name: str | None = None
    shifts: str = DEFAULT_SHIFTS
    shift_timezone: str | None = None
    registry_poll_s: float = 2.0
    engine_processes: int = 0
    upload_latency_budget_s: float = 0.0

    def __post_init__(self) -> None:
        try:
            if self.line_name is not None:
                check_trace_id(self.line_name, "line_name")
            ShiftPlan.parse(self.shifts)
            plant_zone(self.shift_timezone)
        except (SchemaError, ShiftError) as exc:
            raise ValueError(str(exc)) from None
        _ = self.tiling  # a tile size, overlap or worker count that cannot work fails here, at start
        if self.max_upload_bytes <= 0:
            raise ValueError(f"max_upload_bytes must be positive, got {self.max_upload_bytes}")
        if self.upload_concurrency < 1:
            raise ValueError(f"upload_concurrency must be at least 1, got {self.upload_concurrency}")
        if self.upload_latency_budget_s < 0:
            raise ValueError(f"upload_latency_budget_s must be 0 or more, got {self.upload_latency_budget_s}")
        if self.engine_processes < 0:
            raise ValueError(f"engine_processes must be 0 or more, got {self.engine_processes}")
        if not self.default_px_per_mm > 0:
            raise ValueError(f"default_px_per_mm must be positive, got {self.default_px_per_mm}")
        if self.upload_queue is not None and self.upload_queue < 0:
            raise ValueError(f"upload_queue must be 0 or more, got {self.upload_queue}")
        if not (self.upload_wait_s > 0 and math.isfinite(self.upload_wait_s)):
            raise ValueError(f"upload_wait_s must be a positive number of seconds, got {self.upload_wait_s}")
        if not (self.upload_result_timeout_s > 0 and math.isfinite(self.upload_result_timeout_s)):
            raise ValueError(
                f"upload_result_timeout_s must be a positive number of seconds, got {self.upload_result_timeout_s}"
            )
        if self.max_inflight_bytes is not None and self.max_inflight_bytes < self.max_upload_bytes:
            raise ValueError(
                f"max_inflight_bytes ({self.max_inflight_bytes}) must be at least max_upload_bytes"
                f" ({self.max_upload_bytes}), or an upload of the largest size could never be accepted"
            )
        if not (self.rate_limit_per_s >= 0 and math.isfinite(self.rate_limit_per_s)):
            raise ValueError(f"rate_limit_per_s must be 0 (off) or a positive rate, got {self.rate_limit_per_s}")
        if self.rate_limit_burst < 1:
            raise ValueError(f"rate_limit_burst must be at least 1, got {self.rate_limit_burst}")
        if not (self.review_lease_s > 0 and math.isfinite(self.review_lease_s)):
            raise ValueError(f"review_lease_s must be a positive number of seconds, got {self.review_lease_s}")

    @property
    def tiling(self) -> TilingConfig:
        """The one tiling of this process: HTTP uploads and the capture line inspect through a
        `TiledInspector` with it (`aoi.api.app.create_app`, `aoi.api.line.build_line`)."""
        return TilingConfig.for_panels(self.panel_tile_px, self.panel_overlap_px, self.panel_workers)

    @property
    def upload_queue_depth(self) -> int:
        """`upload_queue`, or its default: 4 per `upload_concurrency`."""
        if self.upload_queue is not None:
            return self.upload_queue
        return UPLOAD_QUEUE_PER_SLOT * self.upload_concurrency

    @property
    def inflight_bytes_budget(self) -> int:
        """`max_inflight_bytes`, or its default: 4 uploads of the largest size."""
        if self.max_inflight_bytes is not None:
            return self.max_inflight_bytes
        return INFLIGHT_UPLOADS_OF_MAX_SIZE * self.max_upload_bytes
