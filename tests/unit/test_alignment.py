"""5-point similarity alignment on synthetic point sets and synthetic images with drawn landmarks."""

from __future__ import annotations

import math
from collections.abc import Callable

import cv2
import numpy as np
import pytest

from face_engine import alignment
from face_engine.alignment import ALIGNED_SIZE, TEMPLATE, align_face, similarity_transform

# A drawn landmark is a Gaussian spot; its intensity-weighted centroid is measured in this window.
CENTROID_RADIUS = 6


def similarity(degrees: float, scale: float, shift: tuple[float, float]) -> np.ndarray:
    """The 2x3 matrix of a rotation by ``degrees`` (clockwise on screen), ``scale`` and ``shift``."""
    angle = math.radians(degrees)
    rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    return np.hstack([scale * rotation, np.asarray(shift, dtype=np.float64)[:, None]])


def apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    return np.asarray(np.asarray(points, dtype=np.float64) @ matrix[:, :2].T + matrix[:, 2])


def spot_centroids(channel: np.ndarray, around: np.ndarray) -> np.ndarray:
    """Intensity-weighted centroid (pixel-index coordinates) of the spot near each point."""
    found = []
    for x, y in around:
        x0, y0 = round(x), round(y)
        rows = slice(y0 - CENTROID_RADIUS, y0 + CENTROID_RADIUS + 1)
        cols = slice(x0 - CENTROID_RADIUS, x0 + CENTROID_RADIUS + 1)
        window = channel[rows, cols].astype(np.float64)
        window -= window.min()
        yy, xx = np.mgrid[rows, cols]
        found.append(((window * xx).sum() / window.sum(), (window * yy).sum() / window.sum()))
    return np.asarray(found)


@pytest.fixture
def face_photo() -> Callable[[float, float], tuple[np.ndarray, np.ndarray]]:
    """Factory: a BGR photo with a Gaussian spot at each landmark of TEMPLATE rotated and scaled.

    The face is placed with a margin of half its size to every border. The spots are as wide as
    the face is large (sigma 1.2 px at template size), so after alignment every spot has the same
    shape and its centroid is where the landmark went.
    """

    def make(degrees: float, scale: float) -> tuple[np.ndarray, np.ndarray]:
        placed = apply(similarity(degrees, scale, (0.0, 0.0)), TEMPLATE)
        margin = 56.0 * scale
        landmarks = placed - placed.min(axis=0) + margin
        side = int(landmarks.max() + margin)
        yy, xx = np.mgrid[0:side, 0:side].astype(np.float64)
        sigma = 1.2 * scale
        spots = sum(np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2.0 * sigma**2)) for x, y in landmarks)
        grey = np.clip(np.rint(250.0 * np.asarray(spots)), 0, 255).astype(np.uint8)
        return np.dstack([grey, grey, grey]), landmarks

    return make


@pytest.mark.parametrize(
    ("degrees", "scale", "shift"),
    [
        (0.0, 1.0, (0.0, 0.0)),
        (0.0, 2.5, (-40.0, 15.0)),
        (30.0, 0.5, (100.0, 200.0)),
        (-75.0, 3.0, (12.5, -7.25)),
        (180.0, 1.7, (300.0, 20.0)),
    ],
)
def test_similarity_transform_recovers_a_known_similarity(degrees, scale, shift):
    # given
    expected = similarity(degrees, scale, shift)
    source = TEMPLATE
    target = apply(expected, source)

    # when
    matrix = similarity_transform(source, target)

    # then
    np.testing.assert_allclose(matrix, expected, atol=1e-9)


def test_similarity_transform_is_least_squares_under_noise():
    # given: the known similarity plus small noise on the targets
    expected = similarity(20.0, 1.5, (30.0, -10.0))
    noise = np.random.default_rng(3).normal(0.0, 0.05, TEMPLATE.shape)
    target = apply(expected, TEMPLATE) + noise

    # when
    matrix = similarity_transform(TEMPLATE, target)

    # then: close to the true transform, and no worse a fit than the true transform itself
    np.testing.assert_allclose(matrix[:, :2], expected[:, :2], atol=0.01)
    np.testing.assert_allclose(apply(matrix, TEMPLATE), apply(expected, TEMPLATE), atol=0.25)
    fitted_error = np.square(apply(matrix, TEMPLATE) - target).sum()
    true_error = np.square(apply(expected, TEMPLATE) - target).sum()
    assert fitted_error <= true_error + 1e-12


def test_similarity_transform_maps_template_onto_itself_as_identity():
    # given
    template = TEMPLATE

    # when
    matrix = similarity_transform(template, template)

    # then
    np.testing.assert_allclose(matrix, [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], atol=1e-12)


def test_similarity_transform_never_mirrors():
    # given: the template mirrored left-right, which no rotation + scale can produce
    mirrored = TEMPLATE * [-1.0, 1.0]

    # when
    matrix = similarity_transform(TEMPLATE, mirrored)

    # then: a proper rotation (positive determinant), not a reflection
    assert np.linalg.det(matrix[:, :2]) > 0.0


@pytest.mark.parametrize(
    ("source", "message"),
    [
        pytest.param(np.full((5, 2), 42.0), "source points are all at one place", id="all-equal"),
        pytest.param(np.zeros((1, 2)), "at least 2 points", id="one-point"),
    ],
)
def test_similarity_transform_rejects_degenerate_landmarks(source, message):
    # given
    target = TEMPLATE[: len(source)]

    # when / then
    with pytest.raises(ValueError, match=message):
        similarity_transform(source, target)


def test_similarity_transform_rejects_mismatched_shapes():
    # given
    source, target = TEMPLATE, TEMPLATE[:4]

    # when / then
    with pytest.raises(ValueError, match="same shape"):
        similarity_transform(source, target)


def test_align_face_rejects_degenerate_landmarks():
    # given
    image = np.zeros((200, 200, 3), dtype=np.uint8)
    landmarks = np.full((5, 2), 100.0)

    # when / then
    with pytest.raises(ValueError, match="all at one place"):
        align_face(image, landmarks)


@pytest.mark.parametrize(
    ("degrees", "scale"), [(0.0, 1.0), (15.0, 2.0), (-30.0, 1.5), (45.0, 0.8), (120.0, 1.2)]
)
def test_align_face_puts_the_landmark_pattern_at_the_template(face_photo, degrees, scale):
    # given: spots drawn at the landmarks of a rotated and scaled face
    image, landmarks = face_photo(degrees, scale)

    # when
    aligned = align_face(image, landmarks)

    # then: every spot lands on its template point (well within 1 px)
    assert aligned.shape == (ALIGNED_SIZE, ALIGNED_SIZE, 3)
    assert aligned.dtype == np.uint8
    found = spot_centroids(aligned[..., 0], TEMPLATE)
    np.testing.assert_allclose(found, TEMPLATE, atol=0.1)


@pytest.mark.parametrize("size", [112, 224])
def test_align_face_scales_the_template_with_the_crop_size(face_photo, size):
    # given
    image, landmarks = face_photo(10.0, 2.0)

    # when
    aligned = align_face(image, landmarks, size=size)

    # then
    assert aligned.shape == (size, size, 3)
    expected = TEMPLATE * (size / ALIGNED_SIZE)
    np.testing.assert_allclose(spot_centroids(aligned[..., 0], expected), expected, atol=0.15)


@pytest.mark.parametrize(
    ("degrees", "scale", "factor"),
    [(0.0, 4.0, 2), (-30.0, 4.0, 2), (10.0, 6.5, 3), (25.0, 9.0, 4)],
)
def test_align_face_shrinks_large_faces_without_moving_them(face_photo, monkeypatch, degrees, scale, factor):
    # given: a face several times the crop size, and a spy on the shrink step
    image, landmarks = face_photo(degrees, scale)
    factors: list[int] = []
    shrink = alignment._shrink

    def spy(img: np.ndarray, matrix: np.ndarray, by: int) -> tuple[np.ndarray, np.ndarray]:
        factors.append(by)
        return shrink(img, matrix, by)

    monkeypatch.setattr(alignment, "_shrink", spy)
    direct_matrix = similarity_transform(landmarks, TEMPLATE)
    direct = cv2.warpAffine(
        image,
        direct_matrix,
        (ALIGNED_SIZE, ALIGNED_SIZE),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )

    # when
    aligned = align_face(image, landmarks)

    # then: the shrink path ran, and the spots sit where the unshrunk warp puts them (to 0.05 px:
    # a forgotten half-pixel correction of the area downscale moves them by 0.1-0.25 px)
    assert factors == [factor]
    shrunk_spots = spot_centroids(aligned[..., 0], TEMPLATE)
    direct_spots = spot_centroids(direct[..., 0], TEMPLATE)
    np.testing.assert_allclose(shrunk_spots, direct_spots, atol=0.05)
    np.testing.assert_allclose(shrunk_spots, TEMPLATE, atol=0.05)
    assert np.abs(aligned.astype(np.int16) - direct.astype(np.int16)).mean() < 0.5


def test_align_face_does_not_shrink_faces_near_the_crop_size(face_photo, monkeypatch):
    # given: a face 1.8 times the crop size (down to half size the warp samples directly)
    image, landmarks = face_photo(0.0, 1.8)

    def fail(*_: object) -> None:
        raise AssertionError("_shrink must not run for a face under twice the crop size")

    monkeypatch.setattr(alignment, "_shrink", fail)

    # when
    aligned = align_face(image, landmarks)

    # then
    np.testing.assert_allclose(spot_centroids(aligned[..., 0], TEMPLATE), TEMPLATE, atol=0.1)
