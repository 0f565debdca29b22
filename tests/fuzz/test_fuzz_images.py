"""Hostile image bodies on every route that decodes a photo: refused with a clear 4xx, in bounded memory.

Routes: the edge scan (checkpoint camera) and sighting (venue camera) routes, raw bytes and base64
JSON, and the two registration routes of the management API (participant, VIP member; base64
JSON). Bodies:

- a fixed corpus: empty, zeros, random bytes, other formats (GIF, TIFF, BMP, PDF, SVG, HTML, HEIC,
  JSON, text), decompression bombs (a PNG whose IHDR claims 65535x65535, a complete 6300x6300 PNG of
  128 KB, a JPEG and a PNG claiming 6000x6000 over a few bytes of data, a lossless WebP of 4000x4000,
  a progressive JPEG with thousands of scans), a Content-Type that does not match the body, and
  base64 JSON variants (data: URL, URL-safe alphabet, no padding, line breaks, not a string);
- seeded hypothesis mutations of a real face photo as JPEG, progressive JPEG, PNG and WebP:
  truncated, bits flipped, bytes overwritten, segments repeated, header sizes changed.

Every answer must be a 2xx (a mutation that still decodes) or a clear refusal, 400, 413, 415 or
422 as ``{"Code", "Message"}``; the corpus, which holds no usable photo, must be refused. No 5xx, an
answer within the timeout, and no request may raise the process's peak memory by more than the
route's bound (the whole stack runs in this process: the server's decode is measured here).
"""

from __future__ import annotations

import base64
import itertools
import json
import random
import re
import struct
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import cv2
import numpy as np
import pytest
import requests
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from eventface.local.fuzzing import load_profile

pytestmark = pytest.mark.fuzz
PROFILE = load_profile()
MIB: Final = 1024 * 1024
#: Refusals a photo may get: malformed request, too large, wrong media type, not a usable image.
REFUSALS: Final = frozenset({400, 413, 415, 422})
#: The most a single request may add to the process's peak memory. An edge route needs a frame at
#: the detector's size; a registration route a photo within the general pixel cap (40 MP as BGR is
#: 114 MiB): both with room for the face engine, neither for a full-size decompression bomb.
EDGE_PEAK_BOUND: Final = 128 * MIB
REGISTRATION_PEAK_BOUND: Final = 320 * MIB
FACE_PHOTO: Final = "images/Tony_Blair/krasserm__Tony_Blair_0005.jpg"


@dataclass(frozen=True)
class Route:
    """Where a photo goes, how it is wrapped, and who sends it."""

    name: str
    principal: str
    path: Callable[[dict[str, str]], str]
    #: None: the raw image with a Content-Type; else the JSON body around the base64 photo.
    envelope: Callable[[str], dict[str, Any]] | None
    peak_bound: int


ROUTES: Final = {
    "scan-raw": Route(
        "scan-raw",
        "camera",
        lambda ids: f"/v1/checkpoints/{ids['checkpoint_id']}/scans",
        None,
        EDGE_PEAK_BOUND,
    ),
    "scan-json": Route(
        "scan-json",
        "camera",
        lambda ids: f"/v1/checkpoints/{ids['checkpoint_id']}/scans",
        lambda photo: {"photo": photo},
        EDGE_PEAK_BOUND,
    ),
    "sighting-raw": Route(
        "sighting-raw",
        "venue-camera",
        lambda ids: f"/v1/venues/{ids['venue_id']}/sightings",
        None,
        EDGE_PEAK_BOUND,
    ),
    "sighting-json": Route(
        "sighting-json",
        "venue-camera",
        lambda ids: f"/v1/venues/{ids['venue_id']}/sightings",
        lambda photo: {"photo": photo},
        EDGE_PEAK_BOUND,
    ),
    "participant": Route(
        "participant",
        "user:owner",
        lambda ids: f"/v1/campaigns/{ids['campaign_id']}/participants",
        lambda photo: {"nickname": "fuzz", "consent": True, "photo": photo},
        REGISTRATION_PEAK_BOUND,
    ),
    "member": Route(
        "member",
        "user:owner",
        lambda ids: f"/v1/venues/{ids['venue_id']}/members",
        lambda photo: {"name": "Fuzz", "photo": photo},
        REGISTRATION_PEAK_BOUND,
    ),
}


# -- memory ---------------------------------------------------------------------------------------


def _status_kib(field: str) -> int:
    match = re.search(rf"^{field}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.MULTILINE)
    if match is None:  # pragma: no cover - Linux always reports it
        raise RuntimeError(f"/proc/self/status has no {field}")
    return int(match.group(1))


@dataclass
class Peak:
    """How far one request raised the process's peak resident memory (bytes)."""

    growth: int = 0


@pytest.fixture
def peak_memory() -> Callable[[], Any]:
    """A context manager measuring the peak RSS growth of what runs inside it (Linux: VmHWM is
    reset through /proc/self/clear_refs before, and read after)."""
    import contextlib

    @contextlib.contextmanager
    def measure() -> Iterator[Peak]:
        Path("/proc/self/clear_refs").write_text("5")
        baseline = _status_kib("VmRSS")
        peak = Peak()
        yield peak
        peak.growth = max(0, _status_kib("VmHWM") - baseline) * 1024

    return measure


# -- hostile bodies -------------------------------------------------------------------------------


def _decode(jpeg: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None, "the face photo must decode"
    return np.asarray(image)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png(width: int, height: int, *, rows: int | None = None) -> bytes:
    """An 8-bit RGB PNG of ``width``x``height`` black pixels, with the pixel data of only ``rows``
    rows (None: all of them; a complete file of any size compresses to almost nothing)."""
    compressor = zlib.compressobj(9)
    row = b"\x00" * (1 + 3 * width)
    data = b"".join(compressor.compress(row) for _ in range(height if rows is None else rows))
    data += compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", data) + _chunk(b"IEND", b"")


def _encode(image: np.ndarray, ext: str, params: list[int] | None = None) -> bytes:
    ok, encoded = cv2.imencode(ext, image, params or [])
    assert ok, f"OpenCV could not encode {ext}"
    return bytes(encoded.tobytes())


def _sof(jpeg: bytes) -> int:
    """Offset of the first frame header's height field."""
    for marker in (b"\xff\xc0", b"\xff\xc1", b"\xff\xc2"):
        at = jpeg.find(marker)
        if at > 0:
            return at + 5
    raise AssertionError("no SOF marker")


def jpeg_claiming(jpeg: bytes, width: int, height: int) -> bytes:
    """``jpeg`` with a frame header that claims another size (the scan data stays small)."""
    at = _sof(jpeg)
    return jpeg[:at] + struct.pack(">HH", height, width) + jpeg[at + 4 :]


def progressive_with_scans(progressive: bytes, size: int) -> bytes:
    """A progressive JPEG of about ``size`` bytes whose smallest scan is repeated to fill it:
    libjpeg warns about each repeat and decodes it (thousands of passes over the image)."""
    starts = [m.start() for m in re.finditer(rb"\xff(?:\xda|\xc4|\xd9)", progressive)]
    scans = [(start, end) for start, end in itertools.pairwise(starts) if progressive[start + 1] == 0xDA]
    start, end = min(scans, key=lambda scan: scan[1] - scan[0])
    repeats = max(1, size // (end - start))
    eoi = progressive.rfind(b"\xff\xd9")
    return progressive[:eoi] + progressive[start:end] * repeats + progressive[eoi:]


@dataclass(frozen=True)
class Hostile:
    """A body with no usable photo in it."""

    body: bytes
    #: The Content-Type it goes with on a raw route.
    content_type: str
    #: A bomb under the pixel cap may be decoded (into a photo with no face) as long as memory
    #: stays bounded; everything else must be refused.
    must_refuse: bool = True


def corpus(face_jpeg: bytes) -> dict[str, Hostile]:
    """Bodies that hold no usable photo, by name."""
    face = _decode(face_jpeg)
    progressive = _encode(cv2.resize(face, (512, 512)), ".jpg", [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])
    webp_bomb = _encode(np.zeros((4000, 4000, 3), np.uint8), ".webp", [cv2.IMWRITE_WEBP_QUALITY, 101])
    rng = random.Random(PROFILE.seed)
    gif = (b"GIF89a\x10\x00\x10\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00!\xf9\x04\x01\x00\x00\x00\x00"
           b",\x00\x00\x00\x00\x10\x00\x10\x00\x00\x02\x02D\x01\x00;")  # fmt: skip
    tiff = b"II*\x00\x08\x00\x00\x00\x01\x00\x00\x01\x03\x00\x01\x00\x00\x00\x10\x00\x00\x00" + b"\x00" * 64
    bmp = (
        b"BM"
        + struct.pack("<IHHI", 1078, 0, 0, 54)
        + struct.pack("<IiiHH", 40, 16, 16, 1, 24)
        + b"\x00" * 1000
    )
    return {
        "empty": Hostile(b"", "image/jpeg"),
        "zeros": Hostile(b"\x00" * 65536, "image/jpeg"),
        "random": Hostile(rng.randbytes(65536), "image/png"),
        "gif": Hostile(gif, "image/jpeg"),
        "tiff": Hostile(tiff, "image/png"),
        "bmp": Hostile(bmp, "image/webp"),
        "pdf": Hostile(b"%PDF-1.7\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n", "image/jpeg"),
        "svg": Hostile(
            b'<svg xmlns="http://www.w3.org/2000/svg" width="99999" height="99999"/>', "image/png"
        ),
        "html": Hostile(
            b"<!DOCTYPE html><html><body><img src=x onerror=alert(1)></body></html>", "image/jpeg"
        ),
        "heic": Hostile(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 64, "image/jpeg"),
        "json-as-image": Hostile(b'{"photo": "not here"}', "image/png"),
        "base64-as-raw": Hostile(base64.b64encode(face_jpeg), "image/jpeg"),
        "png-ihdr-65535": Hostile(png(65535, 65535, rows=1), "image/png"),
        "png-6000-one-row": Hostile(png(6000, 6000, rows=1), "image/png"),
        "jpeg-sof-65000": Hostile(jpeg_claiming(face_jpeg, 65000, 65000), "image/jpeg"),
        "png-6300-complete": Hostile(png(6300, 6300), "image/png", must_refuse=False),
        "jpeg-sof-6000": Hostile(jpeg_claiming(face_jpeg, 6000, 6000), "image/jpeg", must_refuse=False),
        "webp-lossless-4000": Hostile(webp_bomb, "image/webp", must_refuse=False),
        "jpeg-progressive-many-scans": Hostile(
            progressive_with_scans(progressive, 512 * 1024), "image/jpeg", False
        ),
        "jpeg-as-text": Hostile(face_jpeg, "text/plain"),
        "jpeg-as-octet-stream": Hostile(face_jpeg, "application/octet-stream"),
        "jpeg-as-multipart": Hostile(face_jpeg, "multipart/form-data; boundary=x"),
        "jpeg-as-json": Hostile(face_jpeg, "application/json"),
        "jpeg-as-json-utf16": Hostile(face_jpeg, "application/json; charset=utf-16"),
    }


def json_variants(face_jpeg: bytes) -> dict[str, bytes]:
    """Base64 JSON bodies that are not a usable photo (name -> raw JSON body)."""
    b64 = base64.b64encode(face_jpeg).decode()
    gif = base64.b64encode(b"GIF89a" + b"\x00" * 32).decode()
    return {
        "data-url": json.dumps({"photo": f"data:image/jpeg;base64,{b64}"}).encode(),
        "urlsafe": json.dumps(
            {"photo": base64.urlsafe_b64encode(face_jpeg).decode().replace("=", "")}
        ).encode(),
        "no-padding": json.dumps({"photo": b64.rstrip("=") + "A"}).encode(),
        "line-breaks": json.dumps(
            {"photo": "\n".join(b64[i : i + 76] for i in range(0, len(b64), 76))}
        ).encode(),
        "spaces": json.dumps({"photo": " ".join(b64[i : i + 4] for i in range(0, 4000, 4))}).encode(),
        "number": b'{"photo": 12345678901234567890}',
        "array": json.dumps({"photo": [b64[:100]]}).encode(),
        "object": json.dumps({"photo": {"data": b64[:100]}}).encode(),
        "null": b'{"photo": null}',
        "empty-string": b'{"photo": ""}',
        "gif": json.dumps({"photo": gif}).encode(),
        "bomb": json.dumps({"photo": base64.b64encode(png(65535, 65535, rows=1)).decode()}).encode(),
        "not-base64": json.dumps({"photo": "%%%%" * 1000}).encode(),
        "huge-not-base64": json.dumps({"photo": "!" * (6 * MIB)}).encode(),
        "photo-and-template": json.dumps({"photo": b64[:100], "template": [0.0] * 128}).encode(),
        "invalid-utf8": b'{"photo": "\xff\xfe\xfd"}',
        "truncated-json": b'{"photo": "' + b64[:1000].encode(),
    }


def bases(face_jpeg: bytes) -> dict[str, bytes]:
    """The real face photo as every accepted format."""
    face = _decode(face_jpeg)
    return {
        "jpeg": face_jpeg,
        "jpeg-progressive": _encode(face, ".jpg", [cv2.IMWRITE_JPEG_PROGRESSIVE, 1]),
        "png": _encode(face, ".png"),
        "webp": _encode(face, ".webp", [cv2.IMWRITE_WEBP_QUALITY, 90]),
    }


@st.composite
def mutations(draw: st.DrawFn, images: dict[str, bytes]) -> tuple[str, bytes]:
    """A real photo, damaged: truncated, bits flipped, bytes overwritten, a run repeated, or a size
    field in its header changed."""
    name = draw(st.sampled_from(sorted(images)))
    data = bytearray(images[name])
    kind = draw(st.sampled_from(["truncate", "flip", "overwrite", "repeat", "header"]))
    if kind == "truncate":
        del data[draw(st.integers(0, len(data) - 1)) :]
    elif kind == "flip":
        for _ in range(draw(st.integers(1, 64))):
            at = draw(st.integers(0, len(data) - 1))
            data[at] ^= 1 << draw(st.integers(0, 7))
    elif kind == "overwrite":
        at = draw(st.integers(0, len(data) - 1))
        data[at : at + 16] = draw(st.binary(min_size=1, max_size=16))
    elif kind == "repeat":
        at = draw(st.integers(0, len(data) - 2))
        end = draw(st.integers(at + 1, min(len(data), at + 4096)))
        data[end:end] = data[at:end] * draw(st.integers(2, 64))
    else:
        # The size fields: JPEG SOF, PNG IHDR, WebP VP8 / VP8L / VP8X all sit in the first 40 bytes
        # (JPEG: wherever SOF is).
        at = _sof(bytes(data)) if name.startswith("jpeg") else draw(st.integers(16, 32))
        data[at : at + 4] = draw(st.binary(min_size=4, max_size=4))
    return f"{name} {kind}", bytes(data)


# -- sending --------------------------------------------------------------------------------------


@dataclass
class Sender:
    world: Any
    recorder: Any
    measure: Callable[[], Any]

    def send(self, route: Route, what: str, body: bytes, content_type: str, *, must_refuse: bool) -> None:
        principal = self.world.principal(route.principal)
        base = self.world.stack.edge_url if route.principal != "user:owner" else self.world.stack.admin_url
        url = f"{base}{route.path(principal.ids)}"
        where = f"POST {route.path({k: '{' + k + '}' for k in principal.ids})}"
        headers = {**principal.headers, "content-type": content_type}
        example = f"{route.name}: {what} ({len(body)} bytes as {content_type})"
        response: requests.Response | None = None
        with self.measure() as peak, self.recorder.no_answer_is_a_finding(principal.name, where, example):
            response = self.world.session.post(
                url, data=body, headers=headers, timeout=PROFILE.request_timeout
            )
        if response is None:
            return
        status = response.status_code
        self.recorder.answer(principal.name, where, status, response.content, example, sent=what)
        problems = []
        if 400 <= status < 500 and status not in REFUSALS:
            problems.append(("status", f"{what}: not a photo refusal"))
        if must_refuse and status < 400:
            problems.append(("status", f"{what} was accepted"))
        if peak.growth > route.peak_bound:
            limit = route.peak_bound // MIB
            problems.append(("memory", f"{what}: peak memory +{peak.growth // MIB} MiB, over {limit} MiB"))
        for kind, detail in problems:
            self.recorder.add(principal.name, kind, where, status=status, detail=detail, example=example)

    def send_photo(
        self, route: Route, what: str, image: bytes, content_type: str, *, must_refuse: bool
    ) -> None:
        if route.envelope is None:
            self.send(route, what, image, content_type, must_refuse=must_refuse)
        else:
            body = json.dumps(route.envelope(base64.b64encode(image).decode())).encode()
            self.send(route, what, body, "application/json", must_refuse=must_refuse)


@pytest.fixture(scope="module")
def face_jpeg(faces_dir: Path) -> bytes:
    return (faces_dir / FACE_PHOTO).read_bytes()


@pytest.fixture(scope="module")
def hostile(face_jpeg: bytes) -> dict[str, Hostile]:
    return corpus(face_jpeg)


@pytest.fixture
def sender(world: Any, recorder: Any, peak_memory: Callable[[], Any]) -> Sender:
    return Sender(world, recorder, peak_memory)


@pytest.mark.parametrize("route", sorted(ROUTES))
def test_photo_routes_refuse_hostile_bodies_clearly_in_bounded_memory(
    route: str, sender: Sender, hostile: dict[str, Hostile]
) -> None:
    # when / then: every body of the corpus, raw (edge) or base64 in the route's JSON
    for what, item in hostile.items():
        if ROUTES[route].envelope is not None and not item.content_type.startswith("image/"):
            continue  # a Content-Type mismatch only exists for raw bodies
        sender.send_photo(ROUTES[route], what, item.body, item.content_type, must_refuse=item.must_refuse)


@pytest.mark.parametrize("route", sorted(name for name, r in ROUTES.items() if r.envelope is not None))
def test_photo_routes_refuse_malformed_base64_json_clearly(
    route: str, sender: Sender, face_jpeg: bytes
) -> None:
    # when / then: the photo field in every wrong shape (the other fields as the route wants them)
    envelope = ROUTES[route].envelope
    assert envelope is not None
    for what, variant in json_variants(face_jpeg).items():
        # the route's other fields around the variant's photo (the two broken bodies as they are)
        broken = what in ("invalid-utf8", "truncated-json")
        body = variant if broken else json.dumps({**envelope(""), **json.loads(variant)}).encode()
        sender.send(ROUTES[route], what, body, "application/json", must_refuse=True)


@pytest.mark.parametrize("route", sorted(ROUTES))
def test_photo_routes_answer_damaged_photos_without_5xx_in_bounded_memory(
    route: str, sender: Sender, face_jpeg: bytes
) -> None:
    images = bases(face_jpeg)
    content_types = {"jpeg": "image/jpeg", "png": "image/png", "webp": "image/webp"}

    @seed(PROFILE.seed)
    @settings(
        max_examples=PROFILE.image_examples,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(mutations(images))
    def damaged(mutation: tuple[str, bytes]) -> None:
        what, image = mutation
        content_type = content_types[what.split()[0].split("-")[0]]
        sender.send_photo(ROUTES[route], what, image, content_type, must_refuse=False)

    # when / then
    damaged()
