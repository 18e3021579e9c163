import io

import numpy as np
import pytest
from PIL import Image

from tasks_lib.core.errors import InvalidInput
from tasks_lib.core.images import MAX_IMAGE_BYTES, MAX_IMAGE_SIDE, array_to_image, decode_image, to_model_array


def _png(arr: np.ndarray, mode: str | None = None, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    img = Image.fromarray(arr)
    (img.convert(mode) if mode else img).save(buf, format=fmt)
    return buf.getvalue()


def test_decodes_png_and_jpeg():
    gray = (np.arange(64).reshape(8, 8) * 4).astype(np.uint8)
    assert decode_image(_png(gray)).size == (8, 8)
    assert decode_image(_png(np.dstack([gray] * 3), fmt="JPEG")).mode == "RGB"


@pytest.mark.parametrize(
    ("data", "status", "message"),
    [
        (b"", 400, "empty"),
        (b"hello, I am text", 415, "not an image"),
        (_png(np.random.default_rng(0).integers(0, 256, (32, 32), dtype=np.uint8))[:300], 400, "truncated"),
        (_png(np.zeros((2, 2), np.uint8)), 422, "too small"),
        (_png(np.zeros((8, 8, 3), np.uint8), mode="CMYK", fmt="JPEG"), 422, "mode 'CMYK'"),
        (b"\x89PNG" + b"\0" * (MAX_IMAGE_BYTES + 1), 413, "too large"),
        (_png(np.zeros((8, MAX_IMAGE_SIDE + 1), np.uint8)), 413, "too large: 4097x8"),
    ],
)
def test_bad_images_name_the_problem(data, status, message):
    with pytest.raises(InvalidInput, match=message) as err:
        decode_image(data)
    assert err.value.status == status


@pytest.mark.parametrize("fmt", ["GIF", "BMP", "TIFF", "WEBP"])
def test_other_formats_are_refused_before_any_decoder_runs(fmt):
    buf = io.BytesIO()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(buf, format=fmt)
    with pytest.raises(InvalidInput, match="PNG or JPEG") as err:
        decode_image(buf.getvalue())
    assert err.value.status == 415


def test_a_header_claiming_20000x20000_pixels_is_413_without_decoding():
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 20000, 20000, 8, 0, 0, 0, 0))
    with pytest.raises(InvalidInput, match="too large") as err:
        decode_image(png + chunk(b"IEND", b""))
    assert err.value.status == 413


def test_array_form_checks_shape_range_and_nan():
    assert array_to_image([[0, 255, 0, 0]] * 4).mode == "L"
    assert array_to_image(np.zeros((4, 4, 3)).tolist()).mode == "RGB"
    with pytest.raises(InvalidInput, match="0-255"):
        array_to_image([[0, 300, 0, 0]] * 4)
    with pytest.raises(InvalidInput, match="shape"):
        array_to_image(np.zeros((4, 4, 5)).tolist())
    with pytest.raises(InvalidInput, match="rectangular"):
        array_to_image([[1, 2], [3]])
    with pytest.raises(InvalidInput, match="NaN"):
        array_to_image([[float("nan")] * 4] * 4)


def test_to_model_array_converts_channels_and_size():
    img = Image.fromarray(np.full((20, 30, 3), 200, np.uint8))
    out = to_model_array(img, (8, 8), 1)
    assert out.shape == (8, 8, 1) and out.dtype == np.uint8
