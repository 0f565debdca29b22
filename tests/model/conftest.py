"""Fixtures of the model tests: one real engine for the session and the real labelled photos.

The photos live outside the repository (``../shared/data/faces`` next to the repo root, or wherever
``EVENTFACE_FACES_DIR`` points) and are never copied into it. When they cannot be found the tests
fail with instructions instead of skipping: a model test that silently does not run is a defect.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from eventface.bench.dataset import LabelledImage, read_labels
from face_engine.decoding import decode_image
from face_engine.engine import EngineConfig, FaceEngine, FaceResult


@pytest.fixture(scope="session")
def labels(faces_dir: Path) -> dict[str, LabelledImage]:
    """Every row of labels.csv, by file path relative to the face set."""
    return {row.file: row for row in read_labels(faces_dir)}


@pytest.fixture(scope="session")
def label_of(labels: dict[str, LabelledImage]) -> Callable[[str], LabelledImage]:
    """The label of a photo the tests name; a photo missing from labels.csv fails the test."""

    def find(file: str) -> LabelledImage:
        if file not in labels:
            pytest.fail(f"{file} is not listed in labels.csv: update the test's photo list", pytrace=False)
        return labels[file]

    return find


@pytest.fixture(scope="session")
def engine(tmp_path_factory: pytest.TempPathFactory) -> FaceEngine:
    """One engine for the session, preparing its models into a fresh directory (about 1 s)."""
    face_engine = FaceEngine(EngineConfig(models_dir=tmp_path_factory.mktemp("models")))
    face_engine.warm_up()
    return face_engine


@pytest.fixture(scope="session")
def photo_bytes(faces_dir: Path, label_of: Callable[[str], LabelledImage]) -> Callable[[str], bytes]:
    """Factory: the bytes of a labelled photo."""

    def read(file: str) -> bytes:
        label_of(file)
        return (faces_dir / file).read_bytes()

    return read


@pytest.fixture(scope="session")
def photo(photo_bytes: Callable[[str], bytes]) -> Callable[[str], np.ndarray]:
    """Factory: a labelled photo decoded to BGR, decoded once per session (read-only)."""
    cache: dict[str, np.ndarray] = {}

    def load(file: str) -> np.ndarray:
        if file not in cache:
            image = decode_image(photo_bytes(file))
            image.flags.writeable = False
            cache[file] = image
        return cache[file]

    return load


@pytest.fixture(scope="session")
def analysed(engine: FaceEngine, photo: Callable[[str], np.ndarray]) -> Callable[[str], FaceResult]:
    """Factory: ``engine.analyse`` of a labelled photo, computed once per session."""
    cache: dict[str, FaceResult] = {}

    def analyse(file: str) -> FaceResult:
        if file not in cache:
            cache[file] = engine.analyse(photo(file))
        return cache[file]

    return analyse
