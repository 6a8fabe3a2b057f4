import os
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest
from tests.support.image_bombs import BOMB_WH, BOMBS, bmp_bomb, jpeg_bomb, png_bomb, tiff_bomb, webp_bomb

from aoi.data import images
from aoi.data.image_header import read_header
from aoi.data.images import MAX_PIXELS, ImageError, UnknownImageFormat, check_declared_size, decode_image, read_image


def _png(img):
    return cv2.imencode(".png", img)[1].tobytes()


def test_decodes_png_and_colour_to_grey():
    img = np.zeros((64, 80, 3), np.uint8)
    out = decode_image(_png(img))
    assert out.shape == (64, 80) and out.dtype == np.uint8


@pytest.mark.parametrize(
    "data,match",
    [
        (b"", "empty"),
        (b"this is not an image at all", "not a decodable image"),
        (_png(np.zeros((100, 100), np.uint8))[:60], "not a decodable image"),
        (_png(np.zeros((8, 8), np.uint8)), "smaller than"),
    ],
)
def test_bad_bytes_get_clear_errors(data, match):
    with pytest.raises(ImageError, match=match):
        decode_image(data, "x")


def test_decompression_bomb_header_is_refused_before_decoding():
    data = bytearray(_png(np.zeros((64, 64), np.uint8)))
    data[16:20] = (100_000).to_bytes(4, "big")
    data[20:24] = (100_000).to_bytes(4, "big")
    with pytest.raises(ImageError, match="exceeds"):
        decode_image(bytes(data), "bomb.png")


def test_missing_file(tmp_path):
    with pytest.raises(ImageError, match="not found"):
        read_image(tmp_path / "nope.png")


# --- one bomb guard for every format ------------------------------------------------------------------


@pytest.mark.parametrize("ext", [".png", ".jpg", ".tiff", ".bmp", ".webp", ".pgm", ".ppm", ".pbm"])
def test_real_files_of_every_format_pass_the_guard_with_their_size(ext):
    image = np.zeros((48, 80), np.uint8)
    image[8:40, 16:64] = 255
    ok, buf = cv2.imencode(ext, cv2.cvtColor(image, cv2.COLOR_GRAY2BGR) if ext == ".ppm" else image)
    assert ok
    assert read_header(buf.tobytes()).size_wh == (80, 48)
    assert decode_image(buf.tobytes(), f"x{ext}").shape == (48, 80)


@pytest.mark.parametrize("kind", sorted(BOMBS))
def test_bomb_headers_of_every_format_are_read_right(kind):
    assert check_declared_size(BOMBS[kind](64, 48), kind).size_wh == (64, 48)


@pytest.mark.parametrize("kind", sorted(BOMBS))
def test_bombs_of_every_format_are_refused_before_decoding(kind, monkeypatch, tmp_path):
    data = BOMBS[kind](*BOMB_WH)
    assert len(data) < 4096

    def no_decode(*_args):
        raise AssertionError("the decoder ran on a bomb")

    monkeypatch.setattr(images.cv2, "imdecode", no_decode)
    started = time.perf_counter()
    with pytest.raises(ImageError, match="declares 30000x30000 pixels, which exceeds"):
        decode_image(data, kind)
    assert time.perf_counter() - started < 0.1
    (tmp_path / "bomb").write_bytes(data)  # the CLI and batch road
    with pytest.raises(ImageError, match="exceeds"):
        read_image(tmp_path / "bomb")


@pytest.mark.parametrize("kind", ["VP8L", "VP8 "])
def test_webp_bitstream_headers_are_read(kind):
    data = webp_bomb(300, 200, kind.strip())
    assert read_header(data).size_wh == (300, 200)
    with pytest.raises(ImageError, match="exceeds"):
        check_declared_size(data, max_pixels=1000)


def test_tiff_tiles_larger_than_the_image_are_refused():
    """A 64x64 TIFF with 8192x8192 tiles made OpenCV fill a 256 MB tile buffer for 4 KB of pixels."""
    assert check_declared_size(tiff_bomb(64, 64, tile_wh=(4096, 4096))).tile_wh == (4096, 4096)
    assert check_declared_size(tiff_bomb(64, 64, tile_wh=(256, 256))).tile_wh == (256, 256)
    assert check_declared_size(tiff_bomb(3000, 2000, ">", tile_wh=(2048, 2048))).size_wh == (3000, 2000)
    for tile in ((8192, 8192), (16, 0), (0, 16)):
        with pytest.raises(ImageError, match="tiles"):
            decode_image(tiff_bomb(64, 64, tile_wh=tile), "tiled.tif")


def _jpeg_sos_first() -> bytes:
    return b"\xff\xd8\xff\xda\x00\x02" + b"\0" * 32


def _tiff_long8_width() -> bytes:
    data = bytearray(tiff_bomb(64, 64))
    data[10 + 2 : 10 + 4] = (16).to_bytes(2, "little")  # ImageWidth as LONG8: not read, so refused
    return bytes(data)


@pytest.mark.parametrize(
    "data,match",
    [
        (b"GIF89a\x10\x00\x10\x00" + b"\0" * 64, "unknown format"),
        (b"P7\nWIDTH 30000\nHEIGHT 30000\nDEPTH 1\nMAXVAL 255\nENDHDR\n", "unknown format"),
        (b"II+\x00\x08\x00\x00\x00" + b"\0" * 64, "unknown format"),  # BigTIFF
        (b"RIFF\x10\x00\x00\x00WAVEfmt " + b"\0" * 32, "unknown format"),
        (png_bomb(64, 64)[:20], "truncated"),
        (png_bomb(0, 64), "invalid size 0x64"),
        (jpeg_bomb(64, 0), "invalid size 64x0"),
        (_jpeg_sos_first(), "no frame header"),
        (b"\xff\xd8\xff" + b"\xff" * 1_000_000, "truncated"),
        (b"\xff\xd8" + b"\xff\xfe\x00\x02" * 5000, "first 1024 segments"),
        (tiff_bomb(64, 64)[:40], "truncated"),
        (_tiff_long8_width(), "not a single byte, short or long"),
        (bmp_bomb(64, 64)[:14] + (20).to_bytes(4, "little") + b"\0" * 64, "unknown 20-byte info header"),
        (bmp_bomb(-64, 64), "invalid size -64x64"),
        (webp_bomb(64, 64)[:12] + b"VP8Z" + b"\0" * 32, "unknown first chunk"),
        (b"P5\n# " + b"#" * 1_000_000 + b"\nabc", "no readable width"),
        (b"P5 64 " + b"9" * 40 + b" 255\n", "no readable height"),
    ],
)
def test_unknown_or_unreadable_headers_are_refused_quickly(data, match):
    started = time.perf_counter()
    with pytest.raises(ImageError, match=f"(?i){match}"):
        decode_image(data, "x")
    assert time.perf_counter() - started < 0.1


def test_unknown_formats_have_their_own_error_class():
    with pytest.raises(UnknownImageFormat, match="expected PNG, JPEG, TIFF, BMP, WebP or PGM/PPM/PBM"):
        decode_image(b"GIF89a" + b"\0" * 64, "x.gif")


def test_opencv_errors_become_image_errors(monkeypatch):
    def refuse(*_args):
        raise cv2.error("pixels <= CV_IO_MAX_IMAGE_PIXELS")

    monkeypatch.setattr(images.cv2, "imdecode", refuse)
    with pytest.raises(ImageError, match="not a decodable image"):
        decode_image(_png(np.zeros((64, 64), np.uint8)), "x.png")


def test_opencv_own_pixel_limit_is_set_before_cv2_loads():
    """Behind the header guard, OpenCV itself refuses what exceeds the panel limit (a second line)."""
    code = (
        "import aoi, cv2, numpy as np, os, sys\n"
        "sys.path.insert(0, '.')\n"
        "from tests.support.image_bombs import bmp_bomb\n"
        "data = np.frombuffer(bmp_bomb(17000, 17000), np.uint8)\n"
        "try:\n"
        "    cv2.imdecode(data, cv2.IMREAD_GRAYSCALE)\n"
        "except cv2.error as exc:\n"
        "    print('refused at', os.environ['OPENCV_IO_MAX_IMAGE_PIXELS'], exc.err)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "OPENCV_IO_MAX_IMAGE_PIXELS"}
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env, cwd=root)
    assert out.stdout.startswith(f"refused at {MAX_PIXELS} "), out.stdout + out.stderr


def test_the_documented_panel_limit_is_the_boundary():
    assert check_declared_size(tiff_bomb(16384, 16384)).size_wh == (16384, 16384)
    with pytest.raises(ImageError, match="exceeds"):
        check_declared_size(tiff_bomb(16385, 16384))
