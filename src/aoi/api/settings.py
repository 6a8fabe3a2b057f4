"""Settings of one line service process (from `aoi serve` flags or built by tests)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from aoi.schema import DEFAULT_PX_PER_MM

DEFAULT_DATA_DIR = Path("aoi-data")
DEFAULT_MAX_UPLOAD_BYTES = 256 * 1024 * 1024  # a 16k x 16k PNG panel plus its template fits


@dataclass(frozen=True)
class ServiceSettings:
    """`database_url` None means the embedded default: SQLite under `data_dir`.

    `panel_tile_px`: uploads larger than this in either dimension are inspected tile by tile.
    `default_px_per_mm` applies to uploads with an explicit template and no product.
    `upload_concurrency`: uploads decoded and inspected at once (one per core by default); more
    concurrent requests wait for a slot (back-pressure, nothing is dropped) instead of fighting over
    the cores, which would only make every one of them slower.
    `open_reads`: serve stored data (inspections, images, stats, products, export) without an API key;
    False: every such read needs a key with the `read` scope (`aoi serve --open-reads` sets it).
    """

    data_dir: Path = DEFAULT_DATA_DIR
    database_url: str | None = None
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES
    model_bundle: Path | None = None
    default_px_per_mm: float = DEFAULT_PX_PER_MM
    panel_tile_px: int = 2048
    panel_overlap_px: int = 96
    serve_dashboard: bool = True
    upload_concurrency: int = max(1, os.cpu_count() or 1)
    open_reads: bool = False

    def __post_init__(self) -> None:
        if self.max_upload_bytes <= 0:
            raise ValueError(f"max_upload_bytes must be positive, got {self.max_upload_bytes}")
        if self.upload_concurrency < 1:
            raise ValueError(f"upload_concurrency must be at least 1, got {self.upload_concurrency}")
        if not self.default_px_per_mm > 0:
            raise ValueError(f"default_px_per_mm must be positive, got {self.default_px_per_mm}")
