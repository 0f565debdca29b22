"""S3GalleryPort: the GalleryPort over S3GalleryStore (writes) and CachedGallery (reads).

One gallery per campaign (``<tenant>/<campaign>``), one CachedGallery per gallery kept for the
life of the process. ``prefetch`` revalidates it on a background thread, so a scan's conditional
GET of the manifest overlaps the face engine (onnxruntime and OpenCV release the GIL). identify
uses ``GalleryIndex.identify``, so the open-set threshold follows the gallery's size and the
accepted false-match rate per scan.

Only plain templates enter the searched gallery: the synthetic masked template scores worse on
its own than the plain one (face_engine.matching), and adding it would double N (raising the
threshold) — re-scoring a masked probe's top candidates against both is a later step.
"""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import numpy as np

from eventface.adapters.gallery_cache import CachedGallery
from eventface.adapters.s3_gallery import GalleryError, GalleryNotFoundError, S3GalleryStore
from eventface.domain.errors import DependencyError, InvalidInputError
from eventface.domain.model import GallerySweep, Identification, Probe, Template
from face_engine.index import GalleryIndex
from face_engine.shard import Shard


class S3GalleryPort:
    """Campaign galleries on S3, searched in memory.

    Parameters
    ----------
    bucket
        The galleries' bucket.
    threads, spill_dir
        Passed to each CachedGallery.
    store
        A store to use instead of ``S3GalleryStore(bucket)``.
    """

    def __init__(
        self,
        bucket: str,
        *,
        threads: int = 1,
        spill_dir: Path | None = None,
        store: S3GalleryStore | None = None,
    ) -> None:
        self._store = store or S3GalleryStore(bucket)
        self._threads = threads
        self._spill_dir = spill_dir
        self._galleries: dict[str, CachedGallery] = {}
        self._lock = threading.Lock()
        # One thread: a prefetch is I/O (a conditional GET) overlapping the engine's compute.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gallery-prefetch")
        self._pending: dict[str, Future[GalleryIndex]] = {}

    def _cached(self, gallery_id: str) -> CachedGallery:
        with self._lock:
            gallery = self._galleries.get(gallery_id)
            if gallery is None:
                gallery = CachedGallery(
                    self._store, gallery_id, threads=self._threads, spill_dir=self._spill_dir
                )
                self._galleries[gallery_id] = gallery
            return gallery

    def add(self, gallery_id: str, participant_id: str, templates: tuple[Template, ...]) -> None:
        plain = [t for t in templates if t.kind == "plain"]
        if not plain:
            raise InvalidInputError("no plain template to add: enrol the face first")
        model_ids = {t.model_id for t in plain}
        if len(model_ids) != 1:
            raise InvalidInputError("templates of several models cannot be added together")
        vectors = np.asarray([t.vector for t in plain], dtype=np.float32)
        shard = Shard(
            model_id=model_ids.pop(),
            template_ids=np.asarray([uuid.uuid4().hex for _ in plain]),
            person_ids=np.asarray([participant_id] * len(plain)),
            vectors=vectors,
        )
        try:
            self._store.append(gallery_id, shard)
        except GalleryError as exc:
            raise DependencyError(f"storing the templates failed ({exc}): retry the registration") from exc

    def delete_participant(self, gallery_id: str, participant_id: str) -> bool:
        try:
            self._store.delete_person(gallery_id, participant_id)
        except GalleryNotFoundError:
            return False
        except GalleryError as exc:
            raise DependencyError(f"deleting the templates failed ({exc}): retry the erasure") from exc
        return True

    def sweep_erasures(self, grace: timedelta) -> GallerySweep:
        try:
            report = self._store.sweep_erasures(grace_seconds=grace.total_seconds())
        except GalleryError as exc:
            raise DependencyError(
                f"listing the pending erasures failed ({exc}): the next sweep retries"
            ) from exc
        return GallerySweep(report.galleries, report.compacted, report.purged, report.pending, report.failed)

    def prefetch(self, gallery_id: str) -> None:
        cached = self._cached(gallery_id)
        with self._lock:
            if gallery_id not in self._pending:
                self._pending[gallery_id] = self._executor.submit(cached.index)

    def _index(self, gallery_id: str) -> GalleryIndex:
        with self._lock:
            pending = self._pending.pop(gallery_id, None)
        if pending is not None:
            try:
                return pending.result()
            except Exception:
                pass  # revalidate again below, where the error is raised and translated
        return self._cached(gallery_id).index()

    def identify(self, gallery_id: str, probe: Probe, fmr_per_scan: float) -> Identification:
        try:
            index = self._index(gallery_id)
        except GalleryNotFoundError:
            return Identification(participant_id=None, similarity=None, threshold=None)
        except GalleryError as exc:
            raise DependencyError(f"reading the gallery failed ({exc}): retry the scan") from exc
        if probe.model_id != index.model_id:
            raise InvalidInputError(
                f"the template was made by {probe.model_id}, the gallery holds {index.model_id} templates: "
                "update the device's model"
            )
        if len(index) == 0:
            return Identification(participant_id=None, similarity=None, threshold=None)
        answer = index.identify(np.asarray(probe.vector, dtype=np.float32), fmr_per_scan=fmr_per_scan)
        best = answer.result.hits[0] if answer.result.hits else None
        return Identification(
            participant_id=answer.match.person_id if answer.match is not None else None,
            similarity=best.score if best is not None else None,
            threshold=answer.threshold.value,
        )
