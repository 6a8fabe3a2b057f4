"""Building blocks of the line: a bounded queue with a stated full-queue policy, latency records,
and a worker thread that runs one stage until it stops (or records why it died).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

import numpy as np

from aoi.pipeline.protocols import QueuePolicy

T = TypeVar("T")
log = logging.getLogger(__name__)


class QueueClosed(Exception):
    """The queue was closed: no more puts; `get` raises this once the queue is drained."""


class QueueFull(Exception):
    """A blocking put timed out."""


class BoundedQueue(Generic[T]):
    """A FIFO of at most `capacity` items whose producers choose a policy per put.

    Unlike queue.Queue it can evict the oldest item (live frames), counts drops, and is closed
    instead of fed sentinels: consumers drain what is left and then see QueueClosed.
    `droppable(item)` says which queued items DROP_OLDEST may evict, so that a camera sharing the
    queue with uploads never evicts an upload.
    """

    def __init__(self, name: str, capacity: int, droppable: Callable[[T], bool] | None = None) -> None:
        if capacity < 1:
            raise ValueError(f"queue {name!r}: capacity must be >= 1, got {capacity}")
        self.name = name
        self.capacity = capacity
        self._items: deque[T] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self._droppable = droppable
        self.drops = 0
        self.puts = 0

    def put(self, item: T, policy: QueuePolicy = QueuePolicy.BLOCK, timeout: float | None = None) -> T | None:
        """Enqueue `item`; return the item that was dropped to make room (or `item` itself), else None.

        BLOCK waits up to `timeout` seconds (None: forever) and raises QueueFull after it.
        """
        with self._cond:
            if self._closed:
                raise QueueClosed(f"queue {self.name!r} is closed")
            dropped: T | None = None
            if len(self._items) >= self.capacity:
                if policy is QueuePolicy.DROP_NEWEST:
                    self.drops += 1
                    return item
                if policy is QueuePolicy.DROP_OLDEST:
                    index = self._oldest_droppable()
                    if index is None:  # only never-drop items (uploads, hot folder) wait: drop the new frame
                        self.drops += 1
                        return item
                    dropped = self._items[index]
                    del self._items[index]
                    self.drops += 1
                else:
                    deadline = None if timeout is None else time.monotonic() + timeout
                    while len(self._items) >= self.capacity and not self._closed:
                        remaining = None if deadline is None else deadline - time.monotonic()
                        if remaining is not None and remaining <= 0:
                            raise QueueFull(f"queue {self.name!r} stayed full for {timeout:.1f} s")
                        self._cond.wait(remaining)
                    if self._closed:
                        raise QueueClosed(f"queue {self.name!r} is closed")
            self._items.append(item)
            self.puts += 1
            self._cond.notify_all()
            return dropped

    def _oldest_droppable(self) -> int | None:
        for i, queued in enumerate(self._items):
            if self._droppable is None or self._droppable(queued):
                return i
        return None

    def get(self, timeout: float | None = None) -> T:
        """Take the oldest item; raise QueueClosed when closed and empty, TimeoutError on timeout."""
        with self._cond:
            deadline = None if timeout is None else time.monotonic() + timeout
            while not self._items:
                if self._closed:
                    raise QueueClosed(f"queue {self.name!r} is closed and drained")
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise TimeoutError(f"queue {self.name!r}: nothing to get")
                self._cond.wait(remaining)
            item = self._items.popleft()
            self._cond.notify_all()
            return item

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def depth(self) -> int:
        with self._cond:
            return len(self._items)

    def snapshot(self) -> dict[str, int]:
        with self._cond:
            return {"depth": len(self._items), "capacity": self.capacity, "drops": self.drops, "puts": self.puts}


class LatencyRecorder:
    """Keeps the last `window` durations of one stage (ms) for p50/p99, plus a running count."""

    def __init__(self, window: int = 4096) -> None:
        self._samples_ms: deque[float] = deque(maxlen=window)
        self._lock = threading.Lock()
        self.count = 0
        self.total_ms = 0.0

    def record(self, ms: float) -> None:
        with self._lock:
            self._samples_ms.append(ms)
            self.count += 1
            self.total_ms += ms

    def snapshot(self) -> dict[str, float]:
        with self._lock:
            samples = np.fromiter(self._samples_ms, dtype=np.float64, count=len(self._samples_ms))
            count, total = self.count, self.total_ms
        if samples.size == 0:
            return {"count": count, "p50_ms": 0.0, "p99_ms": 0.0, "mean_ms": 0.0}
        p50, p99 = np.percentile(samples, [50, 99])
        return {
            "count": count,
            "p50_ms": round(float(p50), 3),
            "p99_ms": round(float(p99), 3),
            "mean_ms": round(total / count, 3),
        }


class Worker(threading.Thread):
    """A stage thread: `run_once()` until it returns False; an exception it raises is kept in `error`."""

    def __init__(self, name: str, run_once: Callable[[], bool]) -> None:
        super().__init__(name=name, daemon=True)
        self._run_once = run_once
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while self._run_once():
                pass
        except BaseException as exc:  # a bug in a stage: record it so stop() can report it
            self.error = exc
            log.exception("pipeline worker %s died", self.name)
