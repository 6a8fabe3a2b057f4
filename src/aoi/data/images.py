"""Decoding and validating grayscale inspection images."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from aoi.data.image_header import KNOWN_FORMATS, HeaderError, ImageHeader, UnknownFormatError, read_header
from aoi.schema import InspectionInputError

MAX_PIXELS = 16384 * 16384 + 1  # a full line-scan panel; anything larger is refused as a bomb
# A TIFF tile is a decoder buffer (4 bytes a pixel in OpenCV): no larger than its image, or than this.
_TILE_SLACK_PX = 4096


class ImageError(InspectionInputError):
    """An image could not be read or is not usable for inspection."""


class UnknownImageFormat(ImageError):
    """The bytes are in no format we decode (not an image at all, or GIF, JPEG 2000, EXR...)."""


def check_declared_size(data: bytes, name: str = "<bytes>", max_pixels: int = MAX_PIXELS) -> ImageHeader:
    """The bomb guard: refuse bytes whose header is unknown, unreadable or declares more than
    `max_pixels`, before any decoder allocates the image it declares."""
    try:
        header = read_header(data)
    except UnknownFormatError:
        raise UnknownImageFormat(f"{name}: not a decodable image: unknown format (expected {KNOWN_FORMATS})") from None
    except HeaderError as exc:
        raise ImageError(f"{name}: not a decodable image: unreadable header: {exc}") from None
    w, h = header.size_wh
    if w * h > max_pixels:
        raise ImageError(
            f"{name}: {header.format} header declares {w}x{h} pixels, which exceeds the {max_pixels} pixel limit"
            " (16384x16384 panels)"
        )
    if header.tile_wh is not None:
        tw, th = header.tile_wh
        if not (0 < tw <= max(_round16(w), _TILE_SLACK_PX) and 0 < th <= max(_round16(h), _TILE_SLACK_PX)):
            raise ImageError(f"{name}: TIFF header declares {tw}x{th} tiles for a {w}x{h} image (a bomb)")
    return header


def _round16(n: int) -> int:
    return -(-n // 16) * 16


def decode_image(data: bytes, name: str = "<bytes>", max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Decode encoded bytes to a 2-D uint8 grayscale array, refusing empty, corrupt, unknown or oversized
    input (the header is checked by `check_declared_size` first)."""
    if not data:
        raise ImageError(f"{name}: file is empty")
    check_declared_size(data, name, max_pixels)
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
    except cv2.error as exc:  # OpenCV's own limits (OPENCV_IO_MAX_IMAGE_PIXELS) raise instead of failing
        raise ImageError(f"{name}: not a decodable image (OpenCV: {getattr(exc, 'err', None) or exc})") from None
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
