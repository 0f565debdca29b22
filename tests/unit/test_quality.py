"""Registration quality gate on synthetic faces: each defect alone, pose maths, and combinations."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import cv2
import numpy as np
import pytest

from face_engine.alignment import TEMPLATE
from face_engine.quality import (
    YUNET_FRONTAL_112,
    QualityPolicy,
    assess,
    estimate_pose,
    sharpness,
)
from face_engine.types import Detection, QualityReport

IMAGE_H, IMAGE_W = 480, 640
FRONTAL = np.asarray(YUNET_FRONTAL_112, dtype=np.float64)
# In the 112x112 frame a face box is about 72 px wide around (56, 66): used to scale landmarks to a box.
TEMPLATE_FACE_WIDTH = 72.0
TEMPLATE_FACE_CENTER = np.array([56.0, 66.0])


@dataclass(frozen=True)
class Scene:
    """What ``assess`` gets: the photo, every detection, the main face and its aligned crop."""

    image: np.ndarray
    detections: tuple[Detection, ...]
    main: Detection
    aligned: np.ndarray

    def assess(self, policy: QualityPolicy | None = None) -> QualityReport:
        return assess(self.image, self.detections, self.main, self.aligned, policy or QualityPolicy())


def place_landmarks(reference: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
    """The 5 reference points (112x112 frame) scaled and moved onto a face box in the photo."""
    x, y, w, h = box
    scale = w / TEMPLATE_FACE_WIDTH
    points = (np.asarray(reference, dtype=np.float64) - TEMPLATE_FACE_CENTER) * scale + [x + w / 2, y + h / 2]
    return np.asarray(points, dtype=np.float32)


def make_detection(
    size: float = 200.0,
    center: tuple[float, float] = (320.0, 240.0),
    score: float = 0.95,
    reference: np.ndarray = FRONTAL,
) -> Detection:
    """A frontal face whose shorter box side is ``size`` (boxes are 1.2 times taller than wide)."""
    cx, cy = center
    box = (cx - size / 2, cy - 0.6 * size, size, 1.2 * size)
    return Detection(box=box, landmarks=place_landmarks(reference, box), score=score)


def make_aligned(
    mean: float = 128.0, amplitude: float = 50.0, noise: float = 6.0, square: int = 14, seed: int = 0
) -> np.ndarray:
    """A 112x112 BGR "face": a checkerboard (contrast, sharp edges) plus fine noise (texture)."""
    rows, cols = np.mgrid[0:112, 0:112]
    checker = np.where((rows // square + cols // square) % 2 == 0, 1.0, -1.0)
    noise_field = np.random.default_rng(seed).normal(0.0, noise, (112, 112))
    grey = np.clip(np.rint(mean + amplitude * checker + noise_field), 0, 255).astype(np.uint8)
    return np.asarray(cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR))


def make_photo(detections: tuple[Detection, ...], seed: int = 1) -> np.ndarray:
    """A grey background with a textured ellipse where each face is."""
    rng = np.random.default_rng(seed)
    photo = np.full((IMAGE_H, IMAGE_W, 3), 90, dtype=np.uint8)
    texture = rng.integers(60, 220, (IMAGE_H, IMAGE_W, 3), dtype=np.uint8)
    mask = np.zeros((IMAGE_H, IMAGE_W), dtype=np.uint8)
    for detection in detections:
        x, y, w, h = detection.box
        cv2.ellipse(mask, (int(x + w / 2), int(y + h / 2)), (int(w / 2), int(h / 2)), 0, 0, 360, 255, -1)
    photo[mask > 0] = texture[mask > 0]
    return photo


def make_scene(
    main: Detection | None = None,
    others: tuple[Detection, ...] = (),
    aligned: np.ndarray | None = None,
) -> Scene:
    main = main if main is not None else make_detection()
    detections = (main, *others)
    return Scene(
        image=make_photo(detections),
        detections=detections,
        main=main,
        aligned=aligned if aligned is not None else make_aligned(),
    )


def with_landmarks(detection: Detection, landmarks: np.ndarray) -> Detection:
    return Detection(box=detection.box, landmarks=landmarks.astype(np.float32), score=detection.score)


def shift_nose(detection: Detection, dx_iod: float = 0.0, dy_height: float = 0.0) -> Detection:
    """Move the nose by fractions of the eye distance (sideways) and eye-to-mouth distance (down)."""
    points = detection.landmarks.astype(np.float64).copy()
    iod = float(np.hypot(*(points[1] - points[0])))
    height = float(((points[3] + points[4]) / 2 - (points[0] + points[1]) / 2)[1])
    points[2] += [dx_iod * iod, dy_height * height]
    return with_landmarks(detection, points)


def rotate_points(points: np.ndarray, degrees: float) -> np.ndarray:
    """Rotate clockwise in the image (y points down) about the points' centroid."""
    angle = math.radians(degrees)
    rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    centre = points.mean(axis=0)
    return np.asarray((points - centre) @ rotation.T + centre)


def rotate_landmarks(detection: Detection, degrees: float) -> Detection:
    return with_landmarks(detection, rotate_points(detection.landmarks.astype(np.float64), degrees))


# Each case: one defect of an otherwise good registration photo, the one issue it must raise, and
# the instruction its message must carry.
DEFECTS: dict[str, tuple[Callable[[], Scene], str, str]] = {
    "small face": (lambda: make_scene(main=make_detection(size=62.0)), "face_too_small", "move closer"),
    "blurred": (
        lambda: make_scene(aligned=cv2.GaussianBlur(make_aligned(), (0, 0), 3.0)),
        "too_blurry",
        "hold the camera still",
    ),
    "dark": (lambda: make_scene(aligned=make_aligned(mean=35.0, amplitude=25.0)), "too_dark", "light"),
    "overexposed": (
        lambda: make_scene(aligned=make_aligned(mean=225.0, amplitude=25.0)),
        "too_bright",
        "move out of direct light",
    ),
    # Flat grey with a little sensor noise: no contrast, yet not blurry, so the defect stays alone.
    "flat grey": (
        lambda: make_scene(aligned=make_aligned(amplitude=0.0, noise=6.0)),
        "low_contrast",
        "avoid light from behind you",
    ),
    "head turned": (
        lambda: make_scene(main=shift_nose(make_detection(), dx_iod=0.4)),
        "head_turned",
        "look straight at the camera",
    ),
    "head up": (
        lambda: make_scene(main=shift_nose(make_detection(), dy_height=-0.35)),
        "head_tilted_up_down",
        "keep your chin level",
    ),
    "head tilted": (
        lambda: make_scene(main=rotate_landmarks(make_detection(), 40.0)),
        "head_tilted",
        "hold your head upright",
    ),
    "second face": (
        lambda: make_scene(others=(make_detection(size=180.0, center=(540.0, 240.0)),)),
        "several_faces",
        "make sure only you are in the picture",
    ),
    "box past border": (
        lambda: make_scene(main=make_detection(center=(60.0, 240.0))),
        "face_cut_off",
        "whole face is in the picture",
    ),
    "low score": (lambda: make_scene(main=make_detection(score=0.5)), "low_confidence", "look at the camera"),
}


def test_assess_good_face_passes() -> None:
    # given
    scene = make_scene()

    # when
    report = scene.assess()

    # then
    assert report.ok, report.issues
    assert report.codes == ()


def test_assess_reports_all_metrics() -> None:
    # given
    scene = make_scene()

    # when
    metrics = scene.assess().metrics

    # then
    expected = {"face_px", "yaw", "pitch", "roll", "sharpness", "brightness", "contrast", "score", "faces"}
    assert expected <= metrics.keys()
    assert metrics["face_px"] == pytest.approx(200.0)
    assert metrics["score"] == pytest.approx(0.95)
    assert metrics["faces"] == 1.0
    assert metrics["brightness"] == pytest.approx(128.0, abs=2.0)
    assert metrics["contrast"] == pytest.approx(50.0, abs=3.0)
    assert all(abs(metrics[name]) < 1.0 for name in ("yaw", "pitch", "roll"))


@pytest.mark.parametrize(("build", "code", "instruction"), DEFECTS.values(), ids=DEFECTS.keys())
def test_assess_one_defect_raises_its_issue_alone(
    build: Callable[[], Scene], code: str, instruction: str
) -> None:
    # given
    scene = build()

    # when
    report = scene.assess()

    # then
    assert report.codes == (code,)
    message = report.issues[0].message
    assert instruction in message
    # "what is wrong: what to do"
    assert ": " in message


def test_assess_small_face_message_gives_the_size() -> None:
    # given
    scene = make_scene(main=make_detection(size=62.0))

    # when
    report = scene.assess()

    # then
    assert report.issues[0].message == "face too small (62 px): move closer to the camera"


@pytest.mark.parametrize("ratio", [0.2, 0.45])
def test_assess_small_second_face_is_not_several_faces(ratio: float) -> None:
    # given: a passer-by far behind, well under half the main face's size
    passer_by = make_detection(size=200.0 * ratio, center=(560.0, 100.0))
    scene = make_scene(others=(passer_by,))

    # when
    report = scene.assess()

    # then
    assert "several_faces" not in report.codes
    assert report.ok
    assert report.metrics["faces"] == 2.0


@pytest.mark.parametrize("ratio", [0.5, 1.0, 1.3])
def test_assess_second_face_of_similar_size_is_several_faces(ratio: float) -> None:
    # given
    other = make_detection(size=150.0 * ratio, center=(540.0, 240.0))
    scene = make_scene(main=make_detection(size=150.0, center=(220.0, 240.0)), others=(other,))

    # when
    report = scene.assess()

    # then
    assert report.codes == ("several_faces",)


def test_assess_duplicate_box_of_the_main_face_is_not_another_face() -> None:
    # given: the same face twice, as a copy (not the same object) and slightly moved
    main = make_detection()
    copy = make_detection(center=(324.0, 242.0))
    scene = make_scene(main=main, others=(copy,))

    # when
    report = scene.assess()

    # then
    assert report.ok
    assert report.metrics["faces"] == 1.0


def test_assess_main_face_missing_from_detections_still_counts_once() -> None:
    # given
    scene = make_scene()
    scene = replace(scene, detections=())

    # when
    report = scene.assess()

    # then
    assert report.ok
    assert report.metrics["faces"] == 1.0


@pytest.mark.parametrize(
    ("center", "size"),
    [((60.0, 240.0), 200.0), ((600.0, 240.0), 200.0), ((320.0, 80.0), 200.0), ((320.0, 420.0), 200.0)],
    ids=["left", "right", "top", "bottom"],
)
def test_assess_box_past_any_border_is_cut_off(center: tuple[float, float], size: float) -> None:
    # given
    scene = make_scene(main=make_detection(size=size, center=center))

    # when
    report = scene.assess()

    # then
    assert report.codes == ("face_cut_off",)
    assert report.metrics["margin"] < 0.0


@pytest.mark.parametrize(
    ("scene_factory", "expected"),
    [
        (
            lambda: make_scene(
                main=make_detection(size=62.0), aligned=make_aligned(mean=35.0, amplitude=25.0)
            ),
            {"face_too_small", "too_dark"},
        ),
        (
            lambda: make_scene(main=rotate_landmarks(make_detection(score=0.5), 40.0)),
            {"low_confidence", "head_tilted"},
        ),
        # Flat grey without noise: no contrast and no edges either.
        (lambda: make_scene(aligned=make_aligned(amplitude=0.0, noise=0.0)), {"low_contrast", "too_blurry"}),
    ],
    ids=["small and dark", "low score and tilted", "flat grey"],
)
def test_assess_two_defects_give_two_issues(scene_factory: Callable[[], Scene], expected: set[str]) -> None:
    # given
    scene = scene_factory()

    # when
    report = scene.assess()

    # then
    assert len(report.issues) == 2
    assert set(report.codes) == expected


def test_assess_thresholds_come_from_the_policy() -> None:
    # given: a 62 px face, which the default policy refuses
    scene = make_scene(main=make_detection(size=62.0))

    # when
    report = scene.assess(QualityPolicy(min_face_px=60.0))

    # then
    assert report.ok


def test_assess_accepts_a_grey_aligned_face() -> None:
    # given
    scene = make_scene(aligned=cv2.cvtColor(make_aligned(), cv2.COLOR_BGR2GRAY))

    # when
    report = scene.assess()

    # then
    assert report.ok


def test_assess_rejects_a_float_aligned_face() -> None:
    # given
    scene = make_scene(aligned=make_aligned().astype(np.float32))

    # when / then
    with pytest.raises(ValueError, match="uint8"):
        scene.assess()


def test_sharpness_drops_with_blur() -> None:
    # given
    face = make_aligned()

    # when
    values = [sharpness(cv2.GaussianBlur(face, (0, 0), sigma)) for sigma in (0.5, 1.0, 2.0, 3.0)]

    # then
    assert sharpness(face) > values[0] > values[1] > values[2] > values[3]


@pytest.mark.parametrize(("reference", "name"), [(TEMPLATE, "arcface"), (FRONTAL, "yunet")])
def test_estimate_pose_of_its_reference_is_frontal(reference: np.ndarray, name: str) -> None:
    # given
    landmarks = place_landmarks(reference, (100.0, 50.0, 180.0, 216.0))

    # when
    yaw, pitch, roll = estimate_pose(landmarks, reference)

    # then
    assert max(abs(yaw), abs(pitch), abs(roll)) < 1e-3, name


def test_estimate_pose_arcface_template_is_frontal_by_default() -> None:
    # given: the template itself, in the 112x112 frame

    # when
    yaw, pitch, roll = estimate_pose(TEMPLATE)

    # then
    assert max(abs(yaw), abs(pitch), abs(roll)) < 3.0


@pytest.mark.parametrize("angle", [-75.0, -40.0, -12.5, 0.0, 5.0, 25.0, 40.0, 90.0])
def test_estimate_pose_recovers_roll_of_rotated_landmarks(angle: float) -> None:
    # given
    landmarks = rotate_points(place_landmarks(TEMPLATE, (200.0, 100.0, 150.0, 180.0)), angle)

    # when
    yaw, pitch, roll = estimate_pose(landmarks)

    # then: roll is measured, and rotation in the image plane is not mistaken for yaw or pitch
    assert roll == pytest.approx(angle, abs=2.0)
    assert abs(yaw) < 1.0
    assert abs(pitch) < 1.0


@pytest.mark.parametrize("roll", [0.0, 30.0])
@pytest.mark.parametrize(("dx_iod", "sign"), [(0.15, 1.0), (0.3, 1.0), (-0.15, -1.0), (-0.3, -1.0)])
def test_estimate_pose_yaw_sign_follows_the_nose(dx_iod: float, sign: float, roll: float) -> None:
    # given: the nose moved towards the right (+) or the left (-) of the image, head upright or rolled
    detection = rotate_landmarks(shift_nose(make_detection(reference=TEMPLATE), dx_iod=dx_iod), roll)

    # when
    yaw, _, _ = estimate_pose(detection.landmarks)

    # then
    assert math.copysign(1.0, yaw) == sign
    assert abs(yaw) > 10.0


def test_estimate_pose_yaw_grows_with_the_nose_offset() -> None:
    # given
    offsets = [-1.0, -0.5, -0.2, -0.05, 0.0, 0.05, 0.2, 0.5, 1.0]

    # when
    yaws = [
        estimate_pose(shift_nose(make_detection(reference=TEMPLATE), dx_iod=dx).landmarks)[0]
        for dx in offsets
    ]

    # then
    assert yaws == sorted(yaws)
    assert len(set(yaws)) == len(yaws)
    assert all(-90.0 < yaw < 90.0 for yaw in yaws)


@pytest.mark.parametrize(("dy_height", "sign"), [(-0.2, 1.0), (0.2, -1.0)], ids=["nose up", "nose down"])
def test_estimate_pose_pitch_sign_follows_the_nose(dy_height: float, sign: float) -> None:
    # given: nose towards the eyes (chin raised) or towards the mouth (chin lowered)
    detection = shift_nose(make_detection(reference=TEMPLATE), dy_height=dy_height)

    # when
    yaw, pitch, _ = estimate_pose(detection.landmarks)

    # then
    assert math.copysign(1.0, pitch) == sign
    assert abs(pitch) > 10.0
    assert abs(yaw) < 1.0


def project_rigid_face(yaw_deg: float, pitch_deg: float) -> np.ndarray:
    """The ArcFace template as a rigid 3D face (nose 0.4 inter-ocular distances in front of the eye and
    mouth plane), turned by yaw then pitch and projected orthographically onto the image."""
    points = np.asarray(TEMPLATE, dtype=np.float64)
    iod = float(np.hypot(*(points[1] - points[0])))
    centre = points.mean(axis=0)
    xyz = np.column_stack([points - centre, np.zeros(5)])
    xyz[2, 2] = -0.4 * iod  # towards the camera, which looks along +z
    yaw, pitch = math.radians(yaw_deg), math.radians(pitch_deg)
    # Yaw: nose towards +x in the image. Pitch: chin up, so the nose goes towards -y (up).
    turn = np.array(
        [[math.cos(yaw), 0.0, -math.sin(yaw)], [0.0, 1.0, 0.0], [math.sin(yaw), 0.0, math.cos(yaw)]]
    )
    nod = np.array(
        [[1.0, 0.0, 0.0], [0.0, math.cos(pitch), math.sin(pitch)], [0.0, -math.sin(pitch), math.cos(pitch)]]
    )
    return np.asarray((xyz @ turn.T @ nod.T)[:, :2] + centre)


@pytest.mark.parametrize(
    ("yaw", "pitch"), [(20.0, 0.0), (-35.0, 0.0), (0.0, 20.0), (0.0, -30.0), (60.0, 0.0)]
)
def test_estimate_pose_recovers_angles_of_the_rigid_face_model(yaw: float, pitch: float) -> None:
    # given: the face model the estimate is built on, turned or nodded by a known angle
    landmarks = project_rigid_face(yaw, pitch)

    # when
    got_yaw, got_pitch, got_roll = estimate_pose(landmarks)

    # then
    assert got_yaw == pytest.approx(yaw, abs=1.0)
    assert got_pitch == pytest.approx(pitch, abs=1.0)
    assert abs(got_roll) < 1.0


@pytest.mark.parametrize(
    ("landmarks", "match"),
    [
        (np.zeros((4, 2)), "5x2"),
        (np.zeros((5, 3)), "5x2"),
        (np.full((5, 2), np.nan), "NaN"),
        (np.zeros((5, 2)), "degenerate"),
    ],
    ids=["four points", "three columns", "nan", "all at one place"],
)
def test_estimate_pose_rejects_bad_landmarks(landmarks: np.ndarray, match: str) -> None:
    # given / when / then
    with pytest.raises(ValueError, match=match):
        estimate_pose(landmarks)
