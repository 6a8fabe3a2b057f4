"""The format and declared size of encoded image bytes, read from the header before any decoder runs.

A decoder allocates the whole image from the size its header declares, so a few bytes that declare
30000x30000 pixels (a decompression bomb) cost gigabytes before the decoder finds the body missing.
Reading the header here, in pure Python and without allocating, lets `aoi.data.images` refuse such
input whatever the format. Formats not listed in `KNOWN_FORMATS` are unknown: never handed to OpenCV.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable
from dataclasses import dataclass

KNOWN_FORMATS = "PNG, JPEG, TIFF, BMP, WebP or PGM/PPM/PBM"


class HeaderError(ValueError):
    """The header is truncated or inconsistent, so the declared size cannot be trusted."""


class UnknownFormatError(HeaderError):
    """The bytes start with no signature of a format we read."""


@dataclass(frozen=True)
class ImageHeader:
    """`size_wh`: the image size the header declares; `tile_wh`: a TIFF's tile size (a decoder buffer)."""

    format: str
    size_wh: tuple[int, int]
    tile_wh: tuple[int, int] | None = None


def read_header(data: bytes) -> ImageHeader:
    """The format and declared size of `data`; `HeaderError` when unknown, truncated or inconsistent."""
    fmt = sniff_format(data)
    if fmt is None:
        raise UnknownFormatError(f"unknown format (expected {KNOWN_FORMATS})")
    try:
        header = _PARSERS[fmt](data)
    except (struct.error, IndexError):
        raise HeaderError(f"{fmt} header is truncated") from None
    w, h = header.size_wh
    if w <= 0 or h <= 0:
        raise HeaderError(f"{fmt} header declares an invalid size {w}x{h}")
    return header


def sniff_format(data: bytes) -> str | None:
    """The format whose signature `data` starts with (the signatures OpenCV picks its decoder by)."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data.startswith((b"II*\x00", b"MM\x00*")):
        return "TIFF"
    if data.startswith(b"BM"):
        return "BMP"
    if data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return "WebP"
    if _PNM_MAGIC.match(data):
        return "PNM"
    return None


def _png(data: bytes) -> ImageHeader:
    length, kind, w, h = struct.unpack_from(">I4sII", data, 8)
    if kind != b"IHDR" or length != 13:
        raise HeaderError("PNG does not start with its IHDR chunk")
    return ImageHeader("PNG", (w, h))


# Start-of-frame markers (baseline, progressive, lossless, arithmetic); C4, C8 and CC are not frames.
_JPEG_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})
_JPEG_MAX_SEGMENTS = 1024  # real files carry a few dozen (APPn, DQT, DHT, COM) before the frame header
_JPEG_FILL = re.compile(rb"\xff+")


def _jpeg(data: bytes) -> ImageHeader:
    i = 2
    for _ in range(_JPEG_MAX_SEGMENTS):
        fill = _JPEG_FILL.match(data, i)
        if fill is None:
            if i >= len(data):
                raise IndexError(i)  # truncated
            raise HeaderError(f"JPEG has no marker at byte {i}")
        i = fill.end()
        marker = data[i]
        i += 1
        if marker in (0x01, 0xD8) or 0xD0 <= marker <= 0xD7:  # markers without a length
            continue
        if marker in (0xD9, 0xDA):
            raise HeaderError("JPEG has no frame header (SOF) before its image data")
        (length,) = struct.unpack_from(">H", data, i)
        if length < 2:
            raise HeaderError(f"JPEG segment at byte {i} has an invalid length {length}")
        if marker in _JPEG_SOF:
            h, w = struct.unpack_from(">HH", data, i + 3)
            return ImageHeader("JPEG", (w, h))
        i += length
    raise HeaderError(f"JPEG has no frame header (SOF) in its first {_JPEG_MAX_SEGMENTS} segments")


_TIFF_WIDTH, _TIFF_LENGTH, _TIFF_TILE_WIDTH, _TIFF_TILE_LENGTH = 256, 257, 322, 323
_TIFF_SIZE_TAGS = frozenset({_TIFF_WIDTH, _TIFF_LENGTH, _TIFF_TILE_WIDTH, _TIFF_TILE_LENGTH})
_TIFF_INT_TYPES = {1: "B", 3: "H", 4: "I"}  # BYTE, SHORT, LONG: stored left-justified in the value field


def _tiff(data: bytes) -> ImageHeader:
    order = "<" if data.startswith(b"II") else ">"
    (ifd,) = struct.unpack_from(order + "I", data, 4)
    (count,) = struct.unpack_from(order + "H", data, ifd)
    tags: dict[int, int] = {}
    for n in range(count):
        entry = ifd + 2 + 12 * n
        tag, kind, values = struct.unpack_from(order + "HHI", data, entry)
        if tag not in _TIFF_SIZE_TAGS:
            continue
        if tag in tags or kind not in _TIFF_INT_TYPES or values != 1:
            raise HeaderError(f"TIFF size tag {tag} is repeated or not a single BYTE, SHORT or LONG")
        (tags[tag],) = struct.unpack_from(order + _TIFF_INT_TYPES[kind], data, entry + 8)
    if _TIFF_WIDTH not in tags or _TIFF_LENGTH not in tags:
        raise HeaderError("TIFF first image directory has no ImageWidth or ImageLength")
    tiled = _TIFF_TILE_WIDTH in tags or _TIFF_TILE_LENGTH in tags
    tile = (tags.get(_TIFF_TILE_WIDTH, 0), tags.get(_TIFF_TILE_LENGTH, 0)) if tiled else None
    return ImageHeader("TIFF", (tags[_TIFF_WIDTH], tags[_TIFF_LENGTH]), tile)


def _bmp(data: bytes) -> ImageHeader:
    (info_size,) = struct.unpack_from("<I", data, 14)
    if info_size == 12:  # OS/2 BITMAPCOREHEADER: unsigned 16-bit sizes
        w, h = struct.unpack_from("<HH", data, 18)
    elif info_size >= 36:  # BITMAPINFOHEADER and its successors: a negative height means top-down rows
        w, h = struct.unpack_from("<ii", data, 18)
        h = abs(h)
    else:
        raise HeaderError(f"BMP has an unknown {info_size}-byte info header")
    return ImageHeader("BMP", (w, h))


def _webp(data: bytes) -> ImageHeader:
    chunk = data[12:16]
    if chunk == b"VP8X":  # extended: 24-bit canvas width-1 and height-1
        w_lo, w_hi, h_lo, h_hi = struct.unpack_from("<HBHB", data, 24)
        return ImageHeader("WebP", (1 + (w_lo | w_hi << 16), 1 + (h_lo | h_hi << 16)))
    if chunk == b"VP8L":  # lossless: signature 0x2f, then 14-bit width-1 and height-1
        signature, bits = struct.unpack_from("<BI", data, 20)
        if signature != 0x2F:
            raise HeaderError("WebP lossless bitstream has no 0x2f signature")
        return ImageHeader("WebP", (1 + (bits & 0x3FFF), 1 + (bits >> 14 & 0x3FFF)))
    if chunk == b"VP8 ":  # lossy: 3-byte frame tag, start code 9d 01 2a, 14-bit width and height
        start, w, h = struct.unpack_from("<3sHH", data, 23)
        if start != b"\x9d\x01\x2a":
            raise HeaderError("WebP lossy bitstream has no key-frame start code")
        return ImageHeader("WebP", (w & 0x3FFF, h & 0x3FFF))
    raise HeaderError(f"WebP has an unknown first chunk {chunk!r}")


_PNM_MAGIC = re.compile(rb"P[1-6]\s")
_PNM_GAP = re.compile(rb"(?:\s++|#[^\r\n]*+)*+")  # whitespace and comments; possessive: no backtracking
_PNM_NUMBER = re.compile(rb"\d{1,20}(?!\d)")


def _pnm(data: bytes) -> ImageHeader:
    numbers: list[int] = []
    pos = 2
    for what in ("width", "height"):
        gap = _PNM_GAP.match(data, pos)
        number = _PNM_NUMBER.match(data, gap.end() if gap else pos)
        if number is None:
            raise HeaderError(f"PNM header has no readable {what}")
        numbers.append(int(number.group()))
        pos = number.end()
    return ImageHeader("PNM", (numbers[0], numbers[1]))


_PARSERS: dict[str, Callable[[bytes], ImageHeader]] = {
    "PNG": _png,
    "JPEG": _jpeg,
    "TIFF": _tiff,
    "BMP": _bmp,
    "WebP": _webp,
    "PNM": _pnm,
}
