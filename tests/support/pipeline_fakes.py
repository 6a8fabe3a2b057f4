"""Test doubles for the pipeline and the service: a difference-based fake inspector, board painters, a SQLite sink.

The fake inspector has the engine's surface (`inspect`, `model_version`) and finds exactly the
rectangles where test and template differ, so tests can predict its defects to the pixel. The
API and storage tests (tests/support/service.py) use the same fake, under their own model version.
"""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from pathlib import Path

import cv2
import numpy as np

from aoi.data.images import validate_image
from aoi.detection.candidates import CandidateConfig
from aoi.pipeline.protocols import UploadExtras
from aoi.pipeline.template_origin import TemplateOrigin
from aoi.registration import RegistrationConfig, RegistrationError
from aoi.schema import Defect, DefectType, InspectionFailure, InspectionResult
from aoi.verdict import VerdictRules


class FakeInspector:
    """Reports every 4-connected region where |test - template| > 64 as a defect.

    Brighter in the test -> SHORT, darker -> OPEN. `delay_s` simulates model time (sleep releases
    the GIL like onnxruntime does); `gate` (an Event) makes inspect wait until it is set;
    `model_version` is what results (and a service's /health) report; `stage_ms` the engine stages
    (and times) each result's `timings_ms` names besides "total". `capture_calls` records the capture
    setup (`candidates`, `registration`) of every call, in call order.
    """

    model_version = "fake-diff-1"

    def __init__(
        self,
        delay_s: float = 0.0,
        gate: threading.Event | None = None,
        model_version: str | None = None,
        stage_ms: dict[str, float] | None = None,
    ) -> None:
        if model_version is not None:
            self.model_version = model_version
        self.stage_ms = dict(stage_ms) if stage_ms is not None else {"register": 0.1, "classify": 0.2}
        self.delay_s = delay_s
        self.gate = gate
        self.calls = 0
        self.capture_calls: list[tuple[CandidateConfig | None, RegistrationConfig | None]] = []
        self._lock = threading.Lock()

    def inspect(
        self,
        test: np.ndarray,
        template: np.ndarray,
        *,
        image_id: str,
        px_per_mm: float = 48.0,
        rules: VerdictRules | None = None,
        product: str | None = None,
        origin_px: tuple[float, float] = (0.0, 0.0),
        candidates: CandidateConfig | None = None,
        registration: RegistrationConfig | None = None,
    ) -> InspectionResult:
        started = time.perf_counter()
        with self._lock:
            self.calls += 1
            self.capture_calls.append((candidates, registration))
        if self.gate is not None:
            self.gate.wait()
        test = validate_image(test, image_id)
        template = validate_image(template, f"{image_id} template")
        if test.shape != template.shape:
            raise RegistrationError(f"{image_id}: template {template.shape} differs from image {test.shape}")
        if self.delay_s:
            time.sleep(self.delay_s)
        diff = test.astype(np.int16) - template.astype(np.int16)
        mask = (np.abs(diff) > 64).astype(np.uint8)
        n, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=4)
        defects = []
        for i in range(1, n):
            x, y, w, h, _area = stats[i]
            region = diff[y : y + h, x : x + w]
            kind = DefectType.SHORT if region.sum() > 0 else DefectType.OPEN
            box = (float(x), float(y), float(x + w), float(y + h))
            defects.append(Defect(kind, 0.9, box).with_mm(px_per_mm, origin_px))
        rules = rules or VerdictRules()
        h_px, w_px = test.shape
        return InspectionResult(
            image_id=image_id,
            image_size_wh=(w_px, h_px),
            defects=tuple(defects),
            verdict=rules.verdict(defects, px_per_mm),
            px_per_mm=px_per_mm,
            model_version=self.model_version,
            timings_ms={**self.stage_ms, "total": (time.perf_counter() - started) * 1000.0},
            registration={"dx": 0.0, "dy": 0.0},
            product=product,
        )


def paint_board(rng: np.random.Generator, size_px: int = 128) -> np.ndarray:
    """A black board with a few grey copper rectangles (the fallback for synthetic boards)."""
    board = np.zeros((size_px, size_px), np.uint8)
    for _ in range(6):
        x, y = (int(v) for v in rng.integers(0, size_px - 16, 2))
        w, h = (int(v) for v in rng.integers(4, 16, 2))
        board[y : y + h, x : x + w] = 160
    return board


def paint_traces(size_px: int = 640, seed: int = 0) -> np.ndarray:
    """A template of copper traces (white 8 x 100 px bars, either way) on a black substrate."""
    rng = np.random.default_rng(seed)
    board = np.zeros((size_px, size_px), np.uint8)
    for _ in range(12):
        x, y = (int(v) for v in rng.integers(10, size_px - 120, 2))
        if rng.random() < 0.5:
            board[y : y + 8, x : x + 100] = 255
        else:
            board[y : y + 100, x : x + 8] = 255
    return board


def with_defect(template: np.ndarray, box_px: tuple[int, int, int, int], value: int = 255) -> np.ndarray:
    """The template with a rectangle [x1, y1, x2, y2) painted in: a defect at a known place."""
    test = template.copy()
    x1, y1, x2, y2 = box_px
    test[y1:y2, x1:x2] = value
    return test


class SqliteSink:
    """A ResultSink over one SQLite table with UNIQUE source_key; counts duplicate store attempts.

    Used by the crash-and-resume test, whose worker process is SIGKILLed: each store commits
    before the pipeline moves the file, exactly like the real database sink.
    """

    def __init__(self, path: Path | str) -> None:
        self._conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS results (id TEXT PRIMARY KEY, source_key TEXT UNIQUE NOT NULL,"
            " status TEXT NOT NULL, n_defects INTEGER NOT NULL)"
        )
        self._conn.execute("CREATE TABLE IF NOT EXISTS duplicate_attempts (source_key TEXT NOT NULL)")
        self._lock = threading.Lock()

    def _insert(self, source_key: str, status: str, n_defects: int) -> str:
        """One row per key. A result replaces a failure (the file came back with its cause fixed);
        storing a result for a key that has one is a duplicate attempt, counted."""
        with self._lock:
            row = self._conn.execute("SELECT id, status FROM results WHERE source_key = ?", (source_key,)).fetchone()
            if row is not None:
                if row[1] == "ok":
                    self._conn.execute("INSERT INTO duplicate_attempts VALUES (?)", (source_key,))
                elif status == "ok":
                    self._conn.execute(
                        "UPDATE results SET status = 'ok', n_defects = ? WHERE id = ?", (n_defects, row[0])
                    )
                return str(row[0])
            new_id = uuid.uuid4().hex
            self._conn.execute("INSERT INTO results VALUES (?, ?, ?, ?)", (new_id, source_key, status, n_defects))
            return new_id

    def store(
        self,
        result: InspectionResult,
        test_image: np.ndarray,
        template: TemplateOrigin,
        source_key: str,
        *,
        upload: UploadExtras | None = None,
    ) -> str:
        return self._insert(source_key, "ok", len(result.defects))

    def store_failure(self, failure: InspectionFailure, source_key: str) -> str:
        return self._insert(source_key, "failed", 0)

    def already_done(self, source_key: str) -> bool:
        """Only a stored result counts; a failure is inspected again when its file comes back."""
        with self._lock:
            query = "SELECT 1 FROM results WHERE source_key = ? AND status = 'ok'"
            return self._conn.execute(query, (source_key,)).fetchone() is not None

    def count(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM results").fetchone()[0])

    def close(self) -> None:
        self._conn.close()
