"""The running line: capture -> inspect (N threads) -> store, joined by bounded queues.

Policy when the inspect queue is full: hot folder and upload BLOCK (back-pressure, a board is
never dropped); a live camera drops frames (its source's policy) and the drops are counted.
The store queue always blocks. `stop()` stops accepting, drains every accepted item through
inspect and store, then returns: nothing accepted is lost. A failing image becomes an
InspectionFailure for the sink; it never kills a worker.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from aoi.data.images import validate_image
from aoi.detection.protocol import InspectorLike
from aoi.pipeline.capture import CaptureResolver
from aoi.pipeline.protocols import (
    CapturedImage,
    FrameSource,
    Outcome,
    OutcomeStatus,
    ProductRecipe,
    QueuePolicy,
    ResultSink,
    SinkRecord,
    TemplateProvider,
    UnknownProductError,
    UploadExtras,
)
from aoi.pipeline.stages import BoundedQueue, LatencyRecorder, QueueClosed, QueueFull, Worker
from aoi.pipeline.template_origin import InlineTemplate, ProductTemplate, TemplateFile, TemplateOrigin
from aoi.pipeline.templates import CachingTemplateProvider
from aoi.pipeline.trace import resolve_trace
from aoi.schema import DEFAULT_PX_PER_MM, InspectionFailure, InspectionInputError, InspectionResult, Trace
from aoi.verdict import VerdictRules

log = logging.getLogger(__name__)


class PipelineBusy(Exception):
    """The inspect queue stayed full for the whole submit timeout (HTTP: 503, retry later)."""


class PipelineStopped(Exception):
    """The pipeline is stopping or stopped and accepts no new work."""


class StoreError(Exception):
    """The sink failed to store an inspected image; the source keeps the item for a retry."""


@dataclass(frozen=True)
class UploadReceipt:
    """What an accepted upload's future resolves to: the sink's id and the result, and the sink's own
    record of it when the sink returned one (`DatabaseSink`: the stored `StoredInspection`, as the API
    answers it)."""

    inspection_id: str
    result: InspectionResult
    record: SinkRecord | None = None


@dataclass(frozen=True)
class PipelineConfig:
    """Sizes and defaults of the line. Panels are tiled by the inspector the line is given
    (`aoi.detection.tiling.TiledInspector`), not here: the line inspects every image the same way.

    `recipe_cache_ttl_s`: product recipes (decoded templates) are cached this long, so an edited
    product takes effect within that time; 0 turns the cache off.
    `line_name`: recorded as every board's line (`aoi serve --line-name`); None: not recorded.
    """

    inspect_workers: int = 2
    inspect_queue: int = 16
    store_queue: int = 32
    px_per_mm: float = DEFAULT_PX_PER_MM
    rules: VerdictRules = field(default_factory=VerdictRules)
    recipe_cache_ttl_s: float = 5.0
    line_name: str | None = None


@dataclass
class _Job:
    captured: CapturedImage
    source: str
    droppable: bool
    accepted_at: float = field(default_factory=time.perf_counter)
    future: Future[UploadReceipt] | None = None


@dataclass
class _Inspected:
    job: _Job
    image_id: str
    result: InspectionResult | None = None
    failure: InspectionFailure | None = None
    error: BaseException | None = None
    test_image: np.ndarray | None = None
    template: TemplateOrigin | None = None


@dataclass
class _SourceStats:
    captured: int = 0
    accepted: int = 0
    dropped: int = 0
    skipped: int = 0


class LinePipeline:
    """Owns the queues and threads of one inspection line.

    Usage: `with LinePipeline(inspector, sink, templates) as line: line.add_source(src); ...` or
    `start()` / `stop()`. `submit()` is the entry point for HTTP upload. Give a `TiledInspector` for a
    line that sees panels; its owner closes it.
    """

    def __init__(
        self,
        inspector: InspectorLike,
        sink: ResultSink,
        templates: TemplateProvider | None = None,
        config: PipelineConfig | None = None,
    ) -> None:
        self.inspector = inspector
        self.capture = CaptureResolver(inspector)  # a product's capture setup -> engine configs, once per setup
        self.sink = sink
        self.config = config or PipelineConfig()
        if templates is not None and self.config.recipe_cache_ttl_s > 0:
            templates = CachingTemplateProvider(templates, ttl_s=self.config.recipe_cache_ttl_s)
        self.templates = templates
        if self.config.inspect_workers < 1:
            raise ValueError(f"inspect_workers must be >= 1, got {self.config.inspect_workers}")
        self._inspect_q: BoundedQueue[_Job] = BoundedQueue(
            "inspect", self.config.inspect_queue, droppable=lambda job: job.droppable
        )
        self._store_q: BoundedQueue[_Inspected] = BoundedQueue("store", self.config.store_queue)
        self._stop = threading.Event()
        self._started = False
        self._stopped = False
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._sources: dict[str, FrameSource] = {}
        self._source_stats: dict[str, _SourceStats] = {}
        self._capture_threads: list[Worker] = []
        self._capture_by_source: dict[str, Worker] = {}
        self._inspect_threads: list[Worker] = []
        self._store_thread: Worker | None = None
        self._latency = {name: LatencyRecorder() for name in ("queue_wait", "inspect", "store", "end_to_end")}
        self._last_store_error: str | None = None  # the kind of the sink's last refusal (traceback logged once)
        self._engine_latency: dict[str, LatencyRecorder] = {}  # the engine's own stages: register, classify...
        self._counts = {"accepted": 0, "stored": 0, "failed": 0, "dropped": 0, "skipped": 0, "store_errors": 0}
        self._in_flight = 0
        self._started_at = 0.0

    # ---- lifecycle -------------------------------------------------------------------------------

    def start(self) -> LinePipeline:
        if self._started:
            return self
        self._started = True
        self._started_at = time.time()
        for i in range(self.config.inspect_workers):
            worker = Worker(f"aoi-inspect-{i}", self._inspect_once)
            self._inspect_threads.append(worker)
            worker.start()
        self._store_thread = Worker("aoi-store", self._store_once)
        self._store_thread.start()
        for name in self._sources:
            self._start_capture(name)
        return self

    def add_source(self, source: FrameSource) -> None:
        """Attach a source; its capture thread starts now if the line runs, else at `start()`."""
        if self._stopped:
            raise PipelineStopped("cannot add a source to a stopped pipeline")
        if source.name in self._sources:
            raise ValueError(f"a source named {source.name!r} is already attached")
        self._sources[source.name] = source
        self._source_stats[source.name] = _SourceStats()
        if self._started:
            self._start_capture(source.name)

    def stop(self, timeout_s: float | None = None) -> None:
        """Stop accepting, finish every accepted item (inspect and store), then return."""
        if self._stopped:
            return
        self._stopped = True
        self._stop.set()
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        for thread in self._capture_threads:
            thread.join(_remaining(deadline))
        self._inspect_q.close()  # workers drain what was accepted, then exit
        for thread in self._inspect_threads:
            thread.join(_remaining(deadline))
        self._store_q.close()
        if self._store_thread is not None:
            self._store_thread.join(_remaining(deadline))
        threads = [*self._capture_threads, *self._inspect_threads, self._store_thread]
        alive = [t.name for t in threads if t is not None and t.is_alive()]
        if alive:
            log.warning("pipeline stop timed out; still running: %s", ", ".join(alive))

    def __enter__(self) -> LinePipeline:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._started and not self._stopped

    def wait_idle(self, timeout_s: float | None = None) -> bool:
        """Block until every accepted item is finished (stored, failed or dropped). For tests and scripts."""
        with self._idle:
            return self._idle.wait_for(lambda: self._in_flight == 0, timeout_s)

    # ---- entry points ----------------------------------------------------------------------------

    def submit(
        self,
        image: np.ndarray,
        *,
        template: np.ndarray | None = None,
        product: str | None = None,
        source_key: str | None = None,
        image_id: str | None = None,
        timeout_s: float = 10.0,
        upload: UploadExtras | None = None,
    ) -> Future[UploadReceipt]:
        """Queue one uploaded image; the future resolves to an `UploadReceipt` or raises the image's error
        (an `InspectionInputError` from the engine, or whatever the sink raised, as it was raised).

        `upload`: what an HTTP upload brings besides its pixels (`UploadExtras`: its product's recipe,
        so `product` is then only its name, the form's trace, the sink's extras).
        Blocks while the inspect queue is full (uploads are never dropped); raises PipelineBusy when it
        stays full for `timeout_s`, PipelineStopped once `stop()` has begun.
        """
        if not self._started or self._stopped:
            raise PipelineStopped("the pipeline is not running")
        if template is None and product is None and (upload is None or upload.recipe is None):
            raise InspectionInputError("an upload needs a product id or a template image")
        key = source_key or f"upload:{uuid.uuid4().hex}"
        captured = CapturedImage(
            source_key=key,
            image=image,
            product=product,
            template=template,
            image_id=image_id or key.removeprefix("upload:"),
            upload=upload,
        )
        future: Future[UploadReceipt] = Future()
        future.set_running_or_notify_cancel()
        job = _Job(captured, source="upload", droppable=False, future=future)
        self._begin()
        try:
            self._inspect_q.put(job, QueuePolicy.BLOCK, timeout=timeout_s)
        except QueueFull:
            self._end()
            raise PipelineBusy(f"inspection queue full for {timeout_s:.1f} s; retry later") from None
        except QueueClosed:
            self._end()
            raise PipelineStopped("the pipeline is stopping") from None
        with self._lock:
            self._counts["accepted"] += 1
        return future

    def metrics(self) -> dict[str, Any]:
        """A snapshot for /metrics and the dashboard: counts, drops, queue depths, per-stage p50/p99."""
        with self._lock:
            counts = dict(self._counts)
            in_flight = self._in_flight
            sources: dict[str, dict[str, Any]] = {
                name: vars(stats).copy() for name, stats in self._source_stats.items()
            }
        for name, stats in sources.items():  # a source that cannot run (camera unplugged) shows its error
            thread = self._capture_by_source.get(name)
            stats["capturing"] = bool(thread and thread.is_alive())
            stats["error"] = None if thread is None or thread.error is None else str(thread.error)
        return {
            "running": self.running,
            "uptime_s": round(time.time() - self._started_at, 3) if self._started else 0.0,
            "inspect_workers": self.config.inspect_workers,
            "in_flight": in_flight,
            "counts": counts,
            "queues": {"inspect": self._inspect_q.snapshot(), "store": self._store_q.snapshot()},
            "latency_ms": {name: rec.snapshot() for name, rec in self._latency.items()},
            "engine_latency_ms": {name: rec.snapshot() for name, rec in list(self._engine_latency.items())},
            "sources": sources,
        }

    # ---- stages ----------------------------------------------------------------------------------

    def _start_capture(self, name: str) -> None:
        source = self._sources[name]
        frames = iter(source.frames(self._stop))

        def capture_once() -> bool:
            if self._stop.is_set():
                return False
            try:
                captured = next(frames)
            except StopIteration:
                return False
            self._accept_from_source(source, captured)
            return not self._stop.is_set()

        thread = Worker(f"aoi-capture-{name}", capture_once)
        self._capture_threads.append(thread)
        self._capture_by_source[name] = thread
        thread.start()

    def _accept_from_source(self, source: FrameSource, captured: CapturedImage) -> None:
        stats = self._source_stats[source.name]
        with self._lock:
            stats.captured += 1
        if self._already_done(captured.source_key):  # resume after a crash: stored, not yet moved
            with self._lock:
                stats.skipped += 1
                self._counts["skipped"] += 1
            _safe_ack(captured, Outcome(OutcomeStatus.SKIPPED, captured.source_key))
            return
        droppable = source.policy is not QueuePolicy.BLOCK
        job = _Job(captured, source=source.name, droppable=droppable)
        self._begin()
        while True:
            try:
                dropped = self._inspect_q.put(job, source.policy, timeout=0.2)
            except QueueFull:
                if self._stop.is_set():  # not accepted: the source still holds it (file stays in the inbox)
                    self._end()
                    return
                continue
            except QueueClosed:
                self._end()
                return
            break
        with self._lock:
            if dropped is not job:
                stats.accepted += 1
                self._counts["accepted"] += 1
            if dropped is not None:
                self._counts["dropped"] += 1
                self._source_stats[dropped.source].dropped += 1
        if dropped is not None:
            _safe_ack(dropped.captured, Outcome(OutcomeStatus.DROPPED, dropped.captured.source_key))
            self._end()

    def _already_done(self, source_key: str) -> bool:
        """Ask the sink; if it cannot answer, inspect anyway: its UNIQUE source_key still stores once."""
        try:
            return self.sink.already_done(source_key)
        except Exception:
            log.exception("sink could not say whether %s is done; inspecting it", source_key)
            return False

    def _inspect_once(self) -> bool:
        try:
            job = self._inspect_q.get()
        except QueueClosed:
            return False
        started = time.perf_counter()
        self._latency["queue_wait"].record((started - job.accepted_at) * 1000.0)
        captured = job.captured
        image_id = captured.image_id or captured.source_key
        done = _Inspected(job, image_id)
        upload = captured.upload
        try:
            image, template = captured.pixels()
            image = validate_image(image, image_id)
            if upload is not None and upload.recipe is not None:  # resolved by the request: not looked up again
                recipe: ProductRecipe | None = upload.recipe
            else:
                recipe = self._recipe(captured.product, needed=template is None)
            if template is None:
                if recipe is None:
                    raise InspectionInputError(f"{image_id}: no template and no product to take one from")
                template = recipe.template
                done.template = ProductTemplate(recipe.product) if recipe.product else InlineTemplate(template)
            else:
                template = validate_image(template, f"{image_id} template")
                label = recipe.product if recipe is not None else None
                if captured.template_file is not None:
                    done.template = TemplateFile(captured.template_file, label)
                else:  # demo, camera, upload: the sink keeps the pixels themselves
                    done.template = InlineTemplate(template, label)
            done.test_image = image
            px_per_mm = upload.px_per_mm if upload is not None else None
            result = self._inspect(image, template, image_id, captured.product, recipe, px_per_mm)
            given, name = (upload.trace, upload.filename or image_id) if upload is not None else (Trace(), image_id)
            trace = resolve_trace(given, recipe.trace if recipe else None, name, image, self.config.line_name)
            done.result = replace(result, trace=trace)
        except Exception as exc:  # one bad image never stops the line
            if not isinstance(exc, InspectionInputError):
                log.exception("inspection of %s failed unexpectedly", image_id)
            done.error = exc
            done.failure = InspectionFailure(image_id=image_id, error=type(exc).__name__, message=str(exc))
        self._latency["inspect"].record((time.perf_counter() - started) * 1000.0)
        if done.result is not None:
            self._record_engine_timings(done.result)
        self._store_q.put(done, QueuePolicy.BLOCK)
        return True

    def _record_engine_timings(self, result: InspectionResult) -> None:
        for stage, ms in result.timings_ms.items():
            recorder = self._engine_latency.get(stage)
            if recorder is None:
                with self._lock:
                    recorder = self._engine_latency.setdefault(stage, LatencyRecorder())
            recorder.record(float(ms))

    def _recipe(self, product: str | None, needed: bool) -> ProductRecipe | None:
        if product is None or self.templates is None:
            if needed and product is not None:
                raise UnknownProductError(f"unknown product {product!r}: no product table is configured")
            return None
        try:
            return self.templates.recipe(product)
        except UnknownProductError:
            if needed:
                raise
            return None  # an explicit template came with the image; the product is only a label

    def _inspect(
        self,
        image: np.ndarray,
        template: np.ndarray,
        image_id: str,
        product: str | None,
        recipe: ProductRecipe | None,
        px_per_mm: float | None = None,
    ) -> InspectionResult:
        """`px_per_mm`: an upload's own calibration, over the recipe's and the line's default."""
        px_per_mm = px_per_mm or (recipe.px_per_mm if recipe else self.config.px_per_mm)
        rules = recipe.rules if recipe else self.config.rules
        capture = self.capture.resolve(recipe.capture if recipe else None)
        return self.inspector.inspect(
            image,
            template,
            image_id=image_id,
            px_per_mm=px_per_mm,
            rules=rules,
            product=product,
            candidates=capture.candidates,
            registration=capture.registration,
        )

    def _log_store_error(self, key: str, exc: Exception) -> None:
        """The traceback of a sink refusal once; the same kind of refusal again (a full disk, retried
        every few seconds) is one line, until a store succeeds."""
        kind = type(exc).__name__
        if kind == self._last_store_error:
            log.warning("sink still cannot store %s (%s: %s)", key, kind, exc)
            return
        self._last_store_error = kind
        log.exception("sink failed to store %s", key)

    def _store_once(self) -> bool:
        try:
            done = self._store_q.get()
        except QueueClosed:
            return False
        started = time.perf_counter()
        job, captured = done.job, done.job.captured
        key = captured.source_key
        if done.result is not None and done.test_image is not None and done.template is not None:
            try:
                stored = self.sink.store(done.result, done.test_image, done.template, key, upload=captured.upload)
            except Exception as exc:
                if job.future is None:
                    self._log_store_error(key, exc)
                    error: BaseException = StoreError(str(exc))
                else:  # an upload: its request answers the sink's own error (503, 507, a replay), and logs it
                    log.debug("sink did not store upload %s: %r", key, exc)
                    error = exc
                self._finish(job, "store_errors", Outcome(OutcomeStatus.NOT_STORED, key), error=error)
            else:
                self._last_store_error = None
                record = None if isinstance(stored, str) else stored
                inspection_id = stored if isinstance(stored, str) else stored.id
                outcome = Outcome(OutcomeStatus.STORED, key, inspection_id, result=done.result)
                self._finish(job, "stored", outcome, value=UploadReceipt(inspection_id, done.result, record))
        else:
            failure = done.failure or InspectionFailure(done.image_id, "InternalError", "no result")
            store_failure = getattr(self.sink, "store_failure", None)
            failure_id: str | None = None
            if store_failure is not None and captured.upload is None:  # an HTTP upload's request answers it
                try:
                    failure_id = store_failure(failure, key)
                except Exception:
                    log.exception("sink failed to record the failure of %s", key)
            outcome = Outcome(OutcomeStatus.FAILED, key, failure_id, failure=failure)
            self._finish(job, "failed", outcome, error=done.error or InspectionInputError(failure.message))
        now = time.perf_counter()
        self._latency["store"].record((now - started) * 1000.0)
        self._latency["end_to_end"].record((now - job.accepted_at) * 1000.0)
        return True

    def _finish(
        self,
        job: _Job,
        counter: str,
        outcome: Outcome,
        value: UploadReceipt | None = None,
        error: BaseException | None = None,
    ) -> None:
        with self._lock:
            self._counts[counter] += 1
        _safe_ack(job.captured, outcome)
        if job.future is not None:
            try:
                if error is not None:
                    job.future.set_exception(error)
                else:
                    job.future.set_result(value)  # type: ignore[arg-type]
            except InvalidStateError:
                pass
        self._end()

    def _begin(self) -> None:
        with self._lock:
            self._in_flight += 1

    def _end(self) -> None:
        with self._idle:
            self._in_flight -= 1
            if self._in_flight == 0:
                self._idle.notify_all()


def _safe_ack(captured: CapturedImage, outcome: Outcome) -> None:
    """A source's bookkeeping (moving a file) failing must not take a stage thread down."""
    try:
        captured.ack(outcome)
    except Exception:
        log.exception("source callback failed for %s (%s)", captured.source_key, outcome.status.value)


def _remaining(deadline: float | None) -> float | None:
    return None if deadline is None else max(0.0, deadline - time.monotonic())
