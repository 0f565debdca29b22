"""Fixtures of the end-to-end tests: the local stack started for real, and the labelled photos.

The photos live outside the repository (``../shared/data/faces``, or ``EVENTFACE_FACES_DIR``).
When they cannot be found the tests fail with instructions instead of skipping: an end-to-end test
that silently does not run is a defect.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from eventface.local.stack import LocalStack, running_stack


@pytest.fixture(scope="session")
def photo_bytes(faces_dir: Path) -> Callable[[str], bytes]:
    """Factory: the bytes of a photo of the face set; a missing photo fails the test."""

    def read(file: str) -> bytes:
        path = faces_dir / file
        if not path.is_file():
            pytest.fail(f"{path} is missing from the face set: update the test's photo list", pytrace=False)
        return path.read_bytes()

    return read


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    """The local stack (moto, both Chalice apps, event pump) for the module's tests."""
    with running_stack() as local:
        yield local
