"""The results database and image store of the line service."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from aoi.pipeline.protocols import ProductRecipe
from aoi.pipeline.template_origin import ProductRef
from aoi.storage.database import Database, resolve_database_url
from aoi.storage.images import ImageStore
from aoi.storage.orphans import OrphanSweep, StoreLock, sweep_orphans
from aoi.storage.recorder import DatabaseSink, InspectionRecorder
from aoi.storage.records import Product

IMAGES_DIR_NAME = "images"


@dataclass
class Storage:
    """Everything persistent of one line: the database and the image store under the data directory.

    While open it holds a shared lock on the image store (see `orphans.py`), released by `close()`.
    """

    data_dir: Path
    db: Database
    images: ImageStore
    lock: StoreLock = field(init=False)

    def __post_init__(self) -> None:
        self.lock = StoreLock(self.data_dir).acquire()

    @classmethod
    def open(cls, data_dir: Path | str, database_url: str | None = None) -> Storage:
        """Open (creating if needed) the data directory and run the migrations."""
        data_dir = Path(data_dir).resolve()
        data_dir.mkdir(parents=True, exist_ok=True)
        db = Database.open(data_dir, database_url)
        return cls(data_dir, db, ImageStore(data_dir / IMAGES_DIR_NAME))

    @property
    def recorder(self) -> InspectionRecorder:
        return InspectionRecorder(self.db, self.images)

    def sink(self, source: str = "pipeline") -> DatabaseSink:
        return DatabaseSink(self.recorder, source)

    def recipe(self, product: Product) -> ProductRecipe:
        """What the line inspects a board of `product` with: its recipe, the template read from the image store."""
        return ProductRecipe(
            template=self.images.load_template(product.template_path),
            px_per_mm=product.px_per_mm,
            rules=product.rules,
            capture=product.capture,
            trace=product.trace,
            product=ProductRef(product.id, product.name),
        )

    def sweep_orphans(self) -> OrphanSweep:
        """Remove image files no row refers to (left by a process killed mid-store); call at start."""
        return sweep_orphans(self.db, self.images, self.lock)

    def close(self) -> None:
        self.db.dispose()
        self.lock.release()


__all__ = [
    "Database",
    "DatabaseSink",
    "ImageStore",
    "InspectionRecorder",
    "OrphanSweep",
    "Storage",
    "resolve_database_url",
]
