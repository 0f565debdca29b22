"""Erasure leaves no copy of the template behind: in S3 (every object and every version of the
gallery bucket, after the compaction sweep and the grace period) and in a warm reader's spill file.

The attack: after ``DELETE .../participants/{p}`` the API no longer recognises the person, but the
bytes of their template used to stay in the gallery's delta object next to a tombstone, and in the
warm index's re-rank file. These tests search the raw storage for the template's float32 bytes
and its int8 codes.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from eventface import aws
from eventface.adapters.gallery_cache import CachedGallery
from eventface.adapters.s3_gallery import S3GalleryStore
from eventface.adapters.s3_gallery_port import S3GalleryPort
from eventface.bootstrap import Container, bootstrap
from eventface.consumers import gallery_compaction
from eventface.domain.errors import DependencyError
from eventface.domain.model import Template
from eventface.local.pump import LambdaContext, scheduled_event
from eventface.services.deps import Policy
from eventface.settings import Settings
from face_engine.index import quantise
from face_engine.shard import Shard

MODEL = "sface-2021dec"
GALLERY = "acme/rally"
GRACE = 3600.0
NOW = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)


@dataclass
class Clock:
    now: float = 1_000.0

    def __call__(self) -> float:
        return self.now


def _vectors(count: int, seed: int) -> np.ndarray:
    rows = np.random.default_rng(seed).standard_normal((count, 128))
    return np.asarray(rows / np.linalg.norm(rows, axis=1, keepdims=True), dtype=np.float32)


def _shard(person: str, vectors: np.ndarray) -> Shard:
    ids = np.asarray([uuid.uuid4().hex for _ in vectors])
    return Shard(MODEL, ids, np.asarray([person] * len(vectors)), vectors)


def _needles(vectors: np.ndarray) -> list[bytes]:
    """What must not be found anywhere: each template's float32 bytes and its int8 codes."""
    codes = quantise(vectors)[0]
    return [v.astype("<f4").tobytes() for v in vectors] + [c.tobytes() for c in codes]


def _every_version(bucket: str) -> dict[tuple[str, str], bytes]:
    """Every stored version of every object in the bucket, by (key, version id)."""
    s3 = aws.client("s3")
    stored: dict[tuple[str, str], bytes] = {}
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        for version in page.get("Versions", []):
            key, version_id = version["Key"], version["VersionId"]
            body = s3.get_object(Bucket=bucket, Key=key, VersionId=version_id)["Body"].read()
            stored[(key, version_id)] = body
    return stored


def _holding(stored: dict[tuple[str, str], bytes], needles: list[bytes]) -> list[tuple[str, str]]:
    return sorted(where for where, body in stored.items() if any(n in body for n in needles))


@pytest.fixture(params=[False, True], ids=["unversioned", "versioned"])
def erasure_bucket(request: pytest.FixtureRequest, bucket: str) -> str:
    if request.param:
        aws.client("s3").put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    return bucket


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def make_store(clock: Clock) -> Callable[[str], S3GalleryStore]:
    def make(bucket: str) -> S3GalleryStore:
        return S3GalleryStore(bucket, clock=clock, sleep=lambda _: None)

    return make


def test_gallery_sweep_after_the_grace_leaves_no_byte_of_an_erased_template_in_the_bucket(
    erasure_bucket: str, make_store: Callable[[str], S3GalleryStore], clock: Clock
) -> None:
    # given: anna (two templates) and ben enrolled, a reader loaded them, then anna was erased
    store = make_store(erasure_bucket)
    anna, ben = _vectors(2, seed=1), _vectors(1, seed=2)
    store.append(GALLERY, _shard("anna", anna))
    store.append(GALLERY, _shard("ben", ben))
    store.delete_person(GALLERY, "anna")
    needles = _needles(anna)
    assert _holding(_every_version(erasure_bucket), needles), "the test must see anna's bytes first"
    # when: the sweep runs, and runs again once the readers' grace period is over
    first = store.sweep_erasures(grace_seconds=GRACE)
    clock.now += GRACE + 1
    second = store.sweep_erasures(grace_seconds=GRACE)
    # then: no object, no old version holds anna's template; ben is still there
    assert _holding(_every_version(erasure_bucket), needles) == []
    assert (first.compacted, first.pending, second.purged, second.pending) == (1, 1, 3, 0)
    snapshot = store.load(GALLERY)
    assert [p for s in snapshot.shards for p in s.person_ids.tolist()] == ["ben"]
    assert _holding(_every_version(erasure_bucket), _needles(ben)) != []
    # and nothing of the request is left to sweep
    assert store.sweep_erasures(grace_seconds=GRACE).galleries == 0


def test_gallery_sweep_within_the_grace_compacts_but_keeps_retired_objects_for_readers(
    bucket: str, make_store: Callable[[str], S3GalleryStore], clock: Clock
) -> None:
    # given
    store = make_store(bucket)
    anna = _vectors(1, seed=3)
    store.append(GALLERY, _shard("anna", anna))
    store.append(GALLERY, _shard("ben", _vectors(1, seed=4)))
    reader = store.load(GALLERY)
    store.delete_person(GALLERY, "anna")
    # when: the sweep runs, and again just before the grace period ends
    store.sweep_erasures(grace_seconds=GRACE)
    clock.now += GRACE - 1
    report = store.sweep_erasures(grace_seconds=GRACE)
    # then: the live objects no longer hold anna; the retired ones wait for readers
    manifest = store.manifest(GALLERY)
    assert manifest is not None
    listed = {o.key for o in manifest.objects}
    live = [body for (key, _), body in _every_version(bucket).items() if key in listed]
    assert not any(n in body for body in live for n in _needles(anna))
    assert {k for k, _ in manifest.retired} >= {o.key for o in reader.manifest.objects}
    assert (report.purged, report.pending) == (0, 1)


def test_gallery_sweep_forgets_an_erasure_whose_gallery_was_removed(
    bucket: str, make_store: Callable[[str], S3GalleryStore]
) -> None:
    # given: an erasure, then the gallery's manifest is gone (removed by hand)
    store = make_store(bucket)
    store.append(GALLERY, _shard("anna", _vectors(1, seed=5)))
    store.delete_person(GALLERY, "anna")
    aws.client("s3").delete_object(Bucket=bucket, Key=store.manifest_key(GALLERY))
    # when
    report = store.sweep_erasures(grace_seconds=GRACE)
    # then
    assert (report.galleries, report.pending, report.failed) == (1, 0, ())
    assert store.sweep_erasures(grace_seconds=GRACE).galleries == 0


def _spill_bytes(directory: Path) -> bytes:
    return b"".join(path.read_bytes() for path in sorted(directory.iterdir()))


def test_cached_gallery_erasure_zeroes_the_spill_rows_and_a_rebuild_removes_the_old_file(
    bucket: str, make_store: Callable[[str], S3GalleryStore], clock: Clock, tmp_path: Path
) -> None:
    # given: a warm reader whose index spills its re-rank rows to disk
    store = make_store(bucket)
    anna = _vectors(2, seed=6)
    store.append(GALLERY, _shard("anna", anna))
    store.append(GALLERY, _shard("ben", _vectors(1, seed=7)))
    cache = CachedGallery(store, GALLERY, spill_dir=tmp_path)
    first = cache.index()
    needles = _needles(anna)[:2]
    assert all(n in _spill_bytes(tmp_path) for n in needles)
    # when: anna is erased, and the reader serves its next scan
    store.delete_person(GALLERY, "anna")
    after_erasure = cache.index()
    # then: the same index, with anna's rows overwritten on disk
    assert after_erasure is first and len(after_erasure) == 1
    assert not any(n in _spill_bytes(tmp_path) for n in needles)
    # and when: the sweep compacts the gallery, the next scan rebuilds and drops the old file
    store.sweep_erasures(grace_seconds=GRACE)
    rebuilt = cache.index()
    assert rebuilt is not first and len(rebuilt) == 1
    assert len(list(tmp_path.iterdir())) == 1
    assert not any(n in _spill_bytes(tmp_path) for n in needles)


# -- the scheduled consumer ------------------------------------------------------------------------


def _template(vector: np.ndarray) -> Template:
    return Template(model_id=MODEL, kind="plain", vector=tuple(float(x) for x in vector))


def _deps(bucket: str, clock: Clock) -> Container:
    port = S3GalleryPort(bucket, store=S3GalleryStore(bucket, clock=clock, sleep=lambda _: None))
    policy = Policy(gallery_sweep_period=timedelta(minutes=5), gallery_retired_grace=timedelta(seconds=GRACE))
    return bootstrap(Settings({}), gallery=port, policy=policy).deps


def test_gallery_compaction_consumer_makes_an_erasure_physical_within_the_policy_grace(
    bucket: str, clock: Clock
) -> None:
    # given: two participants registered through the gallery port, one of them erased
    deps = _deps(bucket, clock)
    anna = _vectors(1, seed=8)
    deps.gallery.add(GALLERY, "anna", (_template(anna[0]),))
    deps.gallery.add(GALLERY, "ben", (_template(_vectors(1, seed=9)[0]),))
    assert deps.gallery.delete_participant(GALLERY, "anna") is True
    # when: the scheduled consumer runs, and runs again once the grace period is over
    first = gallery_compaction.sweep(scheduled_event("gallery_compaction", NOW), LambdaContext("gc"), deps)
    clock.now += GRACE + 1
    second = gallery_compaction.sweep(scheduled_event("gallery_compaction", NOW), LambdaContext("gc"), deps)
    # then
    assert (first["compacted"], first["pending"], second["pending"]) == (1, 1, 0)
    assert _holding(_every_version(bucket), _needles(anna)) == []


def test_gallery_compaction_consumer_sweeps_the_other_galleries_and_then_reports_a_failed_one(
    bucket: str, clock: Clock
) -> None:
    # given: erasures in two galleries, one of which has a damaged manifest
    deps = _deps(bucket, clock)
    anna = _vectors(1, seed=10)
    for gallery in ("acme/broken", GALLERY):
        deps.gallery.add(gallery, "anna", (_template(anna[0]),))
        deps.gallery.add(gallery, "ben", (_template(_vectors(1, seed=11)[0]),))
        deps.gallery.delete_participant(gallery, "anna")
    store = S3GalleryStore(bucket)
    aws.client("s3").put_object(Bucket=bucket, Key=store.manifest_key("acme/broken"), Body=b"{not json")
    # when / then: the run fails, naming the broken gallery; the healthy one was compacted
    with pytest.raises(DependencyError, match=r"1 of 2 galleries \(acme/broken: "):
        gallery_compaction.sweep(scheduled_event("gallery_compaction", NOW), LambdaContext("gc"), deps)
    manifest = store.manifest(GALLERY)
    assert manifest is not None and [o.kind for o in manifest.objects] == ["base"]
