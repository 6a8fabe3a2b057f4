import cv2
import numpy as np
import pytest

from aoi.data.images import ImageError, decode_image, read_image


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
