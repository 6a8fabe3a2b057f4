"""The engine in worker processes: an `InspectorLike` whose inspections run outside the calling process.

Threads inspecting in one process share its GIL: the candidate stage's Python holds it, so two
threads scale about 1.4x on two cores, and the service's event loop (which answers, refuses and
accepts uploads) waits behind them. `ProcessInspector` keeps one `Inspector` per spawned worker
process (each with one onnxruntime and one OpenCV thread: workers x threads = cores) and sends each
call's images there; the caller's thread blocks on the answer without holding the GIL. The line's
inspect workers call it like any inspector, so the line and its one CPU budget stay as they are.

A worker that dies (killed, out of memory) fails only the images it held: the pool is started
again for the next call. An engine error (a board that does not register, a bad image) comes back
as the same exception type, with its message.
"""

from __future__ import annotations

import multiprocessing as mp
import pickle
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

import numpy as np

from aoi.detection.bundle import BundleMeta, ModelBundle
from aoi.schema import InspectionInputError, InspectionResult


class EngineWorkerLost(RuntimeError):
    """The worker process inspecting an image died before answering (the pool is restarted)."""


@dataclass(frozen=True)
class _Raised:
    """An exception of the worker, carried back as data (some exceptions do not survive pickling)."""

    exception: BaseException | None
    type_name: str
    message: str
    input_error: bool

    def rebuilt(self) -> BaseException:
        if self.exception is not None:
            return self.exception
        if self.input_error:
            return InspectionInputError(f"{self.type_name}: {self.message}")
        return RuntimeError(f"{self.type_name}: {self.message}")


_worker_engine: Any = None  # the worker process's Inspector, built once by `_start_worker`


def _start_worker(bundle: ModelBundle) -> None:
    global _worker_engine
    import cv2

    from aoi.detection.inspector import Inspector

    cv2.setNumThreads(1)
    _worker_engine = Inspector(bundle, threads=1)


def _inspect_in_worker(test: np.ndarray, template: np.ndarray, kwargs: dict[str, Any]) -> InspectionResult | _Raised:
    try:
        return _worker_engine.inspect(test, template, **kwargs)  # type: ignore[no-any-return]
    except Exception as exc:
        try:
            carried: BaseException | None = pickle.loads(pickle.dumps(exc))
        except Exception:
            carried = None
        return _Raised(carried, type(exc).__name__, str(exc), isinstance(exc, InspectionInputError))


def _ready() -> bool:
    return _worker_engine is not None


class ProcessInspector:
    """`InspectorLike` over `processes` worker processes, each holding the bundle's engine. Thread-safe:
    up to `processes` calls run at once; more wait for a free worker. `close()` ends the workers after
    the calls in hand."""

    def __init__(self, bundle: ModelBundle, processes: int = 2) -> None:
        if processes < 1:
            raise ValueError(f"processes must be at least 1, got {processes}")
        self.bundle = bundle
        self.processes = processes
        self._lock = threading.Lock()
        self._pool = self._start_pool()

    @classmethod
    def load(cls, bundle_path: Any = None, processes: int = 2) -> ProcessInspector:
        return cls(ModelBundle.load(bundle_path), processes)

    @property
    def meta(self) -> BundleMeta:
        return self.bundle.meta

    @property
    def model_version(self) -> str:
        return self.bundle.meta.version

    def _start_pool(self) -> ProcessPoolExecutor:
        pool = ProcessPoolExecutor(
            self.processes, mp_context=mp.get_context("spawn"), initializer=_start_worker, initargs=(self.bundle,)
        )
        # Start every worker now, so that the first images do not wait for a model to load.
        for ready in [pool.submit(_ready) for _ in range(self.processes)]:
            ready.result()
        return pool

    def inspect(self, test: np.ndarray, template: np.ndarray, **kwargs: Any) -> InspectionResult:
        with self._lock:
            pool = self._pool
        try:
            answer = pool.submit(_inspect_in_worker, test, template, kwargs).result()
        except BrokenProcessPool as exc:
            self._restart(pool)
            raise EngineWorkerLost(f"{kwargs.get('image_id', 'image')}: the engine worker died ({exc})") from None
        if isinstance(answer, _Raised):
            raise answer.rebuilt()
        return answer

    def _restart(self, broken: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._pool is broken:  # only the first caller to see it broken starts a new pool
                broken.shutdown(wait=False, cancel_futures=True)
                self._pool = self._start_pool()

    def close(self) -> None:
        with self._lock:
            pool = self._pool
        pool.shutdown(wait=True)

    def __enter__(self) -> ProcessInspector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
