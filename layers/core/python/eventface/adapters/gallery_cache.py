"""A gallery held in memory across warm invocations, revalidated against S3 on every request.

``CachedGallery.index()`` asks the store for the manifest with the ETag it holds: unchanged
(304) means the in-memory index is served as it is; appended objects are applied to the index in
place (a registration is searchable on the very next scan, in any process); anything else (a
compaction replaced objects) rebuilds the index from the snapshot, reusing the decoded shards, and
removes the replaced index's spill file.

What an erasure leaves here: its tombstone zeroes the person's rows in the index (RAM and spill
file) at the next ``index()``; the snapshot keeps the decoded objects it was built from, so the
erased vector stays in this process's memory until a compaction replaces those objects (the
next ``index()`` after it drops them), or the process ends.
"""

from __future__ import annotations

import threading
from pathlib import Path

from eventface.adapters.s3_gallery import S3GalleryStore, Snapshot
from face_engine.index import GalleryIndex
from face_engine.shard import Shard


def apply_shard(index: GalleryIndex, shard: Shard) -> None:
    """Apply one object: its tombstones (earlier objects only), then its templates."""
    for person_id in shard.deleted_people:
        index.delete_person(person_id)
    if len(shard.person_ids):
        index.add(shard.person_ids, shard.vectors)


class CachedGallery:
    """One gallery's index, kept for the life of the process and kept fresh.

    Parameters
    ----------
    store
        Where the gallery lives.
    gallery_id
        Which gallery.
    threads
        onnxruntime threads for the scan.
    spill_dir
        Where the index memory-maps its float32 re-rank rows (e.g. Lambda's /tmp); None keeps
        them in RAM.
    """

    def __init__(
        self, store: S3GalleryStore, gallery_id: str, *, threads: int = 1, spill_dir: Path | None = None
    ) -> None:
        self._store = store
        self._gallery_id = gallery_id
        self._threads = threads
        self._spill_dir = spill_dir
        self._snapshot: Snapshot | None = None
        self._index: GalleryIndex | None = None
        self._lock = threading.Lock()
        self.rebuilds = 0

    def index(self) -> GalleryIndex:
        """The current index, after one conditional GET of the manifest."""
        with self._lock:
            snapshot = self._store.load(self._gallery_id, self._snapshot)
            if snapshot is self._snapshot and self._index is not None:
                return self._index
            old_keys = [ref.key for ref in self._snapshot.manifest.objects] if self._snapshot else []
            new_keys = [ref.key for ref in snapshot.manifest.objects]
            if self._index is not None and new_keys[: len(old_keys)] == old_keys:
                for shard in snapshot.shards[len(old_keys) :]:
                    apply_shard(self._index, shard)
            else:
                replaced, self._index = self._index, self._build(snapshot)
                if replaced is not None:
                    replaced.close()  # its spill file would otherwise stay on disk for good
            self._snapshot = snapshot
            return self._index

    def _build(self, snapshot: Snapshot) -> GalleryIndex:
        self.rebuilds += 1
        dim = next((s.vectors.shape[1] for s in snapshot.shards if len(s.vectors)), 128)
        index = GalleryIndex(
            snapshot.manifest.model_id, dim=dim, threads=self._threads, spill_dir=self._spill_dir
        )
        for shard in snapshot.shards:
            apply_shard(index, shard)
        return index
