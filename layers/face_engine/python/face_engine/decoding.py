"""Image bytes to an HxWx3 uint8 BGR array: JPEG, PNG and WebP, checked before they are decoded.

Untrusted uploads are inspected cheaply before OpenCV sees them: the size is read from the header so
a decompression bomb (a tiny file claiming 30000x30000) is refused without allocating, and a file
cut short is refused instead of being decoded into a half-grey image that would still "work".

EXIF orientation: OpenCV's ``IMREAD_COLOR`` and ``IMREAD_REDUCED_COLOR_*`` apply it (JPEG, PNG
``eXIf``, WebP ``EXIF``); ``IMREAD_UNCHANGED`` does not, so the alpha path applies it here.
"""

from __future__ import annotations

import codecs
import math
import struct
from dataclasses import dataclass

import cv2
import numpy as np

from face_engine.errors import ImageDecodeError, ImageTooLargeError

DEFAULT_MAX_BYTES = 15 * 1024 * 1024
DEFAULT_MAX_PIXELS = 40_000_000
#: No camera makes a side this long; a header that claims one is a bomb or garbage.
MAX_SIDE = 20_000
#: Smaller than the smallest face the detector can find.
MIN_SIDE = 16

_SEND = "send a JPEG, PNG or WebP photo"
_SMALLER = "send a smaller photo (for example 1920x1080)"
_COMPLETE = "the upload was cut short or the file is damaged; send the complete original file"

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_IEND = b"\x00\x00\x00\x00IEND"
_JPEG_EOI = b"\xff\xd9"
# SOF0..SOF15 minus DHT (C4), JPG (C8) and DAC (CC), which share the range but carry no frame size.
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# Markers without a length field: TEM and RST0..RST7.
_JPEG_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})
_REDUCTIONS = (
    (8, cv2.IMREAD_REDUCED_COLOR_8),
    (4, cv2.IMREAD_REDUCED_COLOR_4),
    (2, cv2.IMREAD_REDUCED_COLOR_2),
)


@dataclass(frozen=True, slots=True)
class _Header:
    fmt: str
    width: int
    height: int
    has_alpha: bool
    # JPEG: offset of the first SOS marker (-1 when the file ends before it); unused otherwise.
    scan_start: int = -1


def sniff_format(data: bytes | bytearray | memoryview) -> str | None:
    """Name the image format from its magic bytes.

    Parameters
    ----------
    data : bytes
        The start of the file is enough (12 bytes).

    Returns
    -------
    str or None
        ``"jpeg"``, ``"png"``, ``"webp"``, or None for anything else.
    """
    head = bytes(data[:12])
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(_PNG_SIGNATURE):
        return "png"
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "webp"
    return None


def image_size(data: bytes | bytearray | memoryview) -> tuple[int, int]:
    """Read an image's size from its header, without decoding the pixels.

    Parameters
    ----------
    data : bytes
        A JPEG, PNG or WebP file.

    Returns
    -------
    tuple of int
        ``(width, height)`` as stored, before any EXIF rotation.

    Raises
    ------
    ImageDecodeError
        Unsupported format, or a header that cannot be parsed.
    """
    _byte_length(data)  # the same type check and message as decode_image
    header = _read_header(_as_bytes(data))
    return header.width, header.height


def decode_image(
    data: bytes | bytearray | memoryview,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_side: int | None = None,
) -> np.ndarray:
    """Decode an uploaded photo into a C-contiguous HxWx3 uint8 BGR array, upright per EXIF.

    Grey images become 3-channel, 16-bit ones 8-bit, and transparent ones are composited on white.

    Parameters
    ----------
    data : bytes, bytearray or memoryview
        The file's bytes: JPEG, PNG or WebP.
    max_bytes : int
        Refuse larger inputs before parsing anything.
    max_pixels : int
        Refuse images whose header claims more pixels (decompression bombs).
    max_side : int, optional
        The caller needs only this many pixels on the longer side: a JPEG at least twice as large
        is decoded at 1/2, 1/4 or 1/8 scale (the largest that keeps the longer side >= max_side).

    Returns
    -------
    numpy.ndarray
        HxWx3 uint8, BGR.

    Raises
    ------
    ImageTooLargeError
        Over ``max_bytes``, over ``max_pixels``, or a side over ``MAX_SIDE``.
    ImageDecodeError
        Not bytes, empty, unsupported format, corrupt or truncated, or a side under ``MIN_SIDE``.
    """
    if max_side is not None and max_side < 1:
        raise ValueError(
            f"max_side must be a positive number of pixels, got {max_side}: pass e.g. 640 or None"
        )
    size = _byte_length(data)
    if size == 0:
        raise ImageDecodeError(f"image is empty: 0 bytes were received; {_SEND} (the file's raw bytes)")
    if size > max_bytes:
        raise ImageTooLargeError(
            f"image is {_megabytes(size)}, over the {_megabytes(max_bytes)} limit: "
            "send a smaller or more compressed photo (for example a 1920x1080 JPEG)"
        )
    raw = _as_bytes(data)
    header = _read_header(raw)
    _check_dimensions(header, max_pixels)
    _check_complete(raw, header)

    buffer = np.frombuffer(raw, dtype=np.uint8)
    if header.has_alpha:
        # Only alpha needs IMREAD_UNCHANGED: it is slower and ignores EXIF orientation.
        image = _imdecode(buffer, cv2.IMREAD_UNCHANGED, header)
        image = _apply_orientation(_flatten_to_bgr8(image), _exif_orientation(raw, header.fmt))
    else:
        image = _imdecode(buffer, _colour_flag(header, max_side), header)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        # IMREAD_COLOR promises 8-bit BGR; anything else means a decoder we do not expect.
        raise ImageDecodeError(
            f"{_label(header.fmt)} decoded to an unexpected {image.dtype} array of shape {image.shape}: "
            f"re-save the photo as an 8-bit colour JPEG and send it again"
        )
    return np.ascontiguousarray(image)


def _byte_length(data: object) -> int:
    if isinstance(data, bytes | bytearray):
        return len(data)
    if isinstance(data, memoryview):
        return data.nbytes
    hint = " (if it is base64 text, decode it with base64.b64decode first)" if isinstance(data, str) else ""
    raise ImageDecodeError(
        f"image must be bytes, bytearray or memoryview, not {type(data).__name__}: "
        f"pass the file's raw bytes, for example open(path, 'rb').read(){hint}"
    )


def _as_bytes(data: bytes | bytearray | memoryview) -> bytes | bytearray:
    # A memoryview has no rfind and may not be byte-formatted; copying it is cheap next to decoding.
    return data.tobytes() if isinstance(data, memoryview) else data


def _megabytes(size: int) -> str:
    if size >= 1024 * 1024:
        return f"{size / (1024 * 1024):.1f} MB"
    return f"{size / 1024:.1f} KB" if size >= 1024 else f"{size} bytes"


def _megapixels(pixels: int) -> str:
    # Small limits (tests, thumbnails) would otherwise all print as "0.0".
    return f"{pixels / 1e6:.1f}" if pixels >= 100_000 else f"{pixels / 1e6:.2g}"


def _label(fmt: str) -> str:
    return {"jpeg": "JPEG", "png": "PNG", "webp": "WebP"}[fmt]


def _read_header(data: bytes | bytearray) -> _Header:
    fmt = sniff_format(data)
    if fmt == "jpeg":
        return _jpeg_header(data)
    if fmt == "png":
        return _png_header(data)
    if fmt == "webp":
        return _webp_header(data)
    name, hint = _describe_unsupported(data)
    raise ImageDecodeError(f"unsupported image format {name}: {hint}")


def _corrupt(fmt: str, what: str) -> ImageDecodeError:
    return ImageDecodeError(f"corrupt or truncated {_label(fmt)} header ({what}): {_COMPLETE}")


def _jpeg_header(data: bytes | bytearray) -> _Header:
    size: tuple[int, int] | None = None
    pos = 2
    end = len(data)
    while True:
        # libjpeg skips stray bytes before a marker (with a warning), so do the same.
        pos = data.find(b"\xff", pos)
        if pos < 0 or pos + 1 >= end:
            break
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte before a marker
            pos += 1
            continue
        if marker in _JPEG_STANDALONE or marker == 0x00:
            pos += 2
            continue
        if marker == 0xDA:  # SOS: the compressed data starts; the frame header must precede it
            if size is None:
                raise _corrupt("jpeg", f"image data at byte {pos} before any frame header")
            return _Header("jpeg", size[0], size[1], has_alpha=False, scan_start=pos)
        if marker in (0xD8, 0xD9):
            raise _corrupt("jpeg", f"unexpected {'start' if marker == 0xD8 else 'end'} marker at byte {pos}")
        if pos + 4 > end:
            break
        length = (data[pos + 2] << 8) | data[pos + 3]
        if length < 2:
            raise _corrupt("jpeg", f"segment length {length} at byte {pos}")
        if marker in _JPEG_SOF and size is None:
            if pos + 9 > end or length < 8:
                break
            height, width = struct.unpack_from(">HH", data, pos + 5)
            size = (width, height)
        pos += 2 + length
    if size is None:
        raise _corrupt("jpeg", f"no frame header in the first {end} bytes")
    # The frame size is known but the file ends before the compressed data: _check_complete says so.
    return _Header("jpeg", size[0], size[1], has_alpha=False, scan_start=-1)


def _png_header(data: bytes | bytearray) -> _Header:
    if len(data) < 33 or data[12:16] != b"IHDR":
        raise _corrupt("png", "no IHDR chunk right after the signature")
    width, height, _depth, colour_type = struct.unpack_from(">IIBB", data, 16)
    # Grey+alpha and RGBA carry alpha; palette and RGB images can through a tRNS chunk (grey+tRNS is
    # returned without alpha by OpenCV anyway). tRNS must precede IDAT, so the walk is short.
    has_alpha = colour_type in (4, 6) or (colour_type in (2, 3) and _png_has_chunk_before_idat(data, b"tRNS"))
    return _Header("png", width, height, has_alpha=has_alpha)


def _png_chunks(data: bytes | bytearray) -> list[tuple[bytes, int, int]]:
    """(type, data offset, data length) of every whole chunk, in order."""
    chunks: list[tuple[bytes, int, int]] = []
    pos = 8
    while pos + 8 <= len(data):
        length, kind = struct.unpack_from(">I4s", data, pos)
        if pos + 12 + length > len(data):
            break
        chunks.append((kind, pos + 8, length))
        if kind == b"IEND":
            break
        pos += 12 + length
    return chunks


def _png_has_chunk_before_idat(data: bytes | bytearray, wanted: bytes) -> bool:
    pos = 8
    while pos + 8 <= len(data):
        length, kind = struct.unpack_from(">I4s", data, pos)
        if kind == wanted:
            return True
        if kind in (b"IDAT", b"IEND"):
            return False
        pos += 12 + length
    return False


def _webp_header(data: bytes | bytearray) -> _Header:
    if len(data) < 30:
        raise _corrupt("webp", f"only {len(data)} bytes")
    chunk = bytes(data[12:16])
    if chunk == b"VP8 ":
        # Lossy: a 3-byte frame tag, the start code 9D 01 2A, then 14-bit width and height.
        if data[23:26] != b"\x9d\x01\x2a":
            raise _corrupt("webp", "no VP8 key-frame start code")
        width, height = struct.unpack_from("<HH", data, 26)
        return _Header("webp", width & 0x3FFF, height & 0x3FFF, has_alpha=False)
    if chunk == b"VP8L":
        # Lossless: signature 0x2F, then 14-bit width-1, 14-bit height-1 and the alpha_is_used bit.
        if data[20] != 0x2F:
            raise _corrupt("webp", "no VP8L signature")
        (bits,) = struct.unpack_from("<I", data, 21)
        width = (bits & 0x3FFF) + 1
        height = ((bits >> 14) & 0x3FFF) + 1
        return _Header("webp", width, height, has_alpha=bool(bits & (1 << 28)))
    if chunk == b"VP8X":
        # Extended: flags (0x10 = alpha), 3 reserved bytes, 24-bit canvas width-1 and height-1.
        flags = data[20]
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return _Header("webp", width, height, has_alpha=bool(flags & 0x10))
    raise _corrupt("webp", f"unknown first chunk {chunk!r}")


def _check_dimensions(header: _Header, max_pixels: int) -> None:
    width, height = header.width, header.height
    pixels = width * height
    if pixels > max_pixels:
        raise ImageTooLargeError(
            f"image is {width}x{height} = {_megapixels(pixels)} MP, over the {max_pixels / 1e6:g} MP limit: "
            f"{_SMALLER}"
        )
    if max(width, height) > MAX_SIDE:
        raise ImageTooLargeError(
            f"image is {width}x{height}, a side over the {MAX_SIDE} px limit (no camera makes that; it may "
            f"be a decompression bomb): {_SMALLER}"
        )
    if min(width, height) < MIN_SIDE:
        raise ImageDecodeError(
            f"image is {width}x{height}, under the {MIN_SIDE} px minimum side and too small to hold a face: "
            "send the original photo, not a thumbnail"
        )


def _check_complete(data: bytes | bytearray, header: _Header) -> None:
    # A truncated file decodes "successfully" into a partly grey image, so demand the end marker.
    if header.fmt == "jpeg":
        # Entropy-coded data never contains FF D9 (FF is stuffed), so any FF D9 after the first SOS
        # is the end of the image; bytes after it (camera trailers, motion-photo video) are allowed.
        if header.scan_start < 0 or data.rfind(_JPEG_EOI, header.scan_start) < 0:
            raise ImageDecodeError(f"JPEG is truncated (no end-of-image marker FF D9): {_COMPLETE}")
    elif header.fmt == "png":
        if data.rfind(_PNG_IEND, 33) < 0:
            raise ImageDecodeError(f"PNG is truncated (no IEND chunk): {_COMPLETE}")
    else:
        (riff_size,) = struct.unpack_from("<I", data, 4)
        if riff_size + 8 > len(data):
            raise ImageDecodeError(
                f"WebP is truncated: its RIFF header says {riff_size + 8} bytes but {len(data)} arrived: "
                f"{_COMPLETE}"
            )


def _colour_flag(header: _Header, max_side: int | None) -> int:
    longer = max(header.width, header.height)
    # Only libjpeg scales while decoding (DCT scaling); other formats would decode fully and resize.
    if max_side is None or header.fmt != "jpeg" or longer < 2 * max_side:
        return int(cv2.IMREAD_COLOR)
    for factor, flag in _REDUCTIONS:
        if math.ceil(longer / factor) >= max_side:  # libjpeg rounds the scaled size up
            return int(flag)
    return int(cv2.IMREAD_COLOR)  # pragma: no cover - factor 2 always fits when longer >= 2*max_side


def _imdecode(buffer: np.ndarray, flag: int, header: _Header) -> np.ndarray:
    try:
        image = cv2.imdecode(buffer, flag)
    except cv2.error as exc:
        raise ImageDecodeError(
            f"{_label(header.fmt)} could not be decoded ({str(exc).strip().splitlines()[-1]}): {_COMPLETE}"
        ) from exc
    if image is None:
        raise ImageDecodeError(f"{_label(header.fmt)} could not be decoded (corrupt image data): {_COMPLETE}")
    return np.asarray(image)


def _flatten_to_bgr8(image: np.ndarray) -> np.ndarray:
    """An IMREAD_UNCHANGED result (grey, BGR or BGRA; 8 or 16 bit) as 8-bit BGR on white."""
    scale = 65535.0 if image.dtype == np.uint16 else 255.0
    if image.ndim == 3 and image.shape[2] == 4:
        alpha = image[..., 3:].astype(np.float32) * np.float32(1.0 / scale)
        colour = image[..., :3].astype(np.float32) * np.float32(255.0 / scale)
        # Over white: 255 - (255 - c) * a, rounded.
        flat = np.float32(255.5) - (np.float32(255.0) - colour) * alpha
        return flat.astype(np.uint8)
    if image.dtype != np.uint8:
        image = (image.astype(np.float32) * np.float32(255.0 / scale) + np.float32(0.5)).astype(np.uint8)
    if image.ndim == 2 or image.shape[2] == 1:
        return np.asarray(cv2.cvtColor(image, cv2.COLOR_GRAY2BGR))
    return image


def _exif_orientation(data: bytes | bytearray, fmt: str) -> int:
    """The EXIF Orientation (1..8) of a PNG (``eXIf``) or WebP (``EXIF`` chunk); 1 when absent."""
    tiff: bytes | None = None
    if fmt == "png":
        for kind, start, length in _png_chunks(data):
            if kind == b"eXIf":
                tiff = bytes(data[start : start + length])
                break
    elif fmt == "webp" and data[12:16] == b"VP8X":
        pos = 12
        while pos + 8 <= len(data):
            kind, length = struct.unpack_from("<4sI", data, pos)
            if kind == b"EXIF":
                tiff = bytes(data[pos + 8 : pos + 8 + length])
                break
            pos += 8 + length + (length & 1)  # RIFF chunks are padded to even sizes
    if tiff is None:
        return 1
    return _tiff_orientation(tiff.removeprefix(b"Exif\x00\x00"))


def _tiff_orientation(tiff: bytes) -> int:
    if len(tiff) < 8 or tiff[:4] not in (b"II*\x00", b"MM\x00*"):
        return 1
    order = "<" if tiff[:2] == b"II" else ">"
    (ifd,) = struct.unpack_from(order + "I", tiff, 4)
    if ifd + 2 > len(tiff):
        return 1
    (count,) = struct.unpack_from(order + "H", tiff, ifd)
    for index in range(count):
        entry = ifd + 2 + 12 * index
        if entry + 12 > len(tiff):
            break
        tag, kind, _count, value = struct.unpack_from(order + "HHIH", tiff, entry)
        if tag == 0x0112 and kind == 3:  # Orientation, SHORT
            return int(value) if 1 <= value <= 8 else 1
    return 1


def _apply_orientation(image: np.ndarray, orientation: int) -> np.ndarray:
    # The same transforms as OpenCV's ExifTransform, so both decode paths agree.
    if orientation == 2:
        return image[:, ::-1]
    if orientation == 3:
        return image[::-1, ::-1]
    if orientation == 4:
        return image[::-1]
    transposed = image.swapaxes(0, 1)
    if orientation == 5:
        return transposed
    if orientation == 6:
        return transposed[:, ::-1]
    if orientation == 7:
        return transposed[::-1, ::-1]
    if orientation == 8:
        return transposed[::-1]
    return image


def _describe_unsupported(data: bytes | bytearray) -> tuple[str, str]:
    """A name for what the bytes look like and what to do instead."""
    head = bytes(data[:512])
    magic: tuple[tuple[bytes, str], ...] = (
        (b"GIF87a", "GIF"),
        (b"GIF89a", "GIF"),
        (b"II*\x00", "TIFF (or a camera RAW file)"),
        (b"MM\x00*", "TIFF (or a camera RAW file)"),
        (b"%PDF", "PDF"),
        (b"8BPS", "PSD (Photoshop)"),
        (b"\x00\x00\x01\x00", "ICO"),
        (b"\xff\x0a", "JPEG XL"),
        (b"\x00\x00\x00\x0cJXL ", "JPEG XL"),
        (b"\x00\x00\x00\x0cjP  ", "JPEG 2000"),
        (b"PK\x03\x04", "ZIP"),
        (b"\x1f\x8b", "gzip"),
    )
    for prefix, name in magic:
        if head.startswith(prefix):
            return name, _SEND
    if head.startswith(b"BM") and len(head) >= 18 and head[14] in (12, 40, 52, 56, 64, 108, 124):
        return "BMP", _SEND
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in (b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1"):
            return "HEIC/HEIF", f"{_SEND} (convert it, or set the iPhone camera to 'Most Compatible')"
        if brand in (b"avif", b"avis"):
            return "AVIF", _SEND
        return f"MP4/QuickTime video ({_fourcc(brand)})", f"{_SEND}, not a video"
    if head.startswith(b"RIFF"):
        return f"RIFF/{_fourcc(head[8:12])} (not WebP)", _SEND
    return _describe_text(head)


def _fourcc(code: bytes) -> str:
    # Garbage must not put control characters into a message that ends up in logs and API answers.
    return "".join(chr(byte) if 0x20 < byte < 0x7F else "?" for byte in code)


def _describe_text(head: bytes) -> tuple[str, str]:
    text_hint = f"the upload sent text instead of the file's bytes; {_SEND}"
    try:
        # final=False: the 512-byte cut may split a multi-byte character.
        text = codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        text = None
    if text is None or not all(ch.isprintable() or ch in "\t\r\n" for ch in text):
        shown = " ".join(f"{byte:02X}" for byte in head[:8])
        return f"(unrecognised, first bytes {shown})", _SEND
    stripped = text.removeprefix("\ufeff").lstrip()
    lowered = stripped[:256].lower()
    base64_hint = f"decode the base64 first and send the raw bytes; {_SEND}"
    if lowered.startswith("data:"):
        return "data: URL (base64 text)", base64_hint
    if stripped.startswith(("/9j/", "iVBORw0KGgo", "UklGR")):
        return "base64 text", base64_hint
    if stripped.startswith(("{", "[")):
        return "JSON (text, not an image)", text_hint
    if lowered.startswith(("<!doctype html", "<html")):
        return "HTML (text, not an image)", text_hint
    if lowered.startswith("<svg") or (lowered.startswith("<?xml") and "<svg" in lowered):
        return "SVG", f"{_SEND} (export the SVG as PNG)"
    if lowered.startswith("<"):
        return "XML (text, not an image)", text_hint
    return "plain text (not an image)", text_hint
