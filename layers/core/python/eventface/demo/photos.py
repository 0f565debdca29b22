"""Real face photos for the demo: from the insightface wheel on PyPI, or from a folder the user gives.

The insightface wheel ships a group photo of six actors (``t1.jpg``), a portrait
(``Tom_Hanks_54745.png``) and surgical-mask textures (``mask_*.jpg``). The wheel is downloaded
once with the user's own pip (index, proxy and certificates as configured), checked against a
recorded sha256 and read as a zip: insightface itself is never installed or imported.

Each of the six faces is cut out of the group photo as that person's registration photo, and
camera shots are made from it as a checkpoint camera would see the person: other lighting with
sensor noise, another angle and distance, a blurry low-quality JPEG, and the person wearing a mask.
Nothing is written into the repository; the wheel is cached under ``cache_dir``.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from face_engine.alignment import TEMPLATE, similarity_transform
from face_engine.decoding import decode_image
from face_engine.errors import ImageDecodeError
from face_engine.masks import MASK_POLYGON
from face_engine.types import Detection

INSIGHTFACE_REQUIREMENT = "insightface==2.1"
WHEEL_NAME = "insightface-2.1-py3-none-any.whl"
#: sha256 of insightface-2.1-py3-none-any.whl as served by pypi.org.
WHEEL_SHA256 = "dcd58ee79d99d689572477315f3149353afd65a36dc575f597cbb217a7bde399"
DEFAULT_CACHE_DIR = Path.home() / ".cache" / "eventface" / "demo"

GROUP_PHOTO = "insightface/data/images/t1.jpg"
STRANGER_PHOTO = "insightface/data/images/Tom_Hanks_54745.png"
MASK_TEXTURE = "insightface/data/images/mask_blue.jpg"
GROUP_SIZE = 6

#: The synthesised camera shots of each person, in order; the masked one is last.
SHOT_KINDS = ("lighting", "angle", "compressed", "masked")
STRANGERS_FOLDER = "strangers"
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp"})

#: Surgical blue (BGR), for a mask drawn without the wheel's texture.
_SURGICAL_BLUE = (235, 205, 160)
_SEED = 20240601
_PIP_TIMEOUT_S = 600
_NO_NETWORK_HINT = (
    "check the network and your pip configuration (`python -m pip config list`), "
    "or run the demo with your own photos: PHOTOS=DIR with one sub-folder per person"
)


class DemoPhotosError(Exception):
    """The demo photos cannot be had; the message says what to do."""


class FaceDetector(Protocol):
    """What the cast needs of the face engine: every face in a BGR image (``FaceEngine`` fits)."""

    def detect(self, image: np.ndarray) -> list[Detection]: ...


@dataclass(frozen=True)
class DemoPerson:
    """One attendee: a registration photo and the camera shots of them at checkpoints (JPEGs)."""

    name: str
    registration: bytes
    camera_shots: tuple[bytes, ...]


@dataclass(frozen=True)
class DemoCast:
    """The demo's people, faces that were never registered, and where the photos came from."""

    people: tuple[DemoPerson, ...]
    strangers: tuple[bytes, ...]
    source: str


def load_cast(
    cache_dir: Path | None = None, photos_dir: Path | None = None, engine: FaceDetector | None = None
) -> DemoCast:
    """The demo cast: from ``photos_dir`` when given, else from the insightface wheel on PyPI.

    ``engine`` (a ``FaceEngine``) finds the faces; one is created when needed and not given.
    """
    if photos_dir is not None:
        return _cast_from_folder(Path(photos_dir), engine)
    wheel = fetch_wheel(Path(cache_dir) if cache_dir is not None else DEFAULT_CACHE_DIR)
    return _cast_from_wheel(wheel, engine)


# --- the wheel --------------------------------------------------------------------------------


def fetch_wheel(cache_dir: Path) -> Path:
    """The verified insightface wheel in ``cache_dir``, downloaded with pip on first use."""
    wheel = cache_dir / WHEEL_NAME
    if wheel.is_file():
        _verify(wheel, cached=True)
        return wheel
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DemoPhotosError(
            f"cannot create the demo cache folder {cache_dir}: {exc}; pass a writable cache folder"
        ) from exc
    with tempfile.TemporaryDirectory(dir=cache_dir, prefix="download-") as scratch:
        command = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--disable-pip-version-check",
            INSIGHTFACE_REQUIREMENT,
            "-d",
            scratch,
        ]
        try:
            done = subprocess.run(
                command, capture_output=True, text=True, timeout=_PIP_TIMEOUT_S, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise DemoPhotosError(
                f"downloading {INSIGHTFACE_REQUIREMENT} with pip took over {_PIP_TIMEOUT_S} s: "
                f"{_NO_NETWORK_HINT}"
            ) from exc
        downloaded = Path(scratch) / WHEEL_NAME
        if done.returncode != 0 or not downloaded.is_file():
            tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-5:])
            raise DemoPhotosError(
                f"pip could not download {INSIGHTFACE_REQUIREMENT} (the demo's face photos; "
                f"exit code {done.returncode}):\n{tail}\n{_NO_NETWORK_HINT}"
            )
        _verify(downloaded, cached=False)
        os.replace(downloaded, wheel)
    return wheel


def _verify(wheel: Path, *, cached: bool) -> None:
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    if digest == WHEEL_SHA256:
        return
    where = f"the cached {wheel}" if cached else f"the {WHEEL_NAME} pip just downloaded"
    advice = (
        f"delete {wheel} and run the demo again"
        if cached
        else "your pip index serves a different file than pypi.org; use PHOTOS=DIR with your own photos"
    )
    raise DemoPhotosError(
        f"{where} has sha256 {digest}, not the {WHEEL_SHA256} of {WHEEL_NAME} on PyPI, "
        f"so its photos are not used: {advice}"
    )


def _cast_from_wheel(wheel: Path, engine: FaceDetector | None) -> DemoCast:
    try:
        with zipfile.ZipFile(wheel) as archive:
            group, stranger, texture = (
                archive.read(name) for name in (GROUP_PHOTO, STRANGER_PHOTO, MASK_TEXTURE)
            )
    except (zipfile.BadZipFile, KeyError) as exc:
        raise DemoPhotosError(f"{wheel} is not the expected wheel ({exc}): delete it and run again") from exc
    detector = engine if engine is not None else _default_engine()
    image = decode_image(group)
    faces = sorted(detector.detect(image), key=lambda d: d.size, reverse=True)[:GROUP_SIZE]
    if len(faces) < GROUP_SIZE:
        raise DemoPhotosError(
            f"found {len(faces)} faces in {GROUP_PHOTO} of {wheel.name}, expected {GROUP_SIZE}: "
            "the face engine's detector is not working as expected; use PHOTOS=DIR meanwhile"
        )
    mask_texture = decode_image(texture)
    people: list[DemoPerson] = []
    # Left to right in the group photo.
    for index, face in enumerate(sorted(faces, key=lambda d: d.center[0])):
        crop, landmarks = _crop_face(image, face)
        rng = np.random.default_rng(_SEED + index)
        people.append(
            DemoPerson(
                name=f"Person {index + 1}",
                registration=_jpeg(crop, 95),
                camera_shots=camera_shots(crop, landmarks, rng, mask_texture),
            )
        )
    return DemoCast(
        people=tuple(people),
        strangers=(_jpeg(_stranger_frame(decode_image(stranger)), 95),),
        source=(
            f"{wheel} from PyPI ({INSIGHTFACE_REQUIREMENT}, sha256 verified): six faces cut from the "
            f"group photo {Path(GROUP_PHOTO).name}, camera shots synthesised from them; "
            f"stranger {Path(STRANGER_PHOTO).name}"
        ),
    )


def _default_engine() -> FaceDetector:
    from face_engine.engine import FaceEngine

    return FaceEngine()


def _crop_face(image: np.ndarray, face: Detection, margin: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    """The face with ``margin`` times its box around it (clamped to the image), and its landmarks."""
    side = margin * max(face.box[2], face.box[3])
    cx, cy = face.center
    height, width = image.shape[:2]
    x0, y0 = max(0, round(cx - side / 2)), max(0, round(cy - side / 2))
    x1, y1 = min(width, round(cx + side / 2)), min(height, round(cy + side / 2))
    crop = np.ascontiguousarray(image[y0:y1, x0:x1])
    return crop, np.asarray(face.landmarks, dtype=np.float64) - np.array([x0, y0], dtype=np.float64)


def _stranger_frame(face: np.ndarray) -> np.ndarray:
    """The wheel's 112x112 aligned portrait, enlarged and given room around the head like a photo."""
    enlarged = cv2.resize(face, (224, 224), interpolation=cv2.INTER_CUBIC)
    return np.asarray(cv2.copyMakeBorder(enlarged, 48, 48, 48, 48, cv2.BORDER_REPLICATE))


# --- camera shots -------------------------------------------------------------------------------


def camera_shots(
    photo: np.ndarray,
    landmarks: np.ndarray,
    rng: np.random.Generator,
    mask_texture: np.ndarray | None = None,
) -> tuple[bytes, ...]:
    """Camera-like JPEGs of the face in ``photo``, one per :data:`SHOT_KINDS`.

    ``landmarks`` are the face's 5 points in ``photo``; ``mask_texture`` is a picture of a mask
    (a plain surgical-blue one is drawn without it).
    """
    return (
        _jpeg(_relit(photo, rng), 90),
        _jpeg(_turned(photo, landmarks, rng), 90),
        _jpeg(cv2.GaussianBlur(photo, (0, 0), 0.8), 30),
        _jpeg(_masked(photo, landmarks, mask_texture), 90),
    )


def _relit(photo: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Other lighting: contrast and brightness changed, with mild sensor noise."""
    contrast = rng.choice([rng.uniform(0.75, 0.88), rng.uniform(1.12, 1.25)])
    brightness = rng.choice([-1.0, 1.0]) * rng.uniform(15.0, 30.0)
    noise = rng.normal(0.0, 5.0, photo.shape)
    out = (photo.astype(np.float64) - 128.0) * contrast + 128.0 + brightness + noise
    return np.asarray(np.clip(out, 0, 255).round(), dtype=np.uint8)


def _turned(photo: np.ndarray, landmarks: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Another angle and distance: rotated by 5-8 degrees either way and scaled by 0.85-1.15."""
    angle = float(rng.choice([-1.0, 1.0]) * rng.uniform(5.0, 8.0))
    scale = float(rng.uniform(0.85, 1.15))
    cx, cy = np.asarray(landmarks).mean(axis=0)
    matrix = cv2.getRotationMatrix2D((float(cx), float(cy)), angle, scale)
    height, width = photo.shape[:2]
    return np.asarray(
        cv2.warpAffine(photo, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    )


def _masked(photo: np.ndarray, landmarks: np.ndarray, texture: np.ndarray | None) -> np.ndarray:
    """The face wearing a mask from below the eyes to below the chin, lit like the face."""
    if texture is None:
        texture = _plain_mask_texture()
    # Aligned 112x112 frame -> photo: the mask outline of face_engine.masks, placed on this face.
    to_photo = similarity_transform(TEMPLATE, np.asarray(landmarks, dtype=np.float64))
    face_scale = float(np.hypot(to_photo[0, 0], to_photo[0, 1]))
    x_min, y_min = MASK_POLYGON.min(axis=0)
    x_max, y_max = MASK_POLYGON.max(axis=0)
    tex_h, tex_w = texture.shape[:2]
    to_aligned = np.array(
        [[(x_max - x_min) / tex_w, 0.0, x_min], [0.0, (y_max - y_min) / tex_h, y_min], [0.0, 0.0, 1.0]]
    )
    height, width = photo.shape[:2]
    paint = cv2.warpAffine(
        texture, to_photo @ to_aligned, (width, height), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE
    ).astype(np.float64)
    outline = cv2.transform(MASK_POLYGON.reshape(-1, 1, 2).astype(np.float64), to_photo)
    region = np.zeros((height, width), dtype=np.uint8)
    cv2.fillPoly(region, [outline.round().astype(np.int32)], 255)
    soft = max(1.0, face_scale)
    alpha = cv2.GaussianBlur(region, (0, 0), soft).astype(np.float64)[..., None] / 255.0
    grey = cv2.cvtColor(photo, cv2.COLOR_BGR2GRAY).astype(np.float64)
    light = cv2.GaussianBlur(grey, (0, 0), 8.0 * face_scale)
    inside = region > 127
    mean_light = float(light[inside].mean()) if inside.any() else 128.0
    shade = np.clip(0.6 + 0.4 * light / max(mean_light, 1.0), 0.3, 1.3)[..., None]
    blended = photo.astype(np.float64) * (1.0 - alpha) + np.clip(paint * shade, 0, 255) * alpha
    return np.asarray(blended.round(), dtype=np.uint8)


def _plain_mask_texture() -> np.ndarray:
    """A surgical-blue mask with three pleats, for when the wheel's texture is not at hand."""
    texture = np.empty((120, 240, 3), dtype=np.uint8)
    texture[:] = _SURGICAL_BLUE
    darker = tuple(int(c * 0.85) for c in _SURGICAL_BLUE)
    for y in (40, 65, 90):
        cv2.line(texture, (0, y), (239, y), darker, 2)
    return texture


def _jpeg(image: np.ndarray, quality: int) -> bytes:
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise DemoPhotosError(f"OpenCV could not encode a {image.shape} image as JPEG")
    return bytes(encoded.tobytes())


# --- a folder of the user's photos ---------------------------------------------------------------


def _cast_from_folder(photos_dir: Path, engine: FaceDetector | None) -> DemoCast:
    layout = "one sub-folder per person, each with a registration photo and camera shots"
    if not photos_dir.exists():
        raise DemoPhotosError(f"the photos folder {photos_dir} does not exist: give a folder with {layout}")
    if not photos_dir.is_dir():
        raise DemoPhotosError(f"{photos_dir} is a file, not a folder: give a folder with {layout}")
    folders = sorted(p for p in photos_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    person_folders = [p for p in folders if p.name != STRANGERS_FOLDER]
    if not person_folders:
        raise DemoPhotosError(
            f"{photos_dir} has no person sub-folders: make {layout} "
            f"(for example {photos_dir / 'alice' / '1.jpg'}, {photos_dir / 'alice' / '2.jpg'})"
        )
    # Every photo is read (and every problem reported) before any face is looked for.
    albums = [
        (folder, _read_photos(folder, f"at least one photo of {folder.name}")) for folder in person_folders
    ]
    strangers_dir = photos_dir / STRANGERS_FOLDER
    strangers: tuple[bytes, ...] = ()
    if strangers_dir.is_dir():
        strangers = tuple(
            data for _, data in _read_photos(strangers_dir, "photos of people who are not registered")
        )
    detector = engine
    people: list[DemoPerson] = []
    for index, (folder, album) in enumerate(albums):
        (image, registration), others = album[0], album[1:]
        if others:
            shots = tuple(data for _, data in others)
        else:
            if detector is None:
                detector = _default_engine()
            shots = _synthesised_shots(folder, image, detector, index)
        people.append(DemoPerson(name=folder.name, registration=registration, camera_shots=shots))
    return DemoCast(
        people=tuple(people), strangers=strangers, source=f"your photos in {photos_dir.resolve()}"
    )


def _read_photos(folder: Path, wanted: str) -> list[tuple[np.ndarray, bytes]]:
    """Every photo of ``folder`` in name order, decoded, and as JPEG bytes."""
    files = sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
    )
    if not files:
        suffixes = ", ".join(sorted(IMAGE_SUFFIXES))
        raise DemoPhotosError(f"{folder} has no photos ({suffixes}): add {wanted}, or remove the folder")
    photos = []
    for path in files:
        data = path.read_bytes()
        try:
            image = decode_image(data)
        except ImageDecodeError as exc:
            raise DemoPhotosError(
                f"{path} cannot be read as a photo ({exc}): replace it with a JPEG, PNG or WebP photo, "
                "or remove it"
            ) from exc
        is_jpeg = data[:3] == b"\xff\xd8\xff"
        photos.append((image, data if is_jpeg else _jpeg(image, 95)))
    return photos


def _synthesised_shots(
    folder: Path, image: np.ndarray, detector: FaceDetector, index: int
) -> tuple[bytes, ...]:
    """Camera shots made from a person's only photo (the largest face gives the landmarks)."""
    faces = detector.detect(image)
    if not faces:
        raise DemoPhotosError(
            f"no face found in the only photo of {folder.name} in {folder}: use a photo where the face "
            "is clearly visible, or add camera shots of the person to the folder"
        )
    face = max(faces, key=lambda d: d.size)
    return camera_shots(image, np.asarray(face.landmarks), np.random.default_rng(_SEED + index))
