"""A result sink that keeps everything in memory: for uploads without a database, scripts and tests.

The database sink lives in aoi.storage; both satisfy protocols.ResultSink.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass

import numpy as np

from aoi.pipeline.protocols import UploadExtras
from aoi.pipeline.template_origin import TemplateOrigin
from aoi.schema import InspectionFailure, InspectionResult


@dataclass(frozen=True)
class MemoryRecord:
    """One entry of a `MemorySink`: a stored result with its template's origin, or a recorded failure."""

    inspection_id: str
    source_key: str
    result: InspectionResult | None
    failure: InspectionFailure | None
    template: TemplateOrigin | None


class MemorySink:
    """Thread-safe; `source_key` is unique: storing a key again returns the first id.

    Results and failures are kept apart, like the database's tables: a key that failed may be stored
    later (its cause fixed), and only a stored result makes it `already_done`.
    `keep_images`: the tested image of each inspection is kept in `images`, by inspection id. Each record
    keeps its template's origin (`InlineTemplate`: the pixels the capture brought).
    """

    def __init__(self, keep_images: bool = False) -> None:
        self._lock = threading.Lock()
        self._by_key: dict[str, MemoryRecord] = {}
        self._failed: dict[str, MemoryRecord] = {}
        self.keep_images = keep_images
        self.images: dict[str, np.ndarray] = {}

    def store(
        self,
        result: InspectionResult,
        test_image: np.ndarray,
        template: TemplateOrigin,
        source_key: str,
        *,
        upload: UploadExtras | None = None,
    ) -> str:
        with self._lock:
            existing = self._by_key.get(source_key)
            if existing is not None:
                return existing.inspection_id
            record = MemoryRecord(uuid.uuid4().hex, source_key, result, None, template)
            self._by_key[source_key] = record
            if self.keep_images:
                self.images[record.inspection_id] = test_image
            return record.inspection_id

    def store_failure(self, failure: InspectionFailure, source_key: str) -> str:
        """One failure record per key; a key failing again keeps its id and the latest failure."""
        with self._lock:
            existing = self._failed.get(source_key)
            record = MemoryRecord(
                existing.inspection_id if existing else uuid.uuid4().hex, source_key, None, failure, None
            )
            self._failed[source_key] = record
            return record.inspection_id

    def already_done(self, source_key: str) -> bool:
        with self._lock:
            return source_key in self._by_key

    @property
    def records(self) -> list[MemoryRecord]:
        """Stored results, then recorded failures."""
        with self._lock:
            return [*self._by_key.values(), *self._failed.values()]

    @property
    def results(self) -> list[InspectionResult]:
        return [r.result for r in self.records if r.result is not None]

    @property
    def failures(self) -> list[InspectionFailure]:
        return [r.failure for r in self.records if r.failure is not None]
