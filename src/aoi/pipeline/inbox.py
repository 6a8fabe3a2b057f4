"""File-system pieces of the hot folder: which names count, the inbox lock, moves, reason notes,
content hashes, and a log that speaks once per change of a file's state."""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from pathlib import Path
from typing import IO

from aoi.pipeline.protocols import SourceError

# Every format the decoder reads (aoi.data.image_header): a file of another readable format would
# otherwise sit in the inbox, neither inspected nor set aside.
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm", ".pbm", ".pnm"})
PARTIAL_SUFFIXES = frozenset({".part", ".tmp", ".partial", ".crdownload"})
TEMPLATE_MARK = "_temp"  # `<name>_temp.<ext>` beside `<name>.<ext>` is that image's golden template
REASON_SUFFIX = ".reason.txt"  # `failed/<name>.reason.txt` says why `failed/<name>` is there
_HASH_CHUNK = 1 << 20


def file_sha256(path: Path) -> str:
    """The sha256 of a file's bytes, read in 1 MiB chunks (raises OSError when it cannot be read)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def bytes_sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def scandir(folder: Path) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(folder) as it:
            return list(it)
    except (FileNotFoundError, NotADirectoryError):
        return []


def wanted(filename: str, images_only: bool) -> bool:
    """An image name (not a writer's temp name); with `images_only`, not a `_temp` template either."""
    lower = filename.lower()
    stem, suffix = os.path.splitext(lower)
    if suffix in PARTIAL_SUFFIXES or suffix not in IMAGE_SUFFIXES:
        return False
    return not (images_only and stem.endswith(TEMPLATE_MARK))


def move_into(path: Path, root: Path, to_dir: Path) -> Path | None:
    """Move `path` (under `root`) to the same relative place under `to_dir`; None if it vanished.

    A name already taken there (the same name dropped again later) gets a time stamp: both are kept.
    """
    target = to_dir / path.relative_to(root)
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        target = target.with_name(f"{target.stem}.{time.time_ns()}{target.suffix}")
    try:
        os.replace(path, target)
    except FileNotFoundError:
        return None
    return target


def write_reason(target: Path, reason: str) -> Path:
    """`<target>.reason.txt`: one line an operator reads to know why the file was set aside."""
    note = target.with_name(target.name + REASON_SUFFIX)
    note.write_text(reason.rstrip("\n") + "\n", encoding="utf-8")
    return note


class StateLog:
    """The last logged state of each inbox file: a file waiting through many polls is logged once when
    it starts waiting and once when that changes, never once per poll. Safe across the capture and
    store threads."""

    def __init__(self, logger: logging.Logger) -> None:
        self._log = logger
        self._state: dict[Path, str] = {}
        self._lock = threading.Lock()

    def get(self, path: Path) -> str | None:
        with self._lock:
            return self._state.get(path)

    def enter(self, path: Path, state: str, level: int, message: str, *args: object) -> bool:
        """Log `message` if `path` was not already in `state`; True when it logged."""
        with self._lock:
            if self._state.get(path) == state:
                return False
            self._state[path] = state
        self._log.log(level, message, *args)
        return True

    def leave(self, path: Path) -> str | None:
        """Forget `path`'s state and return it (None when it had none)."""
        with self._lock:
            return self._state.pop(path, None)

    def forget_missing(self, present: set[Path]) -> None:
        with self._lock:
            for path in [p for p in self._state if p not in present]:
                del self._state[path]


class InboxLock:
    """An exclusive lock on `<inbox>/.aoi-hotfolder.lock`: two processes watching one inbox would
    inspect the same files twice. The OS drops the lock when the process dies (SIGKILL included),
    so a restart is never blocked by a stale lock."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / ".aoi-hotfolder.lock"
        self._file: IO[str] | None = None

    def __enter__(self) -> InboxLock:
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
