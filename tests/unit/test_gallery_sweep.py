"""sweep_gallery_erasures with a fake gallery: the policy's grace, and failures reported."""

from __future__ import annotations

from datetime import timedelta

import pytest

from eventface.adapters.memory import InMemoryGallery, in_memory_ports
from eventface.bootstrap import Container, bootstrap
from eventface.domain.errors import DependencyError
from eventface.domain.model import GallerySweep
from eventface.services.deps import Policy
from eventface.services.galleries import sweep_gallery_erasures
from eventface.settings import Settings


class RecordingGallery(InMemoryGallery):
    """A gallery whose sweep answers ``report`` and records the grace it was given."""

    def __init__(self, report: GallerySweep) -> None:
        super().__init__()
        self.report = report
        self.graces: list[timedelta] = []

    def sweep_erasures(self, grace: timedelta) -> GallerySweep:
        self.graces.append(grace)
        return self.report


def _deps(gallery: InMemoryGallery) -> Container:
    policy = Policy(gallery_retired_grace=timedelta(minutes=15))
    return bootstrap(Settings({}), policy=policy, **in_memory_ports(gallery=gallery)).deps


def test_sweep_gallery_erasures_uses_the_policy_grace_and_returns_the_report() -> None:
    # given
    gallery = RecordingGallery(GallerySweep(galleries=2, compacted=1, purged=3, pending=1))
    # when
    report = sweep_gallery_erasures(_deps(gallery))
    # then
    assert gallery.graces == [timedelta(minutes=15)]
    assert report == GallerySweep(galleries=2, compacted=1, purged=3, pending=1)


def test_sweep_gallery_erasures_names_the_galleries_that_failed() -> None:
    # given
    gallery = RecordingGallery(GallerySweep(galleries=3, pending=1, failed=("acme/rally: S3 said no",)))
    # when / then
    with pytest.raises(DependencyError, match=r"1 of 3 galleries \(acme/rally: S3 said no\)"):
        sweep_gallery_erasures(_deps(gallery))
