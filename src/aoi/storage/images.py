"""The image store: tested images and templates under the data directory. An upload that arrives as PNG
or JPEG is kept byte for byte as received (no re-encoding: nothing lost, no time spent); anything else
(and every template) is written as lossless PNG.

Rows hold paths relative to the store root so that a data directory can be moved as a whole.
Files are written before the database commit and removed again if the commit fails.
"""

from __future__ import annotations

import contextlib
import errno
import os
import threading
import uuid
from collections import OrderedDict
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np

from aoi.data.images import read_image

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JPEG_SIGNATURE = b"\xff\xd8\xff"
KEPT_AS_RECEIVED = ((PNG_SIGNATURE, ".png"), (JPEG_SIGNATURE, ".jpg"))  # signature -> stored suffix
STORED_SUFFIXES = frozenset(suffix for _, suffix in KEPT_AS_RECEIVED)
PNG_FAST = [cv2.IMWRITE_PNG_COMPRESSION, 1]  # lossless; level 1 keeps a 640x640 write at a few ms


class ImageStoreError(RuntimeError):
    """An image could not be written to or read from the store."""


class ImageStoreFull(ImageStoreError):
    """The image store's disk (or quota) is full: nothing was stored; retry once space is freed."""


_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


class ImageStore:
    def __init__(self, root: Path | str, template_cache_size: int = 16) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_size = template_cache_size
        self._lock = threading.Lock()

    def path(self, relative: str) -> Path:
        full = (self.root / relative).resolve()
        if self.root not in full.parents:
            raise ImageStoreError(f"image path {relative!r} leaves the image store")
        return full

    def save_inspection_image(
        self, inspection_id: str, image: np.ndarray, role: str = "test", received: bytes | None = None
    ) -> str:
        """`received`: the upload's own bytes; kept as they are when a PNG or a JPEG, else `image` is
        encoded as PNG. The stored suffix says which."""
        day = datetime.now(UTC).strftime("%Y%m%d")
        kept = _kept_suffix(received)
        stem = f"inspections/{day}/{inspection_id}_{role}"
        if kept is not None and received is not None:
            return self._write_bytes(stem + kept, received)
        return self._write(stem + ".png", image)

    def save_template(self, product_id: str, image: np.ndarray) -> str:
        return self._write(f"templates/{product_id}.png", image)

    def load(self, relative: str) -> np.ndarray:
        return read_image(self.path(relative))

    def load_template(self, relative: str) -> np.ndarray:
        """Templates are read for every inspection of a product, so the decoded arrays are cached."""
        with self._lock:
            cached = self._cache.get(relative)
            if cached is not None:
                self._cache.move_to_end(relative)
                return cached
        image = self.load(relative)
        image.setflags(write=False)
        with self._lock:
            self._cache[relative] = image
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return image

    def delete(self, relative: str) -> None:
        with contextlib.suppress(OSError):  # best effort: a leftover file is harmless, a crash here is not
            self.path(relative).unlink(missing_ok=True)
        with self._lock:
            self._cache.pop(relative, None)

    def _write(self, relative: str, image: np.ndarray) -> str:
        ok, encoded = cv2.imencode(".png", image, PNG_FAST)
        if not ok:
            raise ImageStoreError(f"could not encode {relative} as PNG")
        return self._write_bytes(relative, encoded.tobytes())

    def _write_bytes(self, relative: str, data: bytes) -> str:
        full = self.path(relative)
        tmp = full.with_name(f".{full.name}.{uuid.uuid4().hex}.tmp")
        try:
            full.parent.mkdir(parents=True, exist_ok=True)  # a new day folder needs space too
            tmp.write_bytes(data)
            os.replace(tmp, full)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
            error = ImageStoreFull if exc.errno in _FULL_ERRNOS else ImageStoreError
            raise error(f"could not write {full}: {exc}") from exc
        return relative


def _kept_suffix(received: bytes | None) -> str | None:
    """The suffix a received file is stored under as it is, or None when it must be re-encoded."""
    if received is None:
        return None
    return next((suffix for signature, suffix in KEPT_AS_RECEIVED if received.startswith(signature)), None)
