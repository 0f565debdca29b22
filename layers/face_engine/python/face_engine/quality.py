"""Registration quality gate: is this selfie good enough to become someone's template?

A template is made once and then matched at every checkpoint for the whole event, so a poor one
costs many failed scans later. The gate measures a few cheap, explainable numbers (face size, head
pose from the 5 landmarks, sharpness, exposure, other faces, framing, detector confidence) and
turns every failed check into an issue with a stable code and a message the person at the kiosk
can act on. It never raises for a bad photo: every defect is reported, all at once, so the person
can fix them in one retake.

Head pose comes from the 5 landmarks alone, with a weak-perspective model of a generic face: the
eyes and mouth corners lie (nearly) in one plane and the nose tip stands ``_NOSE_DEPTH`` in front
of it. Turning the head by yaw ``θ`` moves the nose sideways off the eye-mouth axis by
``depth * sin θ`` while the eye distance shrinks to ``iod * cos θ``, so
``offset / iod = (depth / iod) * tan θ`` and ``θ = atan(offset / iod / (depth / iod))``; pitch is
the same relation for the nose's position between the eye line and the mouth line, measured from
its frontal value. The mapping is exact for that rigid model under orthographic projection and
monotonic; real noses differ in depth from person to person, so the angles are rough (off by a
few degrees, more for a very flat or very prominent nose), which is enough for a gate whose limits
are 25-30 degrees. "Frontal" is a reference layout of the 5 points: the ArcFace template by
default, and in the gate the layout YuNet gives a level face (:data:`YUNET_FRONTAL_112`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import ArrayLike

from face_engine.alignment import ALIGNED_SIZE, TEMPLATE
from face_engine.types import Detection, QualityIssue, QualityReport

#: Where YuNet puts the 5 landmarks of a level, frontal face, in the 112x112 frame of the ArcFace
#: template (:data:`face_engine.alignment.TEMPLATE`): the median over the 114 unmasked photos of
#: ``shared/data/faces`` with |yaw| < 8 and |roll| < 4 degrees, each mapped onto the template by a
#: similarity transform. YuNet marks the mouth corners higher (y ≈ 89.7, not 92.3) and the nose
#: lower than the template does, so against the template level faces read about 13 degrees
#: "looking down" (median -13.5, and 9% of all those photos over the 25-degree limit, against 0.2%
#: with this reference): the gate compares YuNet's landmarks with YuNet's own frontal layout.
YUNET_FRONTAL_112: tuple[tuple[float, float], ...] = (
    (37.02, 52.56),
    (74.55, 52.44),
    (56.15, 73.93),
    (39.68, 89.57),
    (72.57, 89.80),
)

#: Nose-tip depth in front of the eye/mouth plane, in inter-ocular distances. From the generic 3D
#: face used for solvePnP head-pose estimates: the nose tip stands about 25 mm in front of the
#: eyes and mouth corners, whose pupils are about 63 mm apart (25 / 63 ≈ 0.4).
_NOSE_DEPTH = 0.4

#: Skin-dominated part of the aligned face (brows to below the mouth, between the outer eye
#: corners), where exposure is measured. The whole crop would let hair, a bright window or a
#: dark wall behind the head decide whether the *face* is dark.
_FACE_ROWS = slice(40, 100)
_FACE_COLS = slice(30, 82)

# Landmarks closer than this (pixels) are a broken detection, not a face.
_MIN_LANDMARK_SPAN = 1e-3


@dataclass(frozen=True, slots=True)
class _FaceAxes:
    """The 5 landmarks reduced to what the pose needs, in face-relative units."""

    roll: float  # angle of the eye line in the image, radians, clockwise positive (y points down)
    lateral: float  # nose offset from the eye-mouth axis, in inter-ocular distances, + towards image right
    along: float  # nose position from the eye line (0) to the mouth line (1)
    height_per_iod: float  # eye-line-to-mouth-line distance in inter-ocular distances


def _face_axes(landmarks: ArrayLike) -> _FaceAxes:
    points = np.asarray(landmarks, dtype=np.float64)
    if points.shape != (5, 2):
        raise ValueError(f"landmarks must be a 5x2 array of (x, y) points, got shape {points.shape}")
    if not np.all(np.isfinite(points)):
        raise ValueError("landmarks contain NaN or infinite coordinates")
    eye_left, eye_right, nose, mouth_left, mouth_right = points
    eye_vector = eye_right - eye_left
    eye_mid = (eye_left + eye_right) / 2.0
    axis = (mouth_left + mouth_right) / 2.0 - eye_mid
    iod = float(np.hypot(eye_vector[0], eye_vector[1]))
    height = float(np.hypot(axis[0], axis[1]))
    if iod < _MIN_LANDMARK_SPAN or height < _MIN_LANDMARK_SPAN:
        raise ValueError("landmarks are degenerate: the eyes or the eye and mouth midpoints coincide")
    down = axis / height
    # Sideways is perpendicular to the eye-mouth axis, oriented like the eye line, so the sign of
    # the offset means "towards the right eye in the image" whatever the roll.
    side = np.array([-down[1], down[0]])
    if float(side @ eye_vector) < 0.0:
        side = -side
    nose_rel = nose - eye_mid
    return _FaceAxes(
        roll=math.atan2(float(eye_vector[1]), float(eye_vector[0])),
        lateral=float(nose_rel @ side) / iod,
        along=float(nose_rel @ down) / height,
        height_per_iod=height / iod,
    )


def estimate_pose(landmarks: ArrayLike, reference: ArrayLike = TEMPLATE) -> tuple[float, float, float]:
    """Estimate head pose from the 5 face landmarks.

    Parameters
    ----------
    landmarks : ArrayLike
        5x2 points in the order of :data:`face_engine.types.LANDMARK_NAMES`, in pixels.
    reference : ArrayLike
        The same 5 points of a level, frontal face (any scale): the zero of yaw and pitch.
        The ArcFace template by default; :func:`assess` uses the detector's own frontal layout
        from its policy (:data:`YUNET_FRONTAL_112`).

    Returns
    -------
    tuple[float, float, float]
        ``(yaw, pitch, roll)`` in degrees, 0 for ``reference``.
        Yaw is positive when the nose points towards the right of the image, pitch is positive
        when the chin is raised (nose moves up towards the eyes), roll is positive when the head
        leans clockwise in the image (right-in-image eye lower).

    Raises
    ------
    ValueError
        If either array is not 5x2, holds non-finite values, or its points are degenerate.
    """
    axes = _face_axes(landmarks)
    frontal = _face_axes(reference)
    yaw = math.atan((axes.lateral - frontal.lateral) / _NOSE_DEPTH)
    # The frontal eye-to-mouth distance, not the measured one: pitch itself shortens the latter by
    # cos(pitch), and the model's relation is along = frontal - depth / height * tan(pitch).
    pitch = math.atan((frontal.along - axes.along) * frontal.height_per_iod / _NOSE_DEPTH)
    # Roll is the eye line's angle in the image, which the reference's own tilt (0.3 degrees for
    # the ArcFace template) should not shift.
    roll = math.remainder(axes.roll - frontal.roll, math.tau)
    return (math.degrees(yaw), math.degrees(pitch), math.degrees(roll))


def _grey(image: np.ndarray) -> np.ndarray:
    pixels = np.asarray(image)
    if pixels.size == 0:
        raise ValueError("image is empty")
    if pixels.dtype != np.uint8:
        raise ValueError(f"image must be 8-bit (uint8), got {pixels.dtype}")
    if pixels.ndim == 2:
        return pixels
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        return pixels[:, :, 0]
    if pixels.ndim == 3 and pixels.shape[2] == 3:
        return np.asarray(cv2.cvtColor(pixels, cv2.COLOR_BGR2GRAY))
    if pixels.ndim == 3 and pixels.shape[2] == 4:
        return np.asarray(cv2.cvtColor(pixels, cv2.COLOR_BGRA2GRAY))
    raise ValueError(f"image must be grey (HxW) or BGR/BGRA (HxWx3, HxWx4), got shape {pixels.shape}")


def _aligned_grey(aligned_face: np.ndarray) -> np.ndarray:
    grey = _grey(aligned_face)
    if grey.shape != (ALIGNED_SIZE, ALIGNED_SIZE):
        # Thresholds are calibrated at 112x112: the Laplacian's response depends on scale.
        grey = np.asarray(cv2.resize(grey, (ALIGNED_SIZE, ALIGNED_SIZE), interpolation=cv2.INTER_AREA))
    return grey


def sharpness(aligned_face: np.ndarray) -> float:
    """Variance of the Laplacian of the aligned face in grey: higher is sharper.

    Parameters
    ----------
    aligned_face : np.ndarray
        Aligned face, 112x112 uint8 BGR or grey (other sizes are resized to 112x112 first).

    Returns
    -------
    float
        Variance of the 3x3 Laplacian over the 112x112 crop.
    """
    return float(np.asarray(cv2.Laplacian(_aligned_grey(aligned_face), cv2.CV_64F)).var())


def _exposure(aligned_face: np.ndarray) -> tuple[float, float]:
    region = _aligned_grey(aligned_face)[_FACE_ROWS, _FACE_COLS]
    return float(region.mean()), float(region.std())


def _overlap(a: Detection, b: Detection) -> float:
    ax, ay, aw, ah = a.box
    bx, by, bw, bh = b.box
    iw = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    ih = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    inter = iw * ih
    union = aw * ah + bw * bh - inter
    return inter / union if union > 0.0 else 0.0


@dataclass(frozen=True, slots=True)
class QualityPolicy:
    """Thresholds of the registration quality gate.

    The sharpness, contrast and frontal-pose settings were measured on the 494 real photos of
    ``shared/data/faces`` (YuNet detections aligned to 112x112); the numbers are in the comments.
    """

    #: Shorter box side in the original image, pixels. Below ~80 px the 112x112 crop is upscaled
    #: and the embedding loses detail.
    min_face_px: float = 80.0
    max_yaw_deg: float = 30.0
    max_pitch_deg: float = 25.0
    max_roll_deg: float = 25.0
    #: Landmarks of a level, frontal face for the detector in use: the zero of yaw and pitch.
    frontal_landmarks: tuple[tuple[float, float], ...] = YUNET_FRONTAL_112
    #: Variance of the Laplacian on the aligned 112x112 grey face (``alignment.align_face``). The
    #: real photos measured 1st percentile 62 and 5th 99 (median 447): 50 refuses 2 of 494. The
    #: same photos blurred by a Gaussian of sigma 1.5 px at 112x112 measured 95th percentile 50,
    #: so it refuses 95% of those; at sigma 1 (median 59, barely visible) it refuses 35%.
    min_sharpness: float = 50.0
    #: Mean luminance 0..255 of the face region.
    min_brightness: float = 60.0
    max_brightness: float = 200.0
    #: Standard deviation of luminance in the face region. The lowest of the real photos was 19.4
    #: (median 41): eyes, brows, nostrils and mouth give contrast even on smooth, evenly lit skin.
    #: 15 is under all of them, so only a flat, washed-out or fogged face is refused.
    min_contrast: float = 15.0
    min_detection_score: float = 0.8
    #: Another face at least this fraction of the main face's size means "several faces"; smaller
    #: ones are passers-by far behind, which do not make the registration ambiguous.
    other_face_ratio: float = 0.5
    #: Smallest distance from the face box to the image border, as a fraction of the face size.
    #: 0 means the whole box must be inside the frame: YuNet's boxes are tight (brows to chin), so
    #: any overshoot means part of the face is missing. A positive value asks for head room.
    min_margin_ratio: float = 0.0


_MSG_SEVERAL_FACES = "several faces in the photo: make sure only you are in the picture"
_MSG_CUT_OFF = "face is partly outside the photo: move so that your whole face is in the picture"
_MSG_LOW_CONFIDENCE = (
    "face is not clearly visible: take off sunglasses or a mask, keep hands and hair away from "
    "your face and look at the camera"
)
_MSG_HEAD_TURNED = "head turned to the side: look straight at the camera"
_MSG_HEAD_UP_DOWN = "head tilted up or down: keep your chin level and look straight at the camera"
_MSG_HEAD_TILTED = "head tilted to one side: hold your head upright"
_MSG_DARK = "face is too dark: face a light source or turn on more light"
_MSG_BRIGHT = "face is too bright (overexposed): move out of direct light or away from the flash"
_MSG_LOW_CONTRAST = (
    "face looks washed out (low contrast): avoid light from behind you and wipe the camera lens"
)
_MSG_BLURRY = "photo is blurry: hold the camera still and make sure the face is in focus"


def assess(
    image: np.ndarray,
    detections: Sequence[Detection],
    main: Detection,
    aligned_face: np.ndarray,
    policy: QualityPolicy = QualityPolicy(),  # frozen, so one shared default instance is safe
) -> QualityReport:
    """Check whether a registration photo is good enough to make a template.

    Parameters
    ----------
    image : np.ndarray
        The whole photo (uint8, grey or BGR); only its size is used, for framing.
    detections : Sequence[Detection]
        Every face the detector found in the photo; ``main`` may or may not be among them.
    main : Detection
        The face being registered.
    aligned_face : np.ndarray
        ``main`` aligned to the 112x112 ArcFace template (uint8, BGR or grey).
    policy : QualityPolicy
        Thresholds.

    Returns
    -------
    QualityReport
        All failed checks as issues (most actionable first), and the measured ``metrics``:
        face_px, yaw, pitch, roll, sharpness, brightness, contrast, score, faces, margin.

    Raises
    ------
    ValueError
        If an array has an unsupported shape or dtype, or ``main``'s landmarks are degenerate.
    """
    shape = np.asarray(image).shape
    if len(shape) not in (2, 3):
        raise ValueError(f"image must be HxW or HxWxC, got shape {shape}")
    height, width = shape[:2]
    x, y, w, h = main.box
    face_px = main.size
    # Same face: the very object, or a duplicate box the detector's NMS let through.
    others = [d for d in detections if d is not main and _overlap(d, main) < 0.5]
    large_others = [d for d in others if d.size >= policy.other_face_ratio * face_px]
    margin_px = min(x, y, width - (x + w), height - (y + h))
    margin = margin_px / face_px if face_px > 0.0 else -1.0
    yaw, pitch, roll = estimate_pose(main.landmarks, policy.frontal_landmarks)
    sharp = sharpness(aligned_face)
    brightness, contrast = _exposure(aligned_face)

    metrics = {
        "face_px": face_px,
        "yaw": yaw,
        "pitch": pitch,
        "roll": roll,
        "sharpness": sharp,
        "brightness": brightness,
        "contrast": contrast,
        "score": float(main.score),
        "faces": float(1 + len(others)),
        "margin": float(margin),
    }

    # Framing first (a retake fixes it and may fix the rest), then pose, then light, then focus:
    # a dark photo is also noisy and soft, so light is worth fixing before judging blur.
    issues: list[QualityIssue] = []
    if large_others:
        issues.append(QualityIssue("several_faces", _MSG_SEVERAL_FACES))
    if margin < policy.min_margin_ratio:
        issues.append(QualityIssue("face_cut_off", _MSG_CUT_OFF))
    if face_px < policy.min_face_px:
        issues.append(
            QualityIssue("face_too_small", f"face too small ({face_px:.0f} px): move closer to the camera")
        )
    if main.score < policy.min_detection_score:
        issues.append(QualityIssue("low_confidence", _MSG_LOW_CONFIDENCE))
    if abs(yaw) > policy.max_yaw_deg:
        issues.append(QualityIssue("head_turned", _MSG_HEAD_TURNED))
    if abs(pitch) > policy.max_pitch_deg:
        issues.append(QualityIssue("head_tilted_up_down", _MSG_HEAD_UP_DOWN))
    if abs(roll) > policy.max_roll_deg:
        issues.append(QualityIssue("head_tilted", _MSG_HEAD_TILTED))
    if brightness < policy.min_brightness:
        issues.append(QualityIssue("too_dark", _MSG_DARK))
    if brightness > policy.max_brightness:
        issues.append(QualityIssue("too_bright", _MSG_BRIGHT))
    if contrast < policy.min_contrast:
        issues.append(QualityIssue("low_contrast", _MSG_LOW_CONTRAST))
    if sharp < policy.min_sharpness:
        issues.append(QualityIssue("too_blurry", _MSG_BLURRY))
    return QualityReport(issues=tuple(issues), metrics=metrics)
