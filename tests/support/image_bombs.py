"""Tiny decompression bombs: a few hundred bytes whose header declares `w` x `h` pixels, one per format.

Written with `struct` so the tests need no encoder that would refuse (or take minutes) to make them.
Shared by the decoder, upload and hot-folder tests.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable

BOMB_WH = (30000, 30000)  # ~900 MB of grey pixels, well over the 16384x16384 panel limit


def png_bomb(w: int, h: int) -> bytes:
    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    header = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    )


def jpeg_bomb(w: int, h: int) -> bytes:
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    dqt = b"\xff\xdb" + struct.pack(">HB", 67, 0) + bytes(range(1, 65))
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, h, w, 1) + b"\x01\x11\x00"
    return b"\xff\xd8" + app0 + b"\xff\xff" + dqt + sof + b"\xff\xd9"  # with a fill byte before the DQT


def tiff_bomb(w: int, h: int, order: str = "<", *, tile_wh: tuple[int, int] | None = None) -> bytes:
    """An uncompressed 8-bit TIFF in byte order `order` ('<' II, '>' MM), strips or `tile_wh` tiles."""
    magic = b"II*\x00" if order == "<" else b"MM\x00*"
    entries: list[tuple[int, int, int]] = [(256, 4, w), (257, 3 if h < 65536 else 4, h), (258, 3, 8), (259, 3, 1)]
    entries.append((262, 3, 1))
    if tile_wh is None:
        entries += [(273, 4, 0), (277, 3, 1), (278, 4, h), (279, 4, 64)]
    else:
        entries += [(277, 3, 1), (322, 4, tile_wh[0]), (323, 4, tile_wh[1]), (324, 4, 0), (325, 4, 64)]
    data_offset = 8 + 2 + 12 * len(entries) + 4
    ifd = struct.pack(order + "H", len(entries))
    for tag, kind, value in entries:
        value = data_offset if tag in (273, 324) else value
        field = struct.pack(order + "HH", value, 0) if kind == 3 else struct.pack(order + "I", value)
        ifd += struct.pack(order + "HHI", tag, kind, 1) + field
    return magic + struct.pack(order + "I", 8) + ifd + struct.pack(order + "I", 0) + b"\0" * 64


def bmp_bomb(w: int, h: int, *, rle: bool = True) -> bytes:
    """An 8-bit BMP: run-length encoded (one 'end of bitmap' code) or, uncompressed, a truncated body."""
    palette = b"".join(bytes((i, i, i, 0)) for i in range(256))
    pixels = b"\x00\x01" if rle else b"\0" * 64
    offset = 14 + 40 + len(palette)
    info = struct.pack("<IiiHHIIiiII", 40, w, h, 1, 8, 1 if rle else 0, len(pixels), 2835, 2835, 256, 0)
    return b"BM" + struct.pack("<IHHI", offset + len(pixels), 0, 0, offset) + info + palette + pixels


def webp_bomb(w: int, h: int, kind: str = "VP8X") -> bytes:
    """A WebP whose first chunk (VP8X canvas, VP8L or VP8 bitstream header) declares `w` x `h`."""
    if kind == "VP8X":
        payload = struct.pack("<I", 0) + (w - 1).to_bytes(3, "little") + (h - 1).to_bytes(3, "little")
    elif kind == "VP8L":
        payload = b"\x2f" + struct.pack("<I", (w - 1) | (h - 1) << 14) + b"\0" * 16
    else:
        payload = b"\x10\x02\x00\x9d\x01\x2a" + struct.pack("<HH", w, h) + b"\0" * 16
    chunk = kind.encode().ljust(4) + struct.pack("<I", len(payload)) + payload
    return b"RIFF" + struct.pack("<I", 4 + len(chunk)) + b"WEBP" + chunk


def pnm_bomb(w: int, h: int, magic: str = "P5") -> bytes:
    """A PBM/PGM/PPM header with comments between its fields, and a short body."""
    maxval = "" if magic in ("P1", "P4") else "# max\n255\n"
    return f"{magic}\n# made by a test\n{w}  # width\n\t{h}\n{maxval}".encode() + b"\0" * 64


BOMBS: dict[str, Callable[[int, int], bytes]] = {
    "png": png_bomb,
    "jpeg": jpeg_bomb,
    "tiff-le": tiff_bomb,
    "tiff-be": lambda w, h: tiff_bomb(w, h, ">"),
    "bmp-rle": bmp_bomb,
    "bmp-top-down": lambda w, h: bmp_bomb(w, -h, rle=False),
    "webp-vp8x": webp_bomb,
    **{f"pnm-{m}": (lambda w, h, m=m: pnm_bomb(w, h, m)) for m in ("P1", "P2", "P3", "P4", "P5", "P6")},
}

# The file name suffix a scanner gives each kind (the hot folder picks files by suffix).
SUFFIXES: dict[str, str] = {
    "png": ".png",
    "jpeg": ".jpg",
    "tiff-le": ".tif",
    "tiff-be": ".tiff",
    "bmp-rle": ".bmp",
    "bmp-top-down": ".bmp",
    "webp-vp8x": ".webp",
    **{f"pnm-P{n}": (".pbm", ".pgm", ".ppm")[(n - 1) % 3] for n in range(1, 7)},
}
