"""Unit tests of face_engine.decoding: every image is synthesised here with cv2.imencode."""

from __future__ import annotations

import struct
import zlib

import cv2
import numpy as np
import pytest

from face_engine.decoding import MAX_SIDE, decode_image, image_size, sniff_format
from face_engine.errors import ImageDecodeError, ImageTooLargeError

RED = (0, 0, 255)  # BGR


def _photo(height: int = 48, width: int = 64) -> np.ndarray:
    """A smooth BGR gradient (JPEG keeps it close) with a pure red block marking the top-left corner."""
    rows, cols = np.mgrid[0:height, 0:width]
    image = np.stack([cols * 200 // width, rows * 200 // height, np.full_like(cols, 60)], axis=-1)
    image = image.astype(np.uint8)
    block = max(8, min(height, width) // 4)
    image[:block, :block] = RED
    return image


def _encode(ext: str, image: np.ndarray, params: tuple[int, ...] = ()) -> bytes:
    ok, encoded = cv2.imencode(ext, image, list(params))
    assert ok
    return bytes(encoded.tobytes())


def _jpeg(image: np.ndarray | None = None, quality: int = 95) -> bytes:
    return _encode(".jpg", _photo() if image is None else image, (cv2.IMWRITE_JPEG_QUALITY, quality))


def _webp(image: np.ndarray, lossless: bool = False) -> bytes:
    return _encode(".webp", image, (cv2.IMWRITE_WEBP_QUALITY, 101 if lossless else 90))


def _red_mask(image: np.ndarray) -> np.ndarray:
    return (image[..., 2] > 200) & (image[..., 1] < 80) & (image[..., 0] < 80)


def _red_corner(image: np.ndarray) -> str:
    """Which corner the red block is in, e.g. "top-left"."""
    rows, cols = np.nonzero(_red_mask(image))
    vertical = "top" if rows.mean() < image.shape[0] / 2 else "bottom"
    horizontal = "left" if cols.mean() < image.shape[1] / 2 else "right"
    return f"{vertical}-{horizontal}"


def _tiff_orientation(orientation: int, byte_order: str) -> bytes:
    """A minimal TIFF/EXIF block: header, one IFD with one entry (0x0112 Orientation, SHORT, 1)."""
    order = "<" if byte_order == "II" else ">"
    magic = b"II*\x00" if byte_order == "II" else b"MM\x00*"
    entry = struct.pack(order + "HHIHH", 0x0112, 3, 1, orientation, 0)
    return (
        magic
        + struct.pack(order + "I", 8)
        + struct.pack(order + "H", 1)
        + entry
        + struct.pack(order + "I", 0)
    )


def _with_exif_app1(jpeg: bytes, orientation: int, byte_order: str = "II") -> bytes:
    payload = b"Exif\x00\x00" + _tiff_orientation(orientation, byte_order)
    app1 = b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload
    return jpeg[:2] + app1 + jpeg[2:]  # right after SOI


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def _with_png_exif(png: bytes, orientation: int) -> bytes:
    return png[:33] + _png_chunk(b"eXIf", _tiff_orientation(orientation, "MM")) + png[33:]  # after IHDR


def _patch_jpeg_size(jpeg: bytes, width: int, height: int) -> bytes:
    sof = jpeg.index(b"\xff\xc0")
    return jpeg[: sof + 5] + struct.pack(">HH", height, width) + jpeg[sof + 9 :]


def _patch_png_size(png: bytes, width: int, height: int) -> bytes:
    ihdr = b"IHDR" + struct.pack(">II", width, height) + png[24:29]
    return png[:12] + ihdr + struct.pack(">I", zlib.crc32(ihdr)) + png[33:]


def _patch_webp_vp8x_size(webp: bytes, width: int, height: int) -> bytes:
    assert webp[12:16] == b"VP8X"
    return webp[:24] + (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little") + webp[30:]


def _rgba(alpha: int) -> np.ndarray:
    image = np.dstack([_photo(), np.full((48, 64), alpha, np.uint8)])
    image[30:, 40:, 3] = 0  # a transparent bottom-right block
    return image


FORMATS = {
    "jpeg": _jpeg,
    "png": lambda image: _encode(".png", image),
    "webp-lossy": _webp,
    "webp-lossless": lambda image: _webp(image, lossless=True),
}


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_decode_image_round_trips_shape_dtype_and_bgr_order(fmt):
    # given
    data = FORMATS[fmt](_photo())

    # when
    image = decode_image(data)

    # then
    assert image.shape == (48, 64, 3)
    assert image.dtype == np.uint8
    assert image.flags.c_contiguous
    red = image[2:10, 2:10].reshape(-1, 3)
    assert red[:, 2].min() > 230 and red[:, :2].max() < 30
    assert _red_corner(image) == "top-left"


@pytest.mark.parametrize("wrap", [bytes, bytearray, memoryview], ids=["bytes", "bytearray", "memoryview"])
def test_decode_image_accepts_bytes_like_inputs(wrap):
    # given
    data = wrap(_jpeg())

    # when
    image = decode_image(data)

    # then
    assert image.shape == (48, 64, 3)


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [("jpeg", "jpeg"), ("png", "png"), ("webp-lossy", "webp"), ("webp-lossless", "webp")],
)
def test_sniff_format_names_supported_formats(fmt, expected):
    # given
    data = FORMATS[fmt](_photo())

    # when
    found = sniff_format(data)

    # then
    assert found == expected


@pytest.mark.parametrize("data", [b"", b"GIF89a", b"RIFF\x00\x00\x00\x00WAVE", b"\xff\xd8", b"hello"])
def test_sniff_format_returns_none_for_anything_else(data):
    # given / when
    found = sniff_format(data)

    # then
    assert found is None


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(_jpeg(_photo(37, 91)), id="jpeg"),
        pytest.param(_encode(".png", _photo(37, 91)), id="png"),
        pytest.param(_webp(_photo(37, 91)), id="webp-vp8"),
        pytest.param(_webp(_photo(37, 91), lossless=True), id="webp-vp8l"),
        pytest.param(_webp(np.dstack([_photo(37, 91), np.full((37, 91), 128, np.uint8)])), id="webp-vp8x"),
    ],
)
def test_image_size_reads_width_and_height_from_the_header(data):
    # given: a 91x37 image in each container

    # when
    size = image_size(data)

    # then
    assert size == (91, 37)


def test_image_size_rejects_unsupported_format():
    # given
    data = b"GIF89a" + bytes(100)

    # when / then
    with pytest.raises(ImageDecodeError, match="unsupported image format GIF"):
        image_size(data)


@pytest.mark.parametrize(
    "data", [b"", bytearray(), memoryview(b"")], ids=["bytes", "bytearray", "memoryview"]
)
def test_decode_image_rejects_empty_input(data):
    # given: no bytes at all

    # when / then
    with pytest.raises(ImageDecodeError, match=r"image is empty: .*send a JPEG, PNG or WebP"):
        decode_image(data)


@pytest.mark.parametrize(
    ("value", "type_name"),
    [
        ("/9j/4AAQSkZJRg==", "str"),
        (None, "NoneType"),
        ([255, 216], "list"),
        (np.zeros(8, np.uint8), "ndarray"),
    ],
)
def test_decode_image_rejects_non_bytes_argument(value, type_name):
    # given: something that is not bytes

    # when / then
    with pytest.raises(
        ImageDecodeError, match=rf"must be bytes, bytearray or memoryview, not {type_name}: pass"
    ):
        decode_image(value)


def test_decode_image_suggests_base64_decoding_for_a_str():
    # given
    value = "/9j/4AAQSkZJRg=="

    # when / then
    with pytest.raises(ImageDecodeError, match=r"base64\.b64decode"):
        decode_image(value)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("data", "name"),
    [
        pytest.param(b"just some text, not a photo\n", "plain text", id="text"),
        pytest.param(b'{"image": "not here"}', "JSON", id="json"),
        pytest.param(b"\n<!DOCTYPE html><html><body>Not found</body></html>", "HTML", id="html"),
        pytest.param(b"GIF89a\x40\x00\x30\x00" + bytes(64), "GIF", id="gif"),
        pytest.param(_encode(".bmp", _photo()), "BMP", id="bmp"),
        pytest.param(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n", "PDF", id="pdf"),
        pytest.param(_encode(".tiff", _photo()), "TIFF", id="tiff"),
        pytest.param(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(64), "HEIC/HEIF", id="heic"),
        pytest.param(b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + bytes(64), "video", id="mp4"),
        pytest.param(b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(64), "RIFF/WAVE", id="wav"),
        pytest.param(b"/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAAIBAQEBAQ==", "base64", id="base64-jpeg"),
        pytest.param(b"data:image/jpeg;base64,/9j/4AAQ", "data: URL", id="data-url"),
        pytest.param(bytes(range(200, 256)) * 4, "unrecognised, first bytes C8 C9", id="binary"),
    ],
)
def test_decode_image_names_unsupported_formats(data, name):
    # given: bytes that are not JPEG, PNG or WebP

    # when / then
    with pytest.raises(ImageDecodeError, match=rf"unsupported image format .*{name}.*: .*(send|decode)"):
        decode_image(data)


@pytest.mark.parametrize("fraction", [0.5, 0.9])
def test_decode_image_rejects_truncated_jpeg(fraction):
    # given: a JPEG cut short inside its compressed data
    data = _jpeg(_photo(240, 320))
    cut = data[: int(len(data) * fraction)]

    # when / then
    with pytest.raises(ImageDecodeError, match=r"JPEG is truncated .*send the complete"):
        decode_image(cut)


def test_decode_image_rejects_jpeg_cut_before_the_image_data():
    # given: the header up to (not including) the start of scan
    data = _jpeg()
    cut = data[: data.index(b"\xff\xda")]

    # when / then
    with pytest.raises(ImageDecodeError, match="JPEG is truncated"):
        decode_image(cut)


def test_decode_image_rejects_jpeg_without_frame_header():
    # given: a start-of-image marker, one APP0 segment, then the file ends
    data = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"

    # when / then
    with pytest.raises(ImageDecodeError, match=r"corrupt or truncated JPEG header .*send the complete"):
        decode_image(data)


def test_decode_image_accepts_trailing_bytes_after_jpeg_end_marker():
    # given: some cameras append data after FF D9
    data = _jpeg() + b"\x00" * 4096 + b"CAMERA TRAILER"

    # when
    image = decode_image(data)

    # then
    assert image.shape == (48, 64, 3)


@pytest.mark.parametrize("fraction", [0.5, 0.9, 0.99])
def test_decode_image_rejects_truncated_png(fraction):
    # given
    data = _encode(".png", _photo(240, 320))
    cut = data[: int(len(data) * fraction)]

    # when / then
    with pytest.raises(ImageDecodeError, match=r"PNG is truncated .*send the complete"):
        decode_image(cut)


@pytest.mark.parametrize("lossless", [False, True], ids=["lossy", "lossless"])
def test_decode_image_rejects_truncated_webp(lossless):
    # given
    data = _webp(_photo(240, 320), lossless=lossless)
    cut = data[: len(data) // 2]

    # when / then
    with pytest.raises(ImageDecodeError, match=r"WebP is truncated: .*says \d+ bytes but \d+ arrived"):
        decode_image(cut)


def test_decode_image_rejects_png_with_corrupt_pixel_data():
    # given: a complete PNG whose compressed pixel data is garbage
    data = bytearray(_encode(".png", _photo()))
    start = data.index(b"IDAT") + 4
    data[start : start + 16] = b"\x55" * 16

    # when / then
    with pytest.raises(ImageDecodeError, match=r"PNG could not be decoded .*send the complete"):
        decode_image(bytes(data))


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(_patch_jpeg_size(_jpeg(), 30000, 30000), id="jpeg"),
        pytest.param(_patch_png_size(_encode(".png", _photo()), 30000, 30000), id="png"),
        pytest.param(_patch_webp_vp8x_size(_webp(_rgba(255)), 30000, 30000), id="webp"),
    ],
)
def test_decode_image_rejects_decompression_bomb_without_decoding(data, monkeypatch):
    # given: a tiny file whose header claims 30000x30000, and a decoder that must not be reached
    def fail(*_args):
        raise AssertionError("cv2.imdecode was called")

    monkeypatch.setattr(cv2, "imdecode", fail)

    # when / then
    with pytest.raises(
        ImageTooLargeError, match=r"30000x30000 = 900\.0 MP, over the 40 MP limit: send a smaller"
    ):
        decode_image(data)


def test_decode_image_rejects_a_side_over_the_limit():
    # given: few pixels in total, but an absurd width
    data = _patch_png_size(_encode(".png", _photo()), MAX_SIDE + 1, 100)

    # when / then
    with pytest.raises(ImageTooLargeError, match=rf"{MAX_SIDE + 1}x100, a side over the {MAX_SIDE} px limit"):
        decode_image(data)


def test_decode_image_honours_max_pixels():
    # given
    data = _jpeg(_photo(100, 200))

    # when / then
    with pytest.raises(
        ImageTooLargeError, match=r"200x100 = 0\.02 MP, over the 0\.01 MP limit: send a smaller"
    ):
        decode_image(data, max_pixels=10_000)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(_patch_jpeg_size(_jpeg(), 5, 5), id="jpeg"),
        pytest.param(_patch_png_size(_encode(".png", _photo()), 5, 5), id="png"),
        pytest.param(_patch_webp_vp8x_size(_webp(_rgba(255)), 5, 5), id="webp"),
    ],
)
def test_decode_image_rejects_too_small_image(data):
    # given: a header that claims 5x5

    # when / then
    with pytest.raises(ImageDecodeError, match=r"5x5, under the 16 px minimum side .*the original photo"):
        decode_image(data)


def test_decode_image_rejects_over_max_bytes_before_parsing():
    # given: bytes that are not even an image, but too many of them
    data = b"\x00" * 2048

    # when / then
    with pytest.raises(ImageTooLargeError, match=r"image is 2\.0 KB, over the 1\.0 KB limit: send a smaller"):
        decode_image(data, max_bytes=1024)


def test_decode_image_rejects_non_positive_max_side():
    # given
    data = _jpeg()

    # when / then
    with pytest.raises(ValueError, match="max_side must be a positive number"):
        decode_image(data, max_side=0)


@pytest.mark.parametrize("ext", [".png", ".jpg", ".webp"])
def test_decode_image_expands_grayscale_to_three_channels(ext):
    # given
    gray = cv2.cvtColor(_photo(), cv2.COLOR_BGR2GRAY)
    data = _encode(ext, gray)

    # when
    image = decode_image(data)

    # then
    assert image.shape == (48, 64, 3)
    assert np.array_equal(image[..., 0], image[..., 1]) and np.array_equal(image[..., 1], image[..., 2])


@pytest.mark.parametrize("channels", [1, 3])
def test_decode_image_converts_16_bit_png_to_8_bit(channels):
    # given: v * 257 maps 8-bit v onto the full 16-bit range
    source = _photo() if channels == 3 else cv2.cvtColor(_photo(), cv2.COLOR_BGR2GRAY)
    data = _encode(".png", source.astype(np.uint16) * 257)
    assert data[24] == 16  # IHDR bit depth

    # when
    image = decode_image(data)

    # then
    assert image.dtype == np.uint8
    expected = source if channels == 3 else cv2.cvtColor(source, cv2.COLOR_GRAY2BGR)
    assert np.array_equal(image, expected)


@pytest.mark.parametrize(
    ("fmt", "tolerance"),
    [("png", 0), ("png-16", 0), ("webp-lossless", 0), ("webp-lossy", 4)],
)
def test_decode_image_composites_transparency_on_white(fmt, tolerance):
    # given: opaque photo, a transparent bottom-right block
    rgba = _rgba(255)
    data = {
        "png": lambda: _encode(".png", rgba),
        "png-16": lambda: _encode(".png", rgba.astype(np.uint16) * 257),
        "webp-lossless": lambda: _webp(rgba, lossless=True),
        "webp-lossy": lambda: _webp(rgba),
    }[fmt]()

    # when
    image = decode_image(data)

    # then
    assert image.shape == (48, 64, 3)
    assert image[34:, 44:].min() >= 255 - 10 * tolerance  # white where transparent, not black
    assert np.abs(image[:28, :38].astype(int) - rgba[:28, :38, :3]).mean() <= tolerance
    assert _red_corner(image) == "top-left"


def test_decode_image_blends_half_transparent_pixels_with_white():
    # given: pure red at alpha 128
    rgba = np.zeros((32, 32, 4), np.uint8)
    rgba[...] = (0, 0, 255, 128)
    data = _encode(".png", rgba)

    # when
    image = decode_image(data)

    # then: 255 - (255 - c) * 128/255
    assert tuple(image[0, 0]) == (127, 127, 255)


@pytest.mark.parametrize(
    ("orientation", "shape", "corner"),
    [
        (1, (48, 64, 3), "top-left"),
        (3, (48, 64, 3), "bottom-right"),
        (6, (64, 48, 3), "top-right"),
        (8, (64, 48, 3), "bottom-left"),
    ],
)
@pytest.mark.parametrize("byte_order", ["II", "MM"])
def test_decode_image_applies_jpeg_exif_orientation(orientation, shape, corner, byte_order):
    # given: a 64x48 JPEG marked top-left, with an EXIF APP1 Orientation tag
    data = _with_exif_app1(_jpeg(), orientation, byte_order)

    # when
    image = decode_image(data)

    # then: 6 is rotate 90 clockwise, 8 is 90 counter-clockwise, 3 is 180
    assert image.shape == shape
    assert _red_corner(image) == corner


@pytest.mark.parametrize("orientation", range(1, 9))
def test_decode_image_orients_alpha_images_like_opaque_ones(orientation):
    # given: the same PNG with and without an (opaque) alpha channel, both with an eXIf chunk;
    # OpenCV orients the opaque one itself, the alpha one is decoded unchanged and oriented by us
    photo = _photo()
    opaque = _with_png_exif(_encode(".png", photo), orientation)
    with_alpha = _with_png_exif(
        _encode(".png", np.dstack([photo, np.full((48, 64), 255, np.uint8)])), orientation
    )

    # when
    expected = decode_image(opaque)
    image = decode_image(with_alpha)

    # then
    assert image.flags.c_contiguous
    assert np.array_equal(image, expected)


def test_decode_image_orients_webp_with_alpha_from_its_exif_chunk():
    # given: an extended (VP8X) lossy WebP with alpha, plus an EXIF chunk with Orientation 6
    webp = _webp(_rgba(255))
    exif = _tiff_orientation(6, "II")
    chunk = b"EXIF" + struct.pack("<I", len(exif)) + exif + b"\x00" * (len(exif) % 2)
    body = webp[12:20] + bytes([webp[20] | 0x08]) + webp[21:] + chunk
    data = b"RIFF" + struct.pack("<I", len(body) + 4) + b"WEBP" + body

    # when
    image = decode_image(data)

    # then
    assert image.shape == (64, 48, 3)
    assert _red_corner(image) == "top-right"


@pytest.mark.parametrize(
    ("width", "height", "max_side", "shape"),
    [
        (4000, 3000, 640, (750, 1000, 3)),  # 1/4; 1/8 would give 500 < 640
        (4000, 3000, 300, (375, 500, 3)),  # 1/8
        (1280, 720, 640, (360, 640, 3)),  # 1/2
        (1283, 723, 640, (362, 642, 3)),  # libjpeg rounds up
        (1279, 720, 640, (720, 1279, 3)),  # under 2 * max_side: decoded in full
        (1280, 720, None, (720, 1280, 3)),
    ],
)
def test_decode_image_reduces_large_jpeg_to_max_side(width, height, max_side, shape):
    # given
    data = _jpeg(_photo(height, width), quality=80)

    # when
    image = decode_image(data, max_side=max_side)

    # then
    assert image.shape == shape
    assert image.flags.c_contiguous
    assert _red_corner(image) == "top-left"


@pytest.mark.parametrize(
    ("orientation", "corner"), [(6, "top-right"), (8, "bottom-left"), (3, "bottom-right")]
)
def test_decode_image_reduced_jpeg_keeps_exif_orientation(orientation, corner):
    # given: a 1600x1200 photo with EXIF orientation, reduced 1/4 for max_side=400
    data = _with_exif_app1(_jpeg(_photo(1200, 1600), quality=80), orientation)

    # when
    reduced = decode_image(data, max_side=400)
    full = decode_image(data)

    # then: the same orientation as the full decode, at a quarter of the size
    assert full.shape[:2] == (reduced.shape[0] * 4, reduced.shape[1] * 4)
    assert _red_corner(reduced) == _red_corner(full) == corner


def test_decode_image_does_not_reduce_png():
    # given: only JPEG can be scaled while decoding
    data = _encode(".png", _photo(720, 1280))

    # when
    image = decode_image(data, max_side=320)

    # then
    assert image.shape == (720, 1280, 3)
