"""The campaign gallery port on S3 (moto server): registration, prefetch, search, erasure."""

from __future__ import annotations

import numpy as np
import pytest

from eventface.adapters.s3_gallery_port import S3GalleryPort
from eventface.domain.errors import InvalidInputError
from eventface.domain.model import Probe, Template

GALLERY = "acme/rally"
MODEL = "sface-2021dec"


def _unit(seed: int) -> tuple[float, ...]:
    v = np.random.default_rng(seed).standard_normal(128)
    return tuple(float(x) for x in v / np.linalg.norm(v))


def _template(seed: int, kind: str = "plain") -> Template:
    return Template(model_id=MODEL, kind=kind, vector=_unit(seed))


def _probe(seed: int, model_id: str = MODEL) -> Probe:
    return Probe(model_id=model_id, vector=_unit(seed), masked=False)


def test_prefetched_gallery_finds_a_participant_registered_by_another_process(bucket) -> None:
    # given: a warm scanner that has searched the gallery once, and a registration elsewhere
    scanner, registrar = S3GalleryPort(bucket), S3GalleryPort(bucket)
    registrar.add(GALLERY, "ann", (_template(1), _template(1, "masked")))
    scanner.prefetch(GALLERY)
    assert scanner.identify(GALLERY, _probe(1), 1e-3).participant_id == "ann"
    registrar.add(GALLERY, "bob", (_template(2),))
    # when: the next scan prefetches (the engine would run meanwhile) and searches
    scanner.prefetch(GALLERY)
    scanner.prefetch(GALLERY)  # a second prefetch before the search changes nothing
    found = scanner.identify(GALLERY, _probe(2), 1e-3)
    # then
    assert found.participant_id == "bob"
    assert found.similarity == pytest.approx(1.0, abs=0.02) and found.threshold is not None


def test_search_without_prefetch_and_after_erasure(bucket) -> None:
    # given
    port = S3GalleryPort(bucket)
    port.add(GALLERY, "ann", (_template(3),))
    # when
    before = port.identify(GALLERY, _probe(3), 1e-3)
    erased = port.delete_participant(GALLERY, "ann")
    port.prefetch(GALLERY)
    after = port.identify(GALLERY, _probe(3), 1e-3)
    # then
    assert before.participant_id == "ann"
    assert erased is True and after.participant_id is None


def test_unknown_gallery_matches_nobody_and_a_foreign_model_is_refused(bucket) -> None:
    # given
    port = S3GalleryPort(bucket)
    port.prefetch("acme/none")
    # when / then
    assert port.identify("acme/none", _probe(4), 1e-3).participant_id is None
    port.add(GALLERY, "ann", (_template(4),))
    with pytest.raises(InvalidInputError, match="update the device's model"):
        port.identify(GALLERY, _probe(4, model_id="other-model"), 1e-3)
