"""Fixtures shared by every test tier: the labelled face photos that live outside the repository.

The photos are ``../shared/data/faces`` beside the repository, or wherever ``EVENTFACE_FACES_DIR``
points. When they cannot be found the tests that need them fail with instructions instead of
skipping: a test that silently does not run is a defect.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

FACES_DIR_ENV = "EVENTFACE_FACES_DIR"
DEFAULT_FACES_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "faces"


@pytest.fixture(scope="session")
def faces_dir() -> Path:
    """The labelled face set: ``$EVENTFACE_FACES_DIR`` if set, else ../shared/data/faces."""
    configured = os.environ.get(FACES_DIR_ENV)
    directory = Path(configured) if configured else DEFAULT_FACES_DIR
    if not (directory / "labels.csv").is_file():
        where = f"{FACES_DIR_ENV}={configured}" if configured else f"the default {DEFAULT_FACES_DIR}"
        pytest.fail(
            f"these tests need the labelled face photos, but {where} has no labels.csv: "
            f"put the face set at {DEFAULT_FACES_DIR} or set {FACES_DIR_ENV} to the folder that "
            "holds labels.csv and images/ (never copy the photos into the repository)",
            pytrace=False,
        )
    return directory
