"""The demo cast from the real insightface wheel on PyPI, checked with the real face engine.

The first run downloads the wheel (1.2 MB) into ``~/.cache/eventface/demo`` with pip; later runs
read it from there. Masked shots are compared with masked templates, the others with plain ones,
as the platform does.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from eventface.demo.photos import SHOT_KINDS, DemoCast, load_cast
from face_engine.decoding import decode_image
from face_engine.engine import FaceEngine
from face_engine.thresholds import threshold_for

pytestmark = pytest.mark.model

MASKED = SHOT_KINDS.index("masked")


@pytest.fixture(scope="module")
def cast(engine: FaceEngine) -> DemoCast:
    return load_cast(engine=engine)


@pytest.fixture(scope="module")
def templates(cast: DemoCast, engine: FaceEngine) -> tuple[np.ndarray, np.ndarray]:
    """Plain and masked templates of the six registration photos (rows in cast order)."""
    plain, masked = [], []
    for person in cast.people:
        face = engine.analyse(decode_image(person.registration))
        template, masked_template = engine.templates(face.aligned)
        plain.append(template.vector)
        masked.append(masked_template.vector)
    return np.stack(plain), np.stack(masked)


def test_six_people_and_a_stranger(cast: DemoCast) -> None:
    assert [p.name for p in cast.people] == [f"Person {n}" for n in range(1, 7)]
    assert all(len(p.camera_shots) == len(SHOT_KINDS) for p in cast.people)
    assert len(cast.strangers) == 1
    assert "sha256 verified" in cast.source


def test_each_registration_photo_has_one_clear_face(cast: DemoCast, engine: FaceEngine) -> None:
    for person in cast.people:
        faces = engine.detect(decode_image(person.registration))
        assert len(faces) == 1, person.name
        assert faces[0].score >= 0.8, person.name
        assert faces[0].size >= 80, person.name


def test_camera_shots_match_their_person_best(
    cast: DemoCast, engine: FaceEngine, templates: tuple[np.ndarray, np.ndarray]
) -> None:
    threshold = threshold_for("sface-2021dec")
    plain, masked = templates
    for index, person in enumerate(cast.people):
        for kind, shot in zip(SHOT_KINDS, person.camera_shots, strict=True):
            face = engine.analyse(decode_image(shot))
            assert face.masked == (kind == "masked"), (person.name, kind, face.mask_probability)
            similarities = (masked if face.masked else plain) @ face.embedding.vector
            own = float(similarities[index])
            others = float(np.delete(similarities, index).max())
            assert own >= threshold, (person.name, kind, own)
            assert own > others, (person.name, kind, own, others)


def test_the_stranger_matches_nobody(
    cast: DemoCast, engine: FaceEngine, templates: tuple[np.ndarray, np.ndarray]
) -> None:
    threshold = threshold_for("sface-2021dec")
    plain, _ = templates
    for stranger in cast.strangers:
        face = engine.analyse(decode_image(stranger))
        assert not face.masked
        assert float((plain @ face.embedding.vector).max()) < threshold


def test_loading_is_fast_and_deterministic(cast: DemoCast, engine: FaceEngine) -> None:
    started = time.perf_counter()
    again = load_cast(engine=engine)
    elapsed = time.perf_counter() - started
    assert again == cast
    assert elapsed < 2.0
