"""A warm reader's in-memory index stays fresh against S3 (moto server) on every request."""

from __future__ import annotations

import subprocess
import sys

import numpy as np

from eventface.adapters.gallery_cache import CachedGallery
from eventface.adapters.s3_gallery import S3GalleryStore
from face_engine.shard import Shard

GALLERY = "event-1/attendees"
# A registration written by another process: the same vectors as _vector(seed).
_WRITER = """
import sys, numpy as np
from eventface.adapters.s3_gallery import S3GalleryStore
from face_engine.shard import Shard
bucket, gallery, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
v = np.random.default_rng(seed).standard_normal((1, 128))
v = np.asarray(v / np.linalg.norm(v), dtype=np.float32)
shard = Shard("sface-2021dec", np.array(["late"]), np.array(["late-person"]), v)
S3GalleryStore(bucket).append(gallery, shard)
"""


def _vector(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal((1, 128))
    return np.asarray(v / np.linalg.norm(v), dtype=np.float32)


def _shard(ids: list[str], people: list[str] | None = None, *, seed: int) -> Shard:
    rows = np.vstack([_vector(seed * 1000 + i) for i in range(len(ids))])
    owners = people if people is not None else [f"p-{i}" for i in ids]
    return Shard("sface-2021dec", np.array(ids), np.array(owners), rows)


def test_cached_gallery_unchanged_manifest_serves_the_same_index(bucket) -> None:
    # given a gallery and a warm reader
    store = S3GalleryStore(bucket)
    store.append(GALLERY, _shard([f"t{i}" for i in range(50)], seed=1))
    cache = CachedGallery(store, GALLERY)
    first = cache.index()
    # when nothing changed
    second = cache.index()
    # then: the same in-memory index, built once
    assert second is first
    assert cache.rebuilds == 1
    assert len(first) == 50


def test_cached_gallery_sees_a_registration_from_another_process_on_the_next_scan(bucket) -> None:
    # given a warm reader
    store = S3GalleryStore(bucket)
    store.append(GALLERY, _shard([f"t{i}" for i in range(200)], seed=2))
    cache = CachedGallery(store, GALLERY)
    cache.index()
    # when another process registers a new person
    subprocess.run([sys.executable, "-c", _WRITER, bucket, GALLERY, "99"], check=True)
    # then the very next scan finds them, applied in place (no rebuild)
    hit = cache.index().search(_vector(99), 1).hits[0]
    assert hit.person_id == "late-person"
    assert abs(hit.score - 1.0) < 1e-5
    assert cache.rebuilds == 1


def test_cached_gallery_applies_tombstones_and_rebuilds_after_compaction(bucket) -> None:
    # given a reader over a gallery with one person to erase
    store = S3GalleryStore(bucket)
    store.append(GALLERY, _shard([f"t{i}" for i in range(100)], seed=3))
    store.append(GALLERY, _shard(["erase-me"], ["to-erase"], seed=4))
    cache = CachedGallery(store, GALLERY)
    assert cache.index().search(_vector(4000), 1).hits[0].person_id == "to-erase"
    # when the person is erased
    store.delete_person(GALLERY, "to-erase")
    after_delete = cache.index().search(_vector(4000), 3)
    # then they are gone from the next scan
    assert "to-erase" not in {h.person_id for h in after_delete.hits}
    # and when the gallery is compacted, the reader rebuilds with the same answers
    store.compact(GALLERY)
    index = cache.index()
    assert cache.rebuilds == 2
    assert len(index) == 100
    assert [h.person_id for h in index.search(_vector(4000), 3).hits] == [
        h.person_id for h in after_delete.hits
    ]
