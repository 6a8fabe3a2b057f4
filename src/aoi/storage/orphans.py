"""Image files that no row refers to, removed when the line starts.

A store writes its image files first and commits the row after (so that a row never points at a
missing file); a process killed in between (SIGKILL, power loss) leaves files that no inspection or
product refers to. They are removed at the next start, and their count logged.

Only a process alone with the image store may sweep: every process that opens the store holds a
shared lock on `<data dir>/.aoi-store.lock`, and the sweep runs only when it can turn its own into an
exclusive one, so it never takes the file of another process's store that is about to commit.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from sqlalchemy import select

from aoi.storage.database import Database
from aoi.storage.images import ImageStore
from aoi.storage.models import InspectionRow, ProductRow

log = logging.getLogger(__name__)

LOCK_NAME = ".aoi-store.lock"
MARKER_NAME = ".aoi-orphan-sweep"  # beside the lock; its mtime: when the last completed sweep started
_MARKER_SLACK_S = 60.0  # day folders changed shortly before the last sweep are checked again
_INSPECTION_FILE = re.compile(r"([0-9a-f]{32})_[a-z]+\.(?:png|jpg)")
_TEMP_FILE = re.compile(r"\..+\.tmp")  # ImageStore writes `.<name>.<uuid>.tmp`, then renames it
_ID_CHUNK = 500


@dataclass(frozen=True)
class OrphanSweep:
    """What a sweep did: files checked and removed, or why it did not run."""

    checked: int = 0
    removed: int = 0
    skipped: str | None = None


class StoreLock:
    """The shared lock a process holds while it has the image store open (see the module docstring)."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / LOCK_NAME
        self._file: IO[bytes] | None = None

    def acquire(self) -> StoreLock:
        if self._file is None:
            self._file = self.path.open("ab")
            _flock(self._file, "shared")
        return self

    def release(self) -> None:
        if self._file is not None:
            self._file.close()  # closing releases the flock
            self._file = None

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[bool]:
        """True inside when no other process holds the store; the shared lock is back on exit."""
        self.acquire()
        handle = self._file
        if handle is None:  # acquire() set it; kept for the type checker
            raise RuntimeError("store lock not held")
        alone = _flock(handle, "exclusive")
        try:
            yield alone
        finally:
            _flock(handle, "shared")  # a failed conversion may have dropped the shared lock: take it again


def _flock(handle: IO[bytes], mode: str) -> bool:
    try:
        import fcntl
    except ImportError:  # not POSIX: no cross-process guard
        return True
    if mode == "shared":
        fcntl.flock(handle.fileno(), fcntl.LOCK_SH)
        return True
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


def sweep_orphans(db: Database, images: ImageStore, lock: StoreLock) -> OrphanSweep:
    """Remove the image files no row refers to, in the day folders changed since the last sweep
    (all of them the first time) and among the product templates; log the count."""
    with lock.exclusive() as alone:
        if not alone:
            reason = "another process has the image store open"
            log.info("orphan sweep skipped: %s (%s)", reason, images.root)
            return OrphanSweep(skipped=reason)
        started = time.time()
        marker = lock.path.with_name(MARKER_NAME)
        since = marker.stat().st_mtime - _MARKER_SLACK_S if marker.exists() else None
        checked = removed = 0
        for day in _subfolders(images.root / "inspections"):
            if since is not None and day.stat().st_mtime < since:
                continue
            files = _files(day)
            checked += len(files)
            removed += _sweep_inspection_files(db, images, files)
        templates = _files(images.root / "templates")
        checked += len(templates)
        removed += _sweep_templates(db, images, templates)
        marker.touch()
        os.utime(marker, (started, started))
    log.info("orphan sweep: removed %d image files that no row refers to (%d checked)", removed, checked)
    return OrphanSweep(checked=checked, removed=removed)


def _sweep_inspection_files(db: Database, images: ImageStore, files: list[Path]) -> int:
    by_id: dict[str, list[Path]] = {}
    removed = 0
    for path in files:
        match = _INSPECTION_FILE.fullmatch(path.name)
        if match is not None:
            by_id.setdefault(match.group(1), []).append(path)
        elif _TEMP_FILE.fullmatch(path.name):
            removed += _remove(images, path)
    ids = list(by_id)
    with db.session() as session:
        for start in range(0, len(ids), _ID_CHUNK):
            chunk = ids[start : start + _ID_CHUNK]
            for known in session.scalars(select(InspectionRow.id).where(InspectionRow.id.in_(chunk))):
                by_id.pop(known, None)
    for paths in by_id.values():
        removed += sum(_remove(images, path) for path in paths)
    return removed


def _sweep_templates(db: Database, images: ImageStore, files: list[Path]) -> int:
    with db.session() as session:
        referenced = set(session.scalars(select(ProductRow.template_path)))
    removed = 0
    for path in files:
        relative = path.relative_to(images.root).as_posix()
        if (path.suffix == ".png" and relative not in referenced) or _TEMP_FILE.fullmatch(path.name):
            removed += _remove(images, path)
    return removed


def _remove(images: ImageStore, path: Path) -> int:
    images.delete(path.relative_to(images.root).as_posix())
    return 0 if path.exists() else 1


def _subfolders(folder: Path) -> list[Path]:
    try:
        return sorted(p for p in folder.iterdir() if p.is_dir())
    except FileNotFoundError:
        return []


def _files(folder: Path) -> list[Path]:
    try:
        return [p for p in folder.iterdir() if p.is_file()]
    except FileNotFoundError:
        return []
