"""Capture sources: a scanner's hot folder, an OpenCV camera or video stream, a synthetic demo line."""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import cv2
import numpy as np

from aoi.data.images import MAX_PIXELS, read_image
from aoi.pipeline.protocols import CapturedImage, Outcome, OutcomeStatus, QueuePolicy, StopFlag

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"})
PARTIAL_SUFFIXES = frozenset({".part", ".tmp", ".partial", ".crdownload"})
TEMPLATE_MARK = "_temp"  # `<name>_temp.<ext>` beside `<name>.<ext>` is that image's golden template


class SourceError(Exception):
    """A source cannot run (folder not creatable, camera or stream cannot be opened)."""


@dataclass(frozen=True)
class _Signature:
    size: int
    mtime_ns: int


@dataclass
class _Seen:
    signature: _Signature
    first_seen: float
    stable_polls: int = 1


class HotFolderSource:
    """Images a scanner writes into `folder` (or `folder/<product>/`), each inspected exactly once.

    A file is read only once it is complete: its size and mtime must be unchanged across
    `stable_polls` consecutive polls, and names ending in .part/.tmp (a writer's temp name before
    its final rename) are ignored. The source key is (relative path, size, mtime_ns), so a restart
    finds the same keys: the pipeline asks the sink `already_done(key)` first, and files the sink
    already holds are only moved. After the sink stored a result the file moves to `done/`; a
    failed image moves to `failed/` with `<name>.error.txt` beside it. If the sink cannot store,
    the file stays in the inbox and is retried after `retry_after_s`.

    Template per file: a sibling `<name>_temp.<ext>` (moved along with it), else the product of
    its subfolder, else the source's `product`. A root file with neither waits `template_wait_s`
    for its sibling template to appear before it goes (and fails) without one.
    """

    policy = QueuePolicy.BLOCK

    def __init__(
        self,
        folder: Path | str,
        product: str | None = None,
        *,
        name: str = "hotfolder",
        poll_interval_s: float = 0.25,
        stable_polls: int = 2,
        template_wait_s: float = 2.0,
        retry_after_s: float = 5.0,
        max_pixels: int = MAX_PIXELS,
    ) -> None:
        self.folder = Path(folder)
        self.product = product
        self.name = name
        self.poll_interval_s = poll_interval_s
        self.stable_polls = max(1, stable_polls)
        self.template_wait_s = template_wait_s
        self.retry_after_s = retry_after_s
        self.max_pixels = max_pixels
        self.done_dir = self.folder / "done"
        self.failed_dir = self.folder / "failed"
        self._seen: dict[Path, _Seen] = {}
        self._in_flight: set[Path] = set()
        self._retry_at: dict[Path, float] = {}
        self._lock = threading.Lock()
        self.moved_done = 0
        self.moved_failed = 0

    def frames(self, stop: StopFlag) -> Iterator[CapturedImage]:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SourceError(f"hot folder {self.folder} cannot be created: {exc}") from exc
        with _InboxLock(self.folder):
            while not stop.is_set():
                for captured in self.poll():
                    if stop.is_set():
                        return
                    yield captured
                stop.wait(self.poll_interval_s)

    def poll(self) -> list[CapturedImage]:
        """One scan of the inbox: the files that became ready since the last scan, oldest first."""
        now = time.monotonic()
        present: dict[Path, _Signature] = {}
        for path, _product in self._candidates():
            try:
                st = path.stat()
            except FileNotFoundError:
                continue
            present[path] = _Signature(st.st_size, st.st_mtime_ns)
        for path in list(self._seen):
            if path not in present:
                del self._seen[path]
        for path, sig in present.items():
            seen = self._seen.get(path)
            if seen is None or seen.signature != sig:
                self._seen[path] = _Seen(sig, now)
            else:
                seen.stable_polls += 1

        ready: list[tuple[int, str, CapturedImage]] = []
        for path, product in self._candidates(images_only=True):
            seen = self._seen.get(path)
            with self._lock:
                busy = path in self._in_flight or self._retry_at.get(path, 0.0) > now
            if seen is None or busy or not self._is_stable(path):
                continue
            template_path = self._sibling_template(path)
            if template_path is not None and not self._is_stable(template_path):
                continue
            if template_path is None and product is None and now - seen.first_seen < self.template_wait_s:
                continue
            with self._lock:
                self._in_flight.add(path)
            ready.append((seen.signature.mtime_ns, str(path), self._captured(path, product, template_path, seen)))
        ready.sort(key=lambda r: (r[0], r[1]))
        return [c for _, _, c in ready]

    def _is_stable(self, path: Path) -> bool:
        seen = self._seen.get(path)
        return seen is not None and seen.signature.size > 0 and seen.stable_polls >= self.stable_polls

    def _candidates(self, images_only: bool = False) -> Iterator[tuple[Path, str | None]]:
        """Image files in the inbox root (source product) and one level of product subfolders."""
        for entry in _scandir(self.folder):
            if entry.name.startswith("."):
                continue
            if entry.is_dir(follow_symlinks=False):
                if entry.name in ("done", "failed"):
                    continue
                for sub in _scandir(Path(entry.path)):
                    if sub.is_file(follow_symlinks=False) and _wanted(sub.name, images_only):
                        yield Path(sub.path), entry.name
            elif entry.is_file(follow_symlinks=False) and _wanted(entry.name, images_only):
                yield Path(entry.path), self.product

    def _sibling_template(self, path: Path) -> Path | None:
        for suffix in (path.suffix, *sorted(IMAGE_SUFFIXES)):
            candidate = path.with_name(f"{path.stem}{TEMPLATE_MARK}{suffix}")
            if candidate in self._seen:
                return candidate
        return None

    def _captured(self, path: Path, product: str | None, template_path: Path | None, seen: _Seen) -> CapturedImage:
        rel = path.relative_to(self.folder).as_posix()
        key = f"hotfolder:{rel}:{seen.signature.size}:{seen.signature.mtime_ns}"
        max_pixels = self.max_pixels

        def load() -> tuple[np.ndarray, np.ndarray | None]:
            image = read_image(path, max_pixels)
            template = read_image(template_path, max_pixels) if template_path is not None else None
            return image, template

        template_ref = str(template_path.resolve()) if template_path is not None else None
        return CapturedImage(
            source_key=key,
            product=product,
            image_id=rel,
            template_ref=template_ref,
            load=load,
            on_done=lambda outcome: self._finish(path, template_path, outcome),
        )

    def _finish(self, path: Path, template_path: Path | None, outcome: Outcome) -> None:
        """Move the file out of the inbox once the sink holds its result (or its failure)."""
        try:
            if outcome.status in (OutcomeStatus.STORED, OutcomeStatus.SKIPPED):
                self._move(path, self.done_dir)
                if template_path is not None:
                    self._move(template_path, self.done_dir)
                self.moved_done += 1
            elif outcome.status is OutcomeStatus.FAILED:
                target = self._move(path, self.failed_dir)
                if template_path is not None:
                    self._move(template_path, self.failed_dir)
                failure = outcome.failure
                text = f"{failure.error}: {failure.message}\n" if failure else "failed\n"
                if target is not None:
                    target.with_name(target.name + ".error.txt").write_text(text, encoding="utf-8")
                self.moved_failed += 1
            else:  # NOT_STORED: keep the file for a later retry
                with self._lock:
                    self._retry_at[path] = time.monotonic() + self.retry_after_s
        finally:
            with self._lock:
                self._in_flight.discard(path)

    def _move(self, path: Path, to_dir: Path) -> Path | None:
        rel = path.relative_to(self.folder)
        target = to_dir / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():  # the same name was dropped again later: keep both
            target = target.with_name(f"{target.stem}.{time.time_ns()}{target.suffix}")
        try:
            os.replace(path, target)
        except FileNotFoundError:
            log.warning("hot folder file %s vanished before it could be moved", path)
            return None
        return target


class _InboxLock:
    """An exclusive lock on `<inbox>/.aoi-hotfolder.lock`: two processes watching one inbox would
    inspect the same files twice. The OS drops the lock when the process dies (SIGKILL included),
    so a restart is never blocked by a stale lock."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / ".aoi-hotfolder.lock"
        self._file: IO[str] | None = None

    def __enter__(self) -> _InboxLock:
        try:
            import fcntl
        except ImportError:  # not POSIX: no cross-process guard
            return self
        handle = self.path.open("a+", encoding="utf-8")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            raise SourceError(f"hot folder {self.path.parent} is already watched by another process") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._file = handle
        return self

    def __exit__(self, *exc: object) -> None:
        if self._file is not None:
            self._file.close()  # closing releases the flock
            self._file = None


def _scandir(folder: Path) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(folder) as it:
            return list(it)
    except (FileNotFoundError, NotADirectoryError):
        return []


def _wanted(filename: str, images_only: bool) -> bool:
    lower = filename.lower()
    suffix = os.path.splitext(lower)[1]
    if suffix in PARTIAL_SUFFIXES or suffix not in IMAGE_SUFFIXES:
        return False
    return not (images_only and os.path.splitext(lower)[0].endswith(TEMPLATE_MARK))


class VideoSource:
    """Frames from OpenCV: a device index, a video file or a stream URL (RTSP, HTTP).

    A live camera cannot wait for the inspector, so the default policy drops the oldest queued
    frame when the line is behind (drops are counted). A video file plays once and ends; a live
    stream that stops delivering is reopened up to `reconnects` times.
    """

    def __init__(
        self,
        target: int | str,
        product: str | None = None,
        *,
        template: np.ndarray | None = None,
        name: str = "video",
        policy: QueuePolicy = QueuePolicy.DROP_OLDEST,
        max_fps: float | None = None,
        reconnects: int = 3,
    ) -> None:
        if isinstance(target, str) and target.isdigit():
            target = int(target)
        self.target = target
        self.product = product
        self.template = template
        self.name = name
        self.policy = policy
        self.max_fps = max_fps
        self.reconnects = reconnects
        self.frames_read = 0

    @property
    def is_file(self) -> bool:
        return isinstance(self.target, str) and Path(self.target).is_file()

    def _open(self) -> cv2.VideoCapture:
        capture = cv2.VideoCapture(self.target)
        if not capture.isOpened():
            capture.release()
            raise SourceError(f"video source {self.target!r} cannot be opened")
        return capture

    def frames(self, stop: StopFlag) -> Iterator[CapturedImage]:
        capture = self._open()
        session = uuid.uuid4().hex[:8]
        reconnects_left = self.reconnects
        index = 0
        min_period_s = 1.0 / self.max_fps if self.max_fps else 0.0
        try:
            while not stop.is_set():
                started = time.monotonic()
                ok, frame = capture.read()
                if not ok or frame is None:
                    if self.is_file or reconnects_left <= 0:
                        return
                    reconnects_left -= 1
                    capture.release()
                    stop.wait(0.5)
                    capture = self._open()
                    continue
                gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) if frame.ndim == 3 else frame
                self.frames_read += 1
                yield CapturedImage(
                    source_key=f"video:{self.name}:{session}:{index}",
                    image=gray,
                    product=self.product,
                    template=self.template,
                    image_id=f"{self.name}-{session}-{index:06d}",
                )
                index += 1
                if min_period_s:
                    stop.wait(max(0.0, min_period_s - (time.monotonic() - started)))
        finally:
            capture.release()


PairFactory = Callable[[np.random.Generator], tuple[np.ndarray, np.ndarray]]


def synthetic_pair(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(template, test) from the synthetic board generator: about half the boards are good, the rest
    carry 1-4 defects, some slightly misaligned, so the demo line shows a realistic yield."""
    from aoi.data.synthetic import make_pair  # imported on use: the demo is optional

    n_defects = (0, 0) if rng.random() < 0.5 else (1, 4)
    pair = make_pair(rng, n_defects=n_defects, misalign=bool(rng.random() < 0.3))
    return pair.template, pair.test


class DemoSource:
    """A synthetic line: boards with painted defects at `rate_hz`, so a newcomer sees a running line.

    Each board comes with its own golden template; `product` only labels the inspections.
    """

    def __init__(
        self,
        product: str | None = "demo",
        *,
        rate_hz: float = 2.0,
        seed: int | None = None,
        name: str = "demo",
        limit: int | None = None,
        pair_factory: PairFactory | None = None,
        policy: QueuePolicy = QueuePolicy.BLOCK,
    ) -> None:
        if rate_hz <= 0:
            raise ValueError(f"rate_hz must be positive, got {rate_hz}")
        self.product = product
        self.rate_hz = rate_hz
        self.seed = seed
        self.name = name
        self.limit = limit
        self.pair_factory = pair_factory or synthetic_pair
        self.policy = policy

    def frames(self, stop: StopFlag) -> Iterator[CapturedImage]:
        rng = np.random.default_rng(self.seed)
        session = uuid.uuid4().hex[:8]
        index = 0
        while not stop.is_set() and (self.limit is None or index < self.limit):
            started = time.monotonic()
            template, test = self.pair_factory(rng)
            yield CapturedImage(
                source_key=f"demo:{session}:{index}",
                image=test,
                template=template,
                product=self.product,
                image_id=f"demo-{session}-{index:06d}",
            )
            index += 1
            stop.wait(max(0.0, 1.0 / self.rate_hz - (time.monotonic() - started)))
