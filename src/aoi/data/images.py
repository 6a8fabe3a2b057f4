"""Decoding and validating grayscale inspection images."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from aoi.schema import InspectionInputError

MAX_PIXELS = 16384 * 16384 + 1  # a full line-scan panel; anything larger is refused as a bomb


class ImageError(InspectionInputError):
    """An image could not be read or is not usable for inspection."""


def decode_image(data: bytes, name: str = "<bytes>", max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Decode encoded bytes to a 2-D uint8 grayscale array, refusing empty, corrupt or oversized input."""
    if not data:
        raise ImageError(f"{name}: file is empty")
    buf = np.frombuffer(data, np.uint8)
    _check_declared_size(buf, name, max_pixels)
    image = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)
    if image is None or image.size == 0:
        raise ImageError(f"{name}: not a decodable image (corrupt, truncated or not an image format)")
    return validate_image(image, name)


def read_image(path: Path | str, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    path = Path(path)
    if not path.exists():
        raise ImageError(f"{path}: file not found")
    if not path.is_file():
        raise ImageError(f"{path}: not a regular file")
    return decode_image(path.read_bytes(), str(path), max_pixels)


def validate_image(image: np.ndarray, name: str = "<array>") -> np.ndarray:
    """Accept 2-D uint8 (or 3-channel, converted) arrays of at least 32x32 pixels."""
    if not isinstance(image, np.ndarray):
        raise ImageError(f"{name}: expected a numpy array, got {type(image).__name__}")
    if image.ndim == 3 and image.shape[2] in (3, 4):
        image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY if image.shape[2] == 3 else cv2.COLOR_BGRA2GRAY)
    if image.ndim != 2:
        raise ImageError(f"{name}: expected a 2-D grayscale image, got shape {image.shape}")
    if image.dtype != np.uint8:
        if image.dtype == np.uint16:
            image = (image.astype(np.uint16) >> 8).astype(np.uint8)
        else:
            raise ImageError(f"{name}: expected 8-bit pixels, got {image.dtype}")
    h, w = image.shape
    if h < 32 or w < 32:
        raise ImageError(f"{name}: image {w}x{h} is smaller than the 32x32 minimum")
    return np.ascontiguousarray(image)


def _check_declared_size(buf: np.ndarray, name: str, max_pixels: int) -> None:
    """Refuse PNG/JPEG whose header declares more pixels than allowed, before decoding (bomb guard)."""
    head = buf[:64].tobytes()
    wh: tuple[int, int] | None = None
    if head.startswith(b"\x89PNG\r\n\x1a\n") and len(head) >= 24:
        wh = (int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big"))
    elif head.startswith(b"\xff\xd8"):
        wh = _jpeg_size(buf)
    if wh is not None and wh[0] * wh[1] > max_pixels:
        raise ImageError(f"{name}: declared size {wh[0]}x{wh[1]} exceeds the {max_pixels} pixel limit")


def _jpeg_size(buf: np.ndarray) -> tuple[int, int] | None:
    data = buf.tobytes()
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        seg_len = int.from_bytes(data[i + 2 : i + 4], "big")
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            h = int.from_bytes(data[i + 5 : i + 7], "big")
            w = int.from_bytes(data[i + 7 : i + 9], "big")
            return (w, h)
        i += 2 + seg_len
    return None
