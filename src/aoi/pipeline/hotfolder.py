"""The scanner's hot folder: every image dropped there is inspected once, or set aside with its reason.

Nothing is lost silently and nothing waits silently: a file ends in `done/` (its result is stored) or
in `failed/` beside `<name>.reason.txt`; a file that waits (still being written, template late, store
failing) is logged when it starts waiting and when that changes, not at every poll.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aoi.data.images import MAX_PIXELS, ImageError, decode_image, read_image
from aoi.pipeline.inbox import (
    IMAGE_SUFFIXES,
    PARTIAL_SUFFIXES,
    TEMPLATE_MARK,
    InboxLock,
    StateLog,
    bytes_sha256,
    file_sha256,
    move_into,
    scandir,
    wanted,
    write_reason,
)
from aoi.pipeline.protocols import CapturedImage, Outcome, OutcomeStatus, QueuePolicy, SourceError, StopFlag

log = logging.getLogger(__name__)

# States a file waits in before it is queued; leaving one is logged too.
_WAITING = frozenset({"empty", "template_incomplete", "template_late"})


@dataclass(frozen=True)
class _Signature:
    size: int
    mtime_ns: int


@dataclass
class _Seen:
    signature: _Signature
    first_seen: float
    stable_polls: int = 1
    sha256: str | None = None  # of the bytes behind this signature, once read


class HotFolderSource:
    """Images a scanner writes into `folder` (or `folder/<product>/`), each inspected exactly once.

    A file is read only once it is complete: its size and mtime must be unchanged across
    `stable_polls` consecutive polls, and names ending in .part/.tmp (a writer's temp name before
    its final rename) are ignored.

    The source key is `hotfolder:<relative path>:<sha256 of the bytes>`: it names the content, not
    the file's mtime (which `mv` and `cp -p` keep). The pipeline asks the sink `already_done(key)`
    first: a stored result means the file is only moved to `done/` (a restart after a crash, or the
    same file dropped again), while a recorded failure does not count, so a file whose cause was
    fixed (product registered, template supplied) and that is moved back into the inbox is inspected
    again. After the sink stored a result the file moves to `done/`; a failed image moves to
    `failed/` with `<name>.reason.txt` beside it. If the sink cannot store, the file stays in the
    inbox and is retried every `retry_after_s`.

    Files that never reach the pipeline go to `failed/` with their reason too: a file still empty
    (0 bytes) after `empty_grace_s`, and a file that cannot be read.

    Template per file: a sibling `<name>_temp.<ext>` (moved along with it), else the product of
    its subfolder, else the source's `product`. A root file with neither waits `template_wait_s`
    for its sibling template to appear, then goes without one (and fails, with that reason).
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
        empty_grace_s: float = 10.0,
        max_pixels: int = MAX_PIXELS,
    ) -> None:
        self.folder = Path(folder)
        self.product = product
        self.name = name
        self.poll_interval_s = poll_interval_s
        self.stable_polls = max(1, stable_polls)
        self.template_wait_s = template_wait_s
        self.retry_after_s = retry_after_s
        self.empty_grace_s = empty_grace_s
        self.max_pixels = max_pixels
        self.done_dir = self.folder / "done"
        self.failed_dir = self.folder / "failed"
        self._seen: dict[Path, _Seen] = {}
        self._in_flight: set[Path] = set()
        self._retry_at: dict[Path, float] = {}
        self._strangers: dict[Path, tuple[_Signature, float]] = {}  # other formats: signature, since when
        self._lock = threading.Lock()
        self._states = StateLog(log)
        self.moved_done = 0
        self.moved_failed = 0

    def frames(self, stop: StopFlag) -> Iterator[CapturedImage]:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SourceError(f"hot folder {self.folder} cannot be created: {exc}") from exc
        with InboxLock(self.folder):
            while not stop.is_set():
                for captured in self.poll():
                    if stop.is_set():
                        return
                    yield captured
                stop.wait(self.poll_interval_s)

    def poll(self) -> list[CapturedImage]:
        """One scan of the inbox: the files that became ready since the last scan, oldest first."""
        now = time.monotonic()
        self._refresh(now)
        self._set_aside_empty(now)
        self._set_aside_strangers(now)
        ready: list[tuple[int, str, CapturedImage]] = []
        for path, product in self._candidates(images_only=True):
            captured = self._ready(path, product, now)
            if captured is not None:
                ready.append((self._seen[path].signature.mtime_ns, str(path), captured))
        ready.sort(key=lambda r: (r[0], r[1]))
        return [c for _, _, c in ready]

    def _refresh(self, now: float) -> None:
        present: dict[Path, _Signature] = {}
        for path, _product in self._candidates():
            try:
                st = path.stat()
            except FileNotFoundError:
                continue
            present[path] = _Signature(st.st_size, st.st_mtime_ns)
        for path in [p for p in self._seen if p not in present]:
            del self._seen[path]
        self._states.forget_missing(set(present))
        for path, sig in present.items():
            seen = self._seen.get(path)
            if seen is None or seen.signature != sig:
                self._seen[path] = _Seen(sig, now)
            else:
                seen.stable_polls += 1

    def _ready(self, path: Path, product: str | None, now: float) -> CapturedImage | None:
        """The file as a CapturedImage when it can go now; else None (and its wait logged once)."""
        seen = self._seen.get(path)
        with self._lock:
            busy = path in self._in_flight or self._retry_at.get(path, 0.0) > now
        if seen is None or busy or not self._is_stable(path):
            return None
        rel = self._rel(path)
        if seen.signature.size == 0:
            self._states.enter(
                path, "empty", logging.INFO,
                "hot folder: %s is empty (0 bytes); waiting up to %.0f s for content before moving it to failed/",
                rel, self.empty_grace_s,
            )  # fmt: skip
            return None
        template_path = self._sibling_template(path)
        if template_path is not None and not self._is_complete(template_path):
            self._states.enter(
                path, "template_incomplete", logging.INFO,
                "hot folder: %s waits for its template %s to be completely written", rel, self._rel(template_path),
            )  # fmt: skip
            return None
        if template_path is None and product is None:
            expected = f"{path.stem}{TEMPLATE_MARK}{path.suffix}"
            if now - seen.first_seen < self.template_wait_s:
                self._states.enter(
                    path, "template_late", logging.INFO,
                    "hot folder: %s waits up to %.1f s for its template %s (no product subfolder, no default product)",
                    rel, self.template_wait_s, expected,
                )  # fmt: skip
                return None
            self._states.enter(
                path, "no_template", logging.WARNING,
                "hot folder: no template for %s after %.1f s; inspecting it without one (it will fail: supply %s"
                " or register its product, then move it back into the inbox)",
                rel, self.template_wait_s, expected,
            )  # fmt: skip
        digest = self._digest(path, seen, template_path)
        if digest is None:
            return None
        previous = self._states.get(path)
        if previous in _WAITING:
            self._states.leave(path)
            log.info("hot folder: %s no longer waits (%s); queued for inspection", rel, previous.replace("_", " "))
        with self._lock:
            self._in_flight.add(path)
        return self._captured(path, product, template_path, digest)

    def _is_stable(self, path: Path) -> bool:
        seen = self._seen.get(path)
        return seen is not None and seen.stable_polls >= self.stable_polls

    def _is_complete(self, path: Path) -> bool:
        seen = self._seen.get(path)
        return seen is not None and seen.signature.size > 0 and seen.stable_polls >= self.stable_polls

    def _digest(self, path: Path, seen: _Seen, template_path: Path | None) -> str | None:
        """The content hash (read once per file version); an unreadable file is set aside."""
        if seen.sha256 is None:
            try:
                seen.sha256 = file_sha256(path)
            except FileNotFoundError:
                return None
            except OSError as exc:
                self._set_aside(path, template_path, f"unreadable: {type(exc).__name__}: {exc.strerror or exc}")
                return None
        return seen.sha256

    def _set_aside_empty(self, now: float) -> None:
        """Files (images or templates) still empty `empty_grace_s` after their last change go to failed/."""
        for path, seen in list(self._seen.items()):
            if seen.signature.size or seen.stable_polls < self.stable_polls:
                continue
            if now - seen.first_seen < self.empty_grace_s:
                continue
            with self._lock:
                if path in self._in_flight:
                    continue
            self._set_aside(path, None, f"empty file: still 0 bytes {self.empty_grace_s:.0f} s after it appeared")

    def _set_aside_strangers(self, now: float) -> None:
        """Files of formats the line does not read (a .gif, notes.txt), unchanged for `empty_grace_s`, go to
        failed/ with the reason, so nothing waits in the inbox unseen. Writers' partial names are left alone."""
        present: dict[Path, _Signature] = {}
        for path in self._other_files():
            try:
                st = path.stat()
            except FileNotFoundError:
                continue
            present[path] = _Signature(st.st_size, st.st_mtime_ns)
        for path, sig in present.items():
            known = self._strangers.get(path)
            if known is None or known[0] != sig:
                self._strangers[path] = (sig, now)
            elif now - known[1] >= self.empty_grace_s:
                supported = " ".join(sorted(IMAGE_SUFFIXES))
                reason = f"not an image format the line reads ({path.suffix or 'no extension'}); it reads {supported}"
                self._set_aside(path, None, reason)
        self._strangers = {p: v for p, v in self._strangers.items() if p in present and p.exists()}

    def _other_files(self) -> Iterator[Path]:
        """Files in the inbox and its product subfolders that are neither images nor partial writes."""
        subfolders = [
            Path(e.path)
            for e in scandir(self.folder)
            if e.is_dir(follow_symlinks=False) and not e.name.startswith(".") and e.name not in ("done", "failed")
        ]
        for folder in (self.folder, *subfolders):
            for entry in scandir(folder):
                name = entry.name
                if name.startswith(".") or not entry.is_file(follow_symlinks=False) or wanted(name, False):
                    continue
                if os.path.splitext(name.lower())[1] in PARTIAL_SUFFIXES:
                    continue
                yield Path(entry.path)

    def _set_aside(self, path: Path, template_path: Path | None, reason: str) -> None:
        """Move a file that cannot be inspected to failed/ with its reason (no result, no failure row)."""
        rel = self._rel(path)
        try:
            target = move_into(path, self.folder, self.failed_dir)
        except OSError as exc:  # stays in the inbox; tried again at the next poll, logged once
            self._states.enter(
                path, "cannot_set_aside", logging.ERROR,
                "hot folder: %s should go to failed/ (%s) but cannot be moved: %s", rel, reason, exc,
            )  # fmt: skip
            return
        self._seen.pop(path, None)
        self._states.leave(path)
        if target is None:
            log.warning("hot folder file %s vanished before it could be moved", path)
            return
        if template_path is not None:
            self._move(template_path, self.failed_dir)
        self._note_reason(target, reason)
        with self._lock:
            self.moved_failed += 1
        log.warning("hot folder: %s moved to failed/: %s", rel, reason)

    def _candidates(self, images_only: bool = False) -> Iterator[tuple[Path, str | None]]:
        """Image files in the inbox root (source product) and one level of product subfolders."""
        for entry in scandir(self.folder):
            if entry.name.startswith("."):
                continue
            if entry.is_dir(follow_symlinks=False):
                if entry.name in ("done", "failed"):
                    continue
                for sub in scandir(Path(entry.path)):
                    if sub.is_file(follow_symlinks=False) and wanted(sub.name, images_only):
                        yield Path(sub.path), entry.name
            elif entry.is_file(follow_symlinks=False) and wanted(entry.name, images_only):
                yield Path(entry.path), self.product

    def _sibling_template(self, path: Path) -> Path | None:
        for suffix in (path.suffix, *sorted(IMAGE_SUFFIXES)):
            candidate = path.with_name(f"{path.stem}{TEMPLATE_MARK}{suffix}")
            if candidate in self._seen:
                return candidate
        return None

    def _rel(self, path: Path) -> str:
        return path.relative_to(self.folder).as_posix()

    def _captured(self, path: Path, product: str | None, template_path: Path | None, digest: str) -> CapturedImage:
        rel = self._rel(path)
        max_pixels = self.max_pixels

        def load() -> tuple[np.ndarray, np.ndarray | None]:
            try:
                data = path.read_bytes()
            except OSError as exc:
                raise ImageError(f"{path}: cannot be read: {exc}") from None
            if bytes_sha256(data) != digest:
                raise ImageError(f"{path}: the file changed after it was queued; move it back to inspect it again")
            image = decode_image(data, str(path), max_pixels)
            template = read_image(template_path, max_pixels) if template_path is not None else None
            return image, template

        return CapturedImage(
            source_key=f"hotfolder:{rel}:{digest}",
            product=product,
            image_id=rel,
            template_file=template_path.resolve() if template_path is not None else None,
            load=load,
            on_done=lambda outcome: self._finish(path, template_path, outcome),
        )

    def _finish(self, path: Path, template_path: Path | None, outcome: Outcome) -> None:
        """Move the file out of the inbox once the sink holds its result (or its failure)."""
        rel = self._rel(path)
        try:
            if outcome.status in (OutcomeStatus.STORED, OutcomeStatus.SKIPPED):
                self._move(path, self.done_dir)
                if template_path is not None:
                    self._move(template_path, self.done_dir)
                with self._lock:
                    self.moved_done += 1
                if outcome.status is OutcomeStatus.SKIPPED:
                    log.info("hot folder: %s was already inspected (same name, same bytes); moved to done/", rel)
                if self._states.leave(path) == "retrying":
                    log.info("hot folder: %s stored after retrying", rel)
            elif outcome.status is OutcomeStatus.FAILED:
                failure = outcome.failure
                reason = f"{failure.error}: {failure.message}" if failure else "failed"
                target = self._move(path, self.failed_dir)
                if template_path is not None:
                    self._move(template_path, self.failed_dir)
                if target is not None:
                    self._note_reason(target, reason)
                with self._lock:
                    self.moved_failed += 1
                self._states.leave(path)
                log.warning(
                    "hot folder: %s failed and moved to failed/ (%s); fix the cause, then move it back into the inbox",
                    rel, reason,
                )  # fmt: skip
            else:  # NOT_STORED: keep the file for a later retry
                with self._lock:
                    self._retry_at[path] = time.monotonic() + self.retry_after_s
                self._states.enter(
                    path, "retrying", logging.WARNING,
                    "hot folder: %s could not be stored; it stays in the inbox and is retried every %.1f s",
                    rel, self.retry_after_s,
                )  # fmt: skip
        finally:
            with self._lock:
                self._in_flight.discard(path)

    def _move(self, path: Path, to_dir: Path) -> Path | None:
        target = move_into(path, self.folder, to_dir)
        if target is None:
            log.warning("hot folder file %s vanished before it could be moved", path)
        return target

    @staticmethod
    def _note_reason(target: Path, reason: str) -> None:
        try:
            write_reason(target, reason)
        except OSError as exc:  # the move is what matters; a missing note must not stop the line
            log.warning("could not write the reason beside %s: %s", target, exc)
