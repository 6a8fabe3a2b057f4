"""The uploads one service takes on at once: a bounded door in front of the inspection line.

Uploads are inspected by the line's inspect workers (`aoi.pipeline.LinePipeline`, `aoi serve --workers`),
the one CPU budget of the process, alongside the hot folder, camera and demo. This door only bounds how
many uploads are in the service at once: `concurrency + queue` uploads are admitted (their bodies read,
decoded, handed to the line and waited on); one more is refused at the door (503 + Retry-After, before
its body is read). An admitted upload that finds the line's inspect queue full for `max_wait_s` is
refused too (`PipelineBusy` -> UploadLineFull), so an accepted upload's latency stays bounded instead of
growing with the offered load. One the line takes but does not answer within `upload_result_timeout_s`
is answered 503 (InspectionPending) while the line still inspects and stores it.
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
SERVICE_TIME_SMOOTHING = 0.2  # weight of the newest sample in the moving average of times in the line
LONGEST_RETRY_AFTER_S = 60.0


class RetryLater(ApiError):
    """A 503 the client should retry after `retry_after_s` (answered with a Retry-After header)."""

    def __init__(self, error: str, detail: str, retry_after_s: float) -> None:
        super().__init__(503, error, detail)
        self.retry_after_s = retry_after_s


class UploadLineFull(RetryLater):
    """503: the upload line is full, or the line's inspect queue stayed full; retry after `retry_after_s`."""

    def __init__(self, detail: str, retry_after_s: float) -> None:
        super().__init__("line_full", detail, retry_after_s)


class InspectionPending(RetryLater):
    """503: the line took the upload but did not answer in time; it still inspects and stores it, so a retry
    with the same Idempotency-Key gets that result (one without a key is inspected again)."""

    def __init__(self, detail: str, retry_after_s: float) -> None:
        super().__init__("inspection_pending", detail, retry_after_s)


class LineNotRunning(RetryLater):
    """503: the inspection line is stopping (the service shuts down) or not running."""

    def __init__(self, detail: str, retry_after_s: float) -> None:
        super().__init__("line_stopped", detail, retry_after_s)


class UploadLine:
    """Door count (uploads admitted and not yet answered) and the uploads handed to the inspection line.

    `try_admit`/`leave` are called by the HTTP admission guard before a body is read; `waiting_for_room()`
    and `in_line()` by the service around `LinePipeline.submit` and the wait on its future. Thread-safe:
    the door runs on the event loop, the rest in the threadpool. `workers`: the line's inspect workers
    (set when the line is built), for Retry-After only.
    """

    def __init__(
        self,
        concurrency: int,
        queue: int,
        max_wait_s: float,
        clock: Callable[[], float] = time.monotonic,
        latency_budget_s: float = 0.0,
    ) -> None:
        if concurrency < 1 or queue < 0 or not max_wait_s > 0 or latency_budget_s < 0:
            raise ValueError(
                f"bad upload line: concurrency={concurrency}, queue={queue}, max_wait_s={max_wait_s}, "
                f"latency_budget_s={latency_budget_s}"
            )
        self.concurrency = concurrency
        self.queue = queue
        self.max_wait_s = max_wait_s
        self.latency_budget_s = latency_budget_s
        self._one_upload_s: float | None = None  # moving average of one upload's time in the line, once timed
        self.workers = concurrency
        self._clock = clock
        self._lock = threading.Lock()
        self._admitted = 0
        self._waiting = 0
        self._busy = 0
        self._service_s = FIRST_SERVICE_TIME_GUESS_S

    @property
    def capacity(self) -> int:
        """Uploads admitted at most."""
        return self.concurrency + self.queue

    def try_admit(self) -> bool:
        """Count one more upload in the line, or False (refuse it) when the line is full: `capacity` uploads
        admitted, or (with a latency budget) one more would wait so long that its answer came after it."""
        with self._lock:
            if self._admitted >= self.capacity or self._past_budget():
                return False
            self._admitted += 1
            return True

    def _past_budget(self) -> bool:
        """Every worker is taken and the uploads queued ahead, at the time one upload recently took in the line
        (inspected and stored), would keep one more from being answered within `latency_budget_s` (0: no
        budget). Called under the lock."""
        if self.latency_budget_s <= 0 or self._one_upload_s is None:
            return False
        ahead = self._queued_ahead(self._admitted)
        return ahead > 0 and self._one_upload_s * (1 + ahead / max(1, self.workers)) > self.latency_budget_s

    def why_full(self) -> str:
        """Why `try_admit` refused, for the 503's detail."""
        with self._lock:
            admitted = self._admitted
        if admitted >= self.capacity:
            return f"the upload line is full ({self.capacity} uploads admitted, the most it takes at once)"
        return (
            f"the upload line is busy: behind the {admitted} uploads admitted, one more would not be answered"
            f" within {self.latency_budget_s:g} s"
        )

    def leave(self) -> None:
        """An admitted upload was answered (whatever the answer)."""
        with self._lock:
            self._admitted -= 1

    @contextmanager
    def waiting_for_room(self) -> Iterator[None]:
        """Around `LinePipeline.submit`: counted as waiting for room in the line's inspect queue."""
        with self._lock:
            self._waiting += 1
        try:
            yield
        finally:
            with self._lock:
                self._waiting -= 1

    @contextmanager
    def in_line(self) -> Iterator[None]:
        """Around the wait on an accepted upload's future: counted as busy, and timed for Retry-After and
        for the latency budget (the time one upload takes in the line, from how long this one took behind
        the uploads queued ahead of it: `_queued_ahead`)."""
        with self._lock:
            self._busy += 1
            ahead = self._queued_ahead(self._admitted - 1)
        started = self._clock()
        try:
            yield
        finally:
            held_s = self._clock() - started
            with self._lock:
                self._busy -= 1
                self._service_s += SERVICE_TIME_SMOOTHING * (held_s - self._service_s)
                one_s = held_s / (1 + ahead / max(1, self.workers))
                self._one_upload_s = (
                    one_s
                    if self._one_upload_s is None
                    else self._one_upload_s + SERVICE_TIME_SMOOTHING * (one_s - self._one_upload_s)
                )

    def _queued_ahead(self, others: int) -> int:
        """Uploads waiting for a worker ahead of one more, with `others` admitted besides it."""
        return max(0, others + 1 - max(1, self.workers))

    def refused_after_wait(self) -> UploadLineFull:
        """The 503 of an upload whose wait for room in the line's inspect queue ran out."""
        return UploadLineFull(
            f"the inspection line stayed full for {self.max_wait_s:g} s (it is saturated); retry later",
            self.retry_after_s(),
        )

    def retry_after_s(self) -> float:
        """Seconds until the uploads in the line now, and one more, would have been inspected (1 to 60)."""
        with self._lock:
            ahead = self._busy + self._waiting + 1
            service_s = self._service_s
            workers = max(1, self.workers)
        return min(LONGEST_RETRY_AFTER_S, max(1.0, math.ceil(service_s * ahead / workers)))

    def counts(self) -> Mapping[str, float]:
        """The `upload_slots` gauge: uploads in the line (queued or being inspected and stored, their
        request waiting on the answer), waiting for room in its inspect queue, admitted in all."""
        with self._lock:
            return {"busy": float(self._busy), "waiting": float(self._waiting), "admitted": float(self._admitted)}
