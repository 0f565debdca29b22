"""Synthetic masks, the mask classifier, mask-aware similarity and the threshold table."""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np
import pytest

from face_engine.errors import ModelMismatchError
from face_engine.masks import (
    DEFAULT_MASK_CLASSIFIER,
    MASK_POLYGON,
    MASK_STYLES,
    MaskClassifier,
    draw_mask,
    fit_mask_classifier,
    mask_features,
    synthetic_masked,
)
from face_engine.matching import similarities, similarity
from face_engine.thresholds import DEFAULT_FAR, THRESHOLDS, threshold_for
from face_engine.types import Embedding

SFACE_ID = "sface-2021dec"
SKIN_TONES = ((120, 150, 200), (90, 120, 170), (60, 80, 120), (150, 175, 220), (105, 135, 185))


def polygon_region(grow: int = 0) -> np.ndarray:
    """Boolean 112x112 mask of MASK_POLYGON, dilated by ``grow`` pixels."""
    region = np.zeros((112, 112), dtype=np.uint8)
    cv2.fillPoly(region, [MASK_POLYGON], 255)
    if grow:
        return np.asarray(cv2.dilate(region, np.ones((2 * grow + 1, 2 * grow + 1), np.uint8)) > 0)
    return region > 0


def unit(vector: list[float] | np.ndarray) -> np.ndarray:
    array = np.asarray(vector, dtype=np.float32)
    return np.asarray(array / np.linalg.norm(array), dtype=np.float32)


def sigmoid(z: np.ndarray) -> np.ndarray:
    return np.asarray(1.0 / (1.0 + np.exp(-z)))


def predict(classifier: MaskClassifier, features: np.ndarray) -> np.ndarray:
    """Probabilities of the classifier on raw feature rows (what ``probability`` does per face)."""
    x = (features - np.asarray(classifier.mean)) / np.asarray(classifier.std)
    return sigmoid(x @ np.asarray(classifier.weights) + classifier.bias)


@pytest.fixture
def make_face() -> Callable[..., np.ndarray]:
    """Factory: a 112x112 BGR synthetic face: skin with texture, dark eyes and brows, a mouth."""

    def make(
        skin: tuple[int, int, int] = SKIN_TONES[0], seed: int = 0, light_gradient: float = 0.0
    ) -> np.ndarray:
        rng = np.random.default_rng(seed)
        face = np.empty((112, 112, 3), dtype=np.float32)
        face[:] = skin
        face += rng.normal(0.0, 6.0, (112, 112, 1))
        face *= np.linspace(1.0 - light_gradient, 1.0 + light_gradient, 112, dtype=np.float32)[None, :, None]
        canvas = np.clip(face, 0, 255).astype(np.uint8)
        for x in (38, 74):
            cv2.ellipse(canvas, (x, 52), (8, 4), 0, 0, 360, (40, 35, 30), -1)
            cv2.line(canvas, (x - 10, 40), (x + 10, 40), (50, 45, 40), 3)
        cv2.line(canvas, (56, 55), (54, 72), tuple(int(c * 0.8) for c in skin), 2)
        cv2.ellipse(canvas, (56, 92), (14, 4), 0, 0, 360, (70, 60, 150), -1)
        return canvas

    return make


# --- draw_mask / synthetic_masked --------------------------------------------------------------


@pytest.mark.parametrize("colour", MASK_STYLES)
def test_draw_mask_changes_only_pixels_inside_or_next_to_the_polygon(make_face, colour):
    # given
    face = make_face()

    # when
    masked = draw_mask(face, colour)

    # then: the upper face and everything more than 2 px from the polygon is untouched, the
    # polygon's inside is painted
    changed = (masked != face).any(axis=2)
    assert masked.shape == face.shape and masked.dtype == np.uint8
    assert not changed[:50].any()
    assert not (changed & ~polygon_region(grow=2)).any()
    inside = cv2.erode(polygon_region().astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    assert changed[inside].mean() > 0.95


@pytest.mark.parametrize("colour", MASK_STYLES)
def test_draw_mask_paints_the_mask_colour_on_an_evenly_lit_face(colour):
    # given: a flat grey face, so the shading is 1 everywhere
    face = np.full((112, 112, 3), 128, dtype=np.uint8)

    # when
    masked = draw_mask(face, colour)

    # then
    inside = cv2.erode(polygon_region().astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    np.testing.assert_allclose(masked[inside].mean(axis=0), colour, atol=1.0)


def test_draw_mask_is_shaded_like_the_face(make_face):
    # given: a face lit from the right (brightness rising from 0.6 to 1.4 left to right)
    face = make_face(light_gradient=0.4)

    # when
    masked = draw_mask(face, MASK_STYLES[3])

    # then: the grey cloth mask is darker on the left than on the right, unlike on a flat face
    grey = cv2.cvtColor(masked, cv2.COLOR_BGR2GRAY).astype(np.float32)
    flat = cv2.cvtColor(draw_mask(make_face(), MASK_STYLES[3]), cv2.COLOR_BGR2GRAY).astype(np.float32)
    assert grey[80:100, 30:45].mean() < 0.95 * grey[80:100, 67:82].mean()
    assert flat[80:100, 30:45].mean() == pytest.approx(flat[80:100, 67:82].mean(), rel=0.02)


def test_draw_mask_leaves_its_input_alone(make_face):
    # given
    face = make_face()
    before = face.copy()

    # when
    draw_mask(face, MASK_STYLES[0])

    # then
    np.testing.assert_array_equal(face, before)


def test_synthetic_masked_draws_each_style_once(make_face):
    # given
    face = make_face()

    # when
    variants = synthetic_masked(face)

    # then
    assert len(variants) == len(MASK_STYLES)
    for variant, colour in zip(variants, MASK_STYLES, strict=True):
        np.testing.assert_array_equal(variant, draw_mask(face, colour))
    lower_means = {tuple(v[80:100, 40:72].reshape(-1, 3).mean(axis=0).round()) for v in variants}
    assert len(lower_means) == len(MASK_STYLES)


# --- mask features and classifier --------------------------------------------------------------


def test_mask_features_are_eleven_numbers_that_see_the_mask(make_face):
    # given
    face = make_face()

    # when
    plain = mask_features(face)
    masked = mask_features(draw_mask(face, MASK_STYLES[0]))

    # then: the lower-face-minus-forehead colour difference grows when a blue mask is drawn
    assert plain.shape == masked.shape == (11,)
    assert plain.dtype == np.float32
    assert np.abs(masked[:3]).sum() > np.abs(plain[:3]).sum() + 10.0


def test_fit_mask_classifier_separates_separable_features():
    # given: 11-dimensional features, the masked class shifted along two dimensions
    rng = np.random.default_rng(7)
    plain = rng.normal(0.0, 1.0, (60, 11))
    masked = rng.normal(0.0, 1.0, (40, 11))
    masked[:, 0] += 6.0
    masked[:, 10] -= 6.0
    features = np.vstack([plain, masked]).astype(np.float32)
    labels = np.array([0] * 60 + [1] * 40)

    # when
    classifier = fit_mask_classifier(features, labels)

    # then
    predicted = predict(classifier, features) >= 0.5
    assert (predicted == labels.astype(bool)).mean() == 1.0
    assert classifier.weights[0] > 0.0 > classifier.weights[10]
    assert len(classifier.mean) == len(classifier.std) == len(classifier.weights) == 11


def test_fit_mask_classifier_is_deterministic():
    # given
    rng = np.random.default_rng(11)
    features = rng.normal(0.0, 1.0, (30, 11)).astype(np.float32)
    labels = (features[:, 3] > 0).astype(int)

    # when
    first = fit_mask_classifier(features, labels, steps=300)
    second = fit_mask_classifier(features, labels, steps=300)

    # then
    assert first == second


def test_mask_classifier_probability_is_the_logistic_of_the_standardised_features(make_face):
    # given: a classifier with known parameters
    face = make_face()
    weights = tuple(float(w) for w in np.linspace(-0.05, 0.05, 11))
    classifier = MaskClassifier(mean=(1.0,) * 11, std=(2.0,) * 11, weights=weights, bias=0.3)

    # when
    probability = classifier.probability(face)

    # then
    z = ((mask_features(face) - 1.0) / 2.0) @ np.asarray(weights) + 0.3
    assert probability == pytest.approx(1.0 / (1.0 + np.exp(-z)), rel=1e-6)
    assert 0.0 < probability < 1.0


def test_mask_classifier_fitted_on_synthetic_faces_tells_masked_from_plain(make_face):
    # given: a classifier fitted on synthetic faces, every skin tone with and without each mask
    train = [make_face(skin=skin, seed=seed) for seed, skin in enumerate(SKIN_TONES[:4])]
    features = [mask_features(f) for f in train] + [
        mask_features(m) for f in train for m in synthetic_masked(f)
    ]
    labels = np.array([0] * len(train) + [1] * (len(features) - len(train)))
    classifier = fit_mask_classifier(np.stack(features), labels)
    unseen = make_face(skin=SKIN_TONES[4], seed=99)

    # when
    plain = classifier.probability(unseen)
    masked = [classifier.probability(m) for m in synthetic_masked(unseen)]

    # then
    assert plain < 0.5
    assert min(masked) > 0.5


def test_default_mask_classifier_has_one_weight_per_feature():
    # given / when
    classifier = DEFAULT_MASK_CLASSIFIER

    # then
    assert len(classifier.mean) == len(classifier.std) == len(classifier.weights) == 11
    assert min(classifier.std) > 0.0


# --- matching ----------------------------------------------------------------------------------


@pytest.fixture
def templates() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A probe and 3 plain and 3 masked unit templates in 4 dimensions."""
    probe = unit([1.0, 0.0, 0.0, 0.0])
    plain = np.stack([unit([1.0, 1.0, 0.0, 0.0]), unit([0.0, 1.0, 0.0, 0.0]), unit([-1.0, 0.0, 1.0, 0.0])])
    masked = np.stack([unit([1.0, 0.0, 0.0, 0.0]), unit([1.0, 1.0, 1.0, 1.0]), unit([0.0, 0.0, 0.0, 1.0])])
    return probe, plain, masked


def test_similarities_of_an_unmasked_probe_are_plain_cosines(templates):
    # given
    probe, plain, masked = templates

    # when
    scores = similarities(probe, plain, masked, probe_masked=False)

    # then
    np.testing.assert_allclose(scores, [np.sqrt(0.5), 0.0, -np.sqrt(0.5)], atol=1e-6)


def test_similarities_of_a_masked_probe_average_plain_and_masked(templates):
    # given
    probe, plain, masked = templates

    # when
    scores = similarities(probe, plain, masked, probe_masked=True)

    # then
    expected = 0.5 * (np.array([np.sqrt(0.5), 0.0, -np.sqrt(0.5)]) + np.array([1.0, 0.5, 0.0]))
    np.testing.assert_allclose(scores, expected, atol=1e-6)
    assert scores.dtype == np.float32


def test_similarities_of_a_masked_probe_without_masked_templates_are_plain(templates):
    # given
    probe, plain, _ = templates

    # when
    scores = similarities(probe, plain, None, probe_masked=True)

    # then
    np.testing.assert_allclose(scores, plain @ probe, atol=1e-6)


def test_similarity_of_embeddings_of_one_model_is_their_cosine():
    # given
    a = Embedding(vector=unit([1.0, 2.0, 2.0]), model_id=SFACE_ID)
    b = Embedding(vector=unit([2.0, 1.0, 2.0]), model_id=SFACE_ID)

    # when
    score = similarity(a, b)

    # then
    assert score == pytest.approx(8.0 / 9.0, rel=1e-6)


def test_similarity_refuses_embeddings_of_different_models():
    # given
    a = Embedding(vector=unit([1.0, 0.0]), model_id=SFACE_ID)
    b = Embedding(vector=unit([1.0, 0.0]), model_id="arcface-r100")

    # when / then
    with pytest.raises(
        ModelMismatchError,
        match=r"cannot compare a sface-2021dec embedding with a arcface-r100 one: re-register the face",
    ):
        similarity(a, b)


# --- thresholds --------------------------------------------------------------------------------


def test_threshold_for_the_default_far_is_the_table_value():
    # given
    model_id = SFACE_ID

    # when
    value = threshold_for(model_id)

    # then: the table's row at one false accept in a thousand (values change with calibration)
    assert DEFAULT_FAR == 1e-3
    (row,) = [row for row in THRESHOLDS[model_id] if row.far == DEFAULT_FAR]
    assert value == row.similarity
    assert 0.0 < value < 1.0


def test_threshold_for_an_unknown_model_is_a_model_mismatch():
    # given
    model_id = "facenet-512"

    # when / then
    with pytest.raises(
        ModelMismatchError, match=r"no thresholds for model 'facenet-512': known models are \['sface"
    ):
        threshold_for(model_id)


@pytest.mark.parametrize("far", [0.05, 1e-5, 0.0011])
def test_threshold_for_an_unknown_far_lists_the_choices(far):
    # given
    model_id = SFACE_ID

    # when / then
    with pytest.raises(ValueError, match=r"no threshold at FAR .* choose one of \[0\.0001, 0\.001, 0\.01\]"):
        threshold_for(model_id, far)


def test_thresholds_rise_as_the_false_accept_rate_falls():
    # given
    rates = (1e-2, 1e-3, 1e-4)

    # when
    values = [threshold_for(SFACE_ID, far) for far in rates]

    # then
    assert values == sorted(values)
    assert len(set(values)) == len(values)


def test_every_threshold_says_where_it_comes_from():
    # given / when
    rows = [row for table in THRESHOLDS.values() for row in table]

    # then
    assert rows
    assert all(row.provenance.strip() and -1.0 <= row.similarity <= 1.0 for row in rows)
