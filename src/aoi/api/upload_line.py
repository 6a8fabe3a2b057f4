"""The uploads one service takes on at once: a bounded line with a stated policy when it is full.

`concurrency` uploads are decoded and inspected at once (one per core); up to `queue` more are
admitted and wait. An upload that finds the line full is refused at the door (503 + Retry-After,
before its body is read), and one that waits longer than `max_wait_s` for a slot is refused too,
so an accepted upload's latency stays bounded instead of growing with the offered load.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager

from aoi.api.errors import ApiError

# Until the first upload has been timed: a guess of one inspection's duration, for Retry-After only.
FIRST_SERVICE_TIME_GUESS_S = 1.0
SERVICE_TIME_SMOOTHING = 0.2  # weight of the newest sample in the moving average of slot hold times
LONGEST_RETRY_AFTER_S = 60.0


class UploadLineFull(ApiError):
    """503: the upload line is full, or no slot came free in time; retry after `retry_after_s`."""

    def __init__(self, detail: str, retry_after_s: float) -> None:
        super().__init__(503, "line_full", detail)
        self.retry_after_s = retry_after_s


class UploadLine:
    """Door count (uploads admitted and not yet answered) and run slots (uploads being inspected).

    `try_admit`/`leave` are called by the HTTP admission guard before a body is read; `slot()` by
    the service around the CPU-bound part. Thread-safe: the door runs on the event loop, slots in
    the threadpool.
    """

    def __init__(
        self, concurrency: int, queue: int, max_wait_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if concurrency < 1 or queue < 0 or not max_wait_s > 0:
            raise ValueError(f"bad upload line: concurrency={concurrency}, queue={queue}, max_wait_s={max_wait_s}")
        self.concurrency = concurrency
        self.queue = queue
        self.max_wait_s = max_wait_s
        self._clock = clock
        self._slots = threading.BoundedSemaphore(concurrency)
        self._lock = threading.Lock()
        self._admitted = 0
        self._waiting = 0
        self._busy = 0
        self._service_s = FIRST_SERVICE_TIME_GUESS_S

    @property
    def capacity(self) -> int:
        """Uploads admitted at most: those being inspected plus those waiting."""
        return self.concurrency + self.queue

    def try_admit(self) -> bool:
        """Count one more upload in the line, or False (refuse it) when the line is full."""
        with self._lock:
            if self._admitted >= self.capacity:
                return False
            self._admitted += 1
            return True

    def leave(self) -> None:
        """An admitted upload was answered (whatever the answer)."""
        with self._lock:
            self._admitted -= 1

    @contextmanager
    def slot(self) -> Iterator[None]:
        """Hold one of the `concurrency` run slots; UploadLineFull after waiting `max_wait_s` for one."""
        with self._lock:
            self._waiting += 1
        acquired = self._slots.acquire(timeout=self.max_wait_s)
        with self._lock:
            self._waiting -= 1
            if acquired:
                self._busy += 1
        if not acquired:
            raise UploadLineFull(
                f"no inspection slot came free within {self.max_wait_s:g} s (the line is saturated); retry later",
                self.retry_after_s(),
            )
        started = self._clock()
        try:
            yield
        finally:
            held_s = self._clock() - started
            with self._lock:
                self._busy -= 1
                self._service_s += SERVICE_TIME_SMOOTHING * (held_s - self._service_s)
            self._slots.release()

    def retry_after_s(self) -> float:
        """Seconds until the uploads waiting now, and one more, would have had a slot (1 to 60)."""
        with self._lock:
            ahead = self._waiting + 1
            service_s = self._service_s
        return min(LONGEST_RETRY_AFTER_S, max(1.0, math.ceil(service_s * ahead / self.concurrency)))

    def counts(self) -> Mapping[str, float]:
        """The `upload_slots` gauge: being inspected, waiting for a slot, admitted in all."""
        with self._lock:
            return {"busy": float(self._busy), "waiting": float(self._waiting), "admitted": float(self._admitted)}
