"""Galleries on S3: immutable shard objects, published through a compare-and-swap manifest.

Layout under ``s3://<bucket>/<prefix>/<gallery_id>/``:

- ``objects/<uuid>.shard`` — immutable shards (:mod:`face_engine.shard` format), written once with
  ``If-None-Match: *``. A *delta* is what one enrolment or one deletion adds; a *base* is what
  compaction (or a bulk load) writes.
- ``manifest.json`` — the gallery's current list of objects::

      {"format": 1, "gallery_id": "vip-42", "model_id": "sface-2021dec", "version": 7,
       "objects": [{"key": "...", "kind": "base"|"delta", "count": 3, "sha256": "...", "size": 1472}],
       "retired": [["<key>", <epoch seconds when it left "objects">]]}

Protocol
--------
- **Writers never lose each other's work.** ``append`` writes its object, then publishes it with a
  conditional PUT of the manifest (``If-Match`` the ETag it read, or ``If-None-Match: *`` for the
  first one). A writer that loses the race gets 412, re-reads and retries with jittered backoff.
- **Readers revalidate cheaply.** ``load(previous=...)`` sends ``If-None-Match`` with the ETag it
  holds: 304 means nothing changed and nothing else is fetched. Otherwise only the objects it does
  not hold are fetched (objects are immutable, so decoded shards are reused by key), each verified
  against the manifest's sha256 and decoded (a corrupt object raises, it is never served).
- **Order matters.** A tombstone (``deleted_people``) deletes that person's templates in *earlier*
  objects; when a template id repeats, the last one wins (:func:`face_engine.shard.merge_shards`).
  A new manifest normally equals the previous one plus appended objects; after compaction the
  prefix is replaced by base shards, and readers simply fetch what they lack.
- **Compaction** merges the objects of a snapshot into base shards and swaps them in with the same
  CAS, keeping any delta appended meanwhile. The replaced objects move to ``retired`` and are
  deleted only after a grace period, so readers holding an older manifest can still fetch them.
- **Erasure** is physical within a bound. ``delete_person`` publishes a tombstone (the person is
  never matched again), then records the request as an empty marker object
  ``<prefix>/_erasures/<gallery_id>/<tombstone uuid>`` (``_`` cannot start a gallery id). The
  sweep (:meth:`S3GalleryStore.sweep_erasures`, run on a schedule) compacts every gallery with a
  marker, which retires the objects holding the vectors together with the tombstone, and on a
  later run, once they have been retired for the grace period, deletes them; a marker goes when
  its tombstone is neither listed nor retired any more. On a versioned bucket every version of a
  deleted object (and its delete markers) is deleted too, so no old version keeps a template.

Every boto3 error is translated here by its error code; callers never see ``ClientError``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import queue
import random
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any, Final

from botocore.exceptions import BotoCoreError, ClientError

from eventface import aws
from face_engine.errors import ShardCorruptError
from face_engine.shard import Shard, decode_shard, encode_shard, merge_shards

MANIFEST_FORMAT: Final = 1
OBJECT_KINDS: Final = ("base", "delta")
#: Byte-range size for large objects (AWS's guidance for S3 is concurrent 8-16 MB range GETs).
DEFAULT_PART_BYTES: Final = 16 * 1024 * 1024
#: Concurrent GETs (objects and byte ranges) while loading a snapshot.
DEFAULT_MAX_WORKERS: Final = 8
#: Size of one socket read while downloading; the object's sha256 advances after each one.
_READ_CHUNK_BYTES: Final = 8 * 1024 * 1024
_BACKOFF_BASE_SECONDS: Final = 0.01
_BACKOFF_CAP_SECONDS: Final = 0.5
_DELETE_BATCH: Final = 1000
#: Folder of erasure markers under the store's prefix (gallery id segments start with a letter or digit).
ERASURES_FOLDER: Final = "_erasures"

_PRECONDITION_CODES: Final = frozenset({"PreconditionFailed", "412", "ConditionalRequestConflict", "409"})
_NOT_MODIFIED_CODES: Final = frozenset({"304", "NotModified"})
_MISSING_CODES: Final = frozenset({"NoSuchKey", "404", "NotFound"})
_BAD_RANGE_CODES: Final = frozenset({"InvalidRange", "416"})
_SEGMENT = r"[A-Za-z0-9][A-Za-z0-9._=-]*"
_GALLERY_ID: Final = re.compile(rf"^{_SEGMENT}(/{_SEGMENT})*$")
_MAX_GALLERY_ID = 512


# ----------------------------------------------------------------------------------------- errors


class GalleryError(Exception):
    """Base class of the gallery store's errors."""

    code = "GalleryError"


class GalleryNotFoundError(GalleryError, LookupError):
    """The gallery has no manifest yet (nothing was ever added to it)."""

    code = "GalleryNotFoundError"


class GalleryConflictError(GalleryError):
    """The manifest kept changing under us: too many concurrent writers. Retry later."""

    code = "GalleryConflictError"


class GalleryStorageError(GalleryError):
    """S3 refused or failed a request for a reason other than a lost race (permissions, network...)."""

    code = "GalleryStorageError"


class ManifestCorruptError(ShardCorruptError):
    """The manifest object is not a valid gallery manifest."""

    code = "ManifestCorruptError"


class _PreconditionFailedError(GalleryStorageError):
    """412/409 on a conditional write (internal: always handled in this module)."""


class _NotModifiedError(GalleryStorageError):
    """304 on a conditional GET (internal)."""


class _NoSuchKeyError(GalleryStorageError):
    """404 (internal)."""


class _BadRangeError(GalleryStorageError):
    """416: a range beyond the object's end (internal)."""


class _PrefixChangedError(Exception):
    """Compaction's snapshot is no longer a prefix of the manifest (internal)."""


class _NotModifiedMarker:
    """Type of :data:`_NOT_MODIFIED`."""


#: What the conditional manifest read returns when the ETag still matches.
_NOT_MODIFIED: Final = _NotModifiedMarker()


def _translate(exc: ClientError | BotoCoreError, operation: str, where: str) -> GalleryStorageError:
    if isinstance(exc, BotoCoreError):
        return GalleryStorageError(f"S3 {operation} on {where} failed: {exc}")
    error = exc.response.get("Error", {})
    code = str(error.get("Code", ""))
    message = (
        f"S3 {operation} on {where} failed with {code or 'an unknown error'}: {error.get('Message', '')}"
    )
    if code in _PRECONDITION_CODES:
        return _PreconditionFailedError(message)
    if code in _NOT_MODIFIED_CODES:
        return _NotModifiedError(message)
    if code in _MISSING_CODES:
        return _NoSuchKeyError(message)
    if code in _BAD_RANGE_CODES:
        return _BadRangeError(message)
    return GalleryStorageError(message)


# ------------------------------------------------------------------------------------ value objects


@dataclass(frozen=True, slots=True)
class ObjectRef:
    """One immutable shard object listed in a manifest."""

    key: str
    kind: str
    count: int
    sha256: str
    size: int


@dataclass(frozen=True, slots=True)
class Manifest:
    """A published version of a gallery: its objects in order, and the retired ones awaiting deletion.

    ``etag`` is the S3 ETag the manifest was read or written with (not part of the JSON).
    """

    gallery_id: str
    model_id: str
    version: int
    objects: tuple[ObjectRef, ...] = ()
    retired: tuple[tuple[str, float], ...] = ()
    etag: str = field(default="", compare=False)

    def to_json(self) -> bytes:
        """The manifest's JSON document (UTF-8)."""
        document = {
            "format": MANIFEST_FORMAT,
            "gallery_id": self.gallery_id,
            "model_id": self.model_id,
            "version": self.version,
            "objects": [
                {"key": o.key, "kind": o.kind, "count": o.count, "sha256": o.sha256, "size": o.size}
                for o in self.objects
            ],
            "retired": [[key, at] for key, at in self.retired],
        }
        return json.dumps(document, separators=(",", ":")).encode("utf-8")

    @classmethod
    def from_json(cls, data: bytes, etag: str = "") -> Manifest:
        """Parse a manifest document.

        Raises
        ------
        ManifestCorruptError
            If the document is not JSON, has an unknown format, or a field is missing or invalid.
        """
        try:
            doc = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ManifestCorruptError(f"gallery manifest is not valid JSON ({exc})") from exc
        if not isinstance(doc, dict):
            raise ManifestCorruptError("gallery manifest is not a JSON object")
        if doc.get("format") != MANIFEST_FORMAT:
            raise ManifestCorruptError(
                f"unknown gallery manifest format {doc.get('format')!r}; this reader supports "
                f"format {MANIFEST_FORMAT} — upgrade eventface to read it"
            )
        try:
            objects = tuple(
                ObjectRef(
                    key=_typed(o["key"], str),
                    kind=_typed(o["kind"], str),
                    count=_typed(o["count"], int),
                    sha256=_typed(o["sha256"], str),
                    size=_typed(o["size"], int),
                )
                for o in doc["objects"]
            )
            retired = tuple((_typed(k, str), float(_typed(t, (int, float)))) for k, t in doc["retired"])
            manifest = cls(
                gallery_id=_typed(doc["gallery_id"], str),
                model_id=_typed(doc["model_id"], str),
                version=_typed(doc["version"], int),
                objects=objects,
                retired=retired,
                etag=etag,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ManifestCorruptError(f"gallery manifest has a missing or invalid field ({exc!r})") from exc
        for ref in objects:
            if ref.kind not in OBJECT_KINDS or ref.count < 0 or ref.size <= 0 or len(ref.sha256) != 64:
                raise ManifestCorruptError(f"gallery manifest lists an invalid object {ref}")
        return manifest


def _typed(value: Any, kind: type | tuple[type, ...]) -> Any:
    if not isinstance(value, kind) or isinstance(value, bool):
        raise TypeError(f"expected {kind}, got {value!r}")
    return value


@dataclass(frozen=True, slots=True, eq=False)
class Snapshot:
    """A manifest and its decoded shards (same order as ``manifest.objects``)."""

    manifest: Manifest
    shards: tuple[Shard, ...]


@dataclass(frozen=True, slots=True)
class SweepReport:
    """What one erasure sweep did: galleries with pending erasures, how many of them it compacted,
    how many retired objects it deleted, the erasures still pending (retired objects within the
    grace period), and the galleries it could not process (with the reason)."""

    galleries: int = 0
    compacted: int = 0
    purged: int = 0
    pending: int = 0
    failed: tuple[str, ...] = ()


# ---------------------------------------------------------------------------------------- download


class _Download:
    """One object being fetched, possibly as several byte ranges, into one buffer."""

    def __init__(self, ref: ObjectRef, part_bytes: int | None) -> None:
        self.ref = ref
        self.buffer = bytearray(ref.size)
        self.view = memoryview(self.buffer)
        step = part_bytes if part_bytes and part_bytes < ref.size else ref.size
        self.ranges = [(start, min(start + step, ref.size)) for start in range(0, ref.size, step)]
        self.sha = hashlib.sha256()
        self.shard: Shard | None = None
        self._step = step
        self._filled = [0] * len(self.ranges)
        self._queued = 0
        self._lock = threading.Lock()

    def progress(self, part: int, filled: int, verifier: _Verifier) -> None:
        """Record that ``filled`` bytes of ``part`` arrived; hand the new contiguous prefix on."""
        with self._lock:
            self._filled[part] = filled
            end = self._queued
            index = self._queued // self._step
            while index < len(self.ranges):
                part_start, part_end = self.ranges[index]
                end = part_start + self._filled[index]
                if end < part_end:
                    break
                index += 1
            if end > self._queued:
                # Submitted under the lock, so the verifier sees each object's bytes in order.
                verifier.submit(self, self._queued, end)
                self._queued = end


class _Verifier:
    """Hashes downloaded bytes in order on its own thread, overlapping the network, then decodes.

    Readers never wait on hashing; the sha256 of an object is complete moments after its last byte.
    """

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[tuple[_Download, int, int] | None] = queue.SimpleQueue()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="gallery-sha256", daemon=True)
        self._thread.start()

    def submit(self, download: _Download, start: int, end: int) -> None:
        self._queue.put((download, start, end))

    def close(self, *, raise_error: bool = True) -> None:
        """Wait for the queued work; re-raise the first verification error."""
        self._queue.put(None)
        self._thread.join()
        if raise_error and self._error is not None:
            raise self._error

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            if self._error is not None:
                continue
            download, start, end = item
            try:
                download.sha.update(download.view[start:end])
                if end == download.ref.size:
                    self._verify(download)
            except Exception as exc:  # handed to the loading thread by close()
                self._error = exc

    @staticmethod
    def _verify(download: _Download) -> None:
        ref = download.ref
        actual = download.sha.hexdigest()
        if actual != ref.sha256:
            raise ShardCorruptError(
                f"object {ref.key} has sha256 {actual} but the manifest says {ref.sha256}: "
                "it was modified or damaged in storage; it will not be served"
            )
        try:
            # The sha256 just checked covers every byte against the writer's record in the
            # manifest, so the shard's own payload checksum would only re-hash the same bytes.
            download.shard = decode_shard(download.buffer, verify_checksum=False)
        except ShardCorruptError as exc:
            raise ShardCorruptError(f"object {ref.key}: {exc}") from exc


# ------------------------------------------------------------------------------------------- store


class S3GalleryStore:
    """Galleries of face templates as shard objects under a CAS-published manifest in one bucket.

    Parameters
    ----------
    bucket
        The S3 bucket.
    prefix
        Key prefix of every gallery (``<prefix>/<gallery_id>/...``).
    s3_client
        A boto3 S3 client; ``eventface.aws.client("s3")`` on first use when omitted.
    clock
        Wall clock in epoch seconds (retirement times); inject one in tests.
    max_retries
        How many times a lost manifest race is retried before :class:`GalleryConflictError`.
    part_bytes
        Objects larger than this are fetched as parallel byte ranges of this size; ``None`` fetches
        every object with one GET (right for emulators that re-read the whole object per range).
    max_workers
        Concurrent GETs while loading.
    sleep, rng
        Backoff sleep and jitter source; inject them in tests.
    """

    def __init__(
        self,
        bucket: str,
        prefix: str = "galleries",
        *,
        s3_client: Any | None = None,
        clock: Callable[[], float] = time.time,
        max_retries: int = 20,
        part_bytes: int | None = DEFAULT_PART_BYTES,
        max_workers: int = DEFAULT_MAX_WORKERS,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        if not bucket:
            raise ValueError("bucket must be a non-empty S3 bucket name")
        if max_retries < 0 or max_workers < 1 or (part_bytes is not None and part_bytes < 1):
            raise ValueError("max_retries must be >= 0, max_workers >= 1 and part_bytes >= 1 or None")
        self._bucket = bucket
        self._prefix = prefix.strip("/")
        self._client = s3_client
        self._clock = clock
        self._max_retries = max_retries
        self._part_bytes = part_bytes
        self._max_workers = max_workers
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._versioned: bool | None = None

    # -- keys and low-level calls ------------------------------------------------------------

    @property
    def bucket(self) -> str:
        """The bucket this store writes to."""
        return self._bucket

    def manifest_key(self, gallery_id: str) -> str:
        """S3 key of ``gallery_id``'s manifest."""
        return f"{self._gallery_prefix(gallery_id)}/manifest.json"

    def _gallery_prefix(self, gallery_id: str) -> str:
        if len(gallery_id) > _MAX_GALLERY_ID or not _GALLERY_ID.match(gallery_id):
            raise ValueError(
                f"invalid gallery id {gallery_id!r}: use letters, digits, '.', '_', '=', '-' in "
                f"'/'-separated segments that start with a letter or digit (at most {_MAX_GALLERY_ID})"
            )
        return f"{self._prefix}/{gallery_id}" if self._prefix else gallery_id

    def _erasures_prefix(self) -> str:
        return f"{self._prefix}/{ERASURES_FOLDER}/" if self._prefix else f"{ERASURES_FOLDER}/"

    def _marker_key(self, gallery_id: str, tombstone_key: str) -> str:
        """Key of the erasure marker of the tombstone object ``tombstone_key`` of ``gallery_id``."""
        self._gallery_prefix(gallery_id)  # validates the id
        name = tombstone_key.rsplit("/", 1)[-1].removesuffix(".shard")
        return f"{self._erasures_prefix()}{gallery_id}/{name}"

    def _parse_marker(self, key: str) -> tuple[str, str] | None:
        """(gallery id, tombstone object key) of a marker key; None for a key that is not one."""
        gallery_id, _, name = key.removeprefix(self._erasures_prefix()).rpartition("/")
        if not name or len(gallery_id) > _MAX_GALLERY_ID or not _GALLERY_ID.match(gallery_id):
            return None
        return gallery_id, f"{self._gallery_prefix(gallery_id)}/objects/{name}.shard"

    def _list_keys(self, prefix: str) -> list[str]:
        try:
            pages = self._s3.get_paginator("list_objects_v2").paginate(Bucket=self._bucket, Prefix=prefix)
            return [entry["Key"] for page in pages for entry in page.get("Contents", [])]
        except (ClientError, BotoCoreError) as exc:
            raise _translate(exc, "list_objects_v2", f"s3://{self._bucket}/{prefix}") from exc

    @property
    def _s3(self) -> Any:
        if self._client is None:
            self._client = aws.client("s3")
        return self._client

    def _call(self, operation: str, key: str, **kwargs: Any) -> Any:
        try:
            return getattr(self._s3, operation)(Bucket=self._bucket, Key=key, **kwargs)
        except (ClientError, BotoCoreError) as exc:
            raise _translate(exc, operation, f"s3://{self._bucket}/{key}") from exc

    def _backoff(self, attempt: int) -> None:
        # Full jitter: spreads racing writers apart instead of letting them collide again.
        ceiling = min(_BACKOFF_CAP_SECONDS, _BACKOFF_BASE_SECONDS * (2**attempt))
        self._sleep(self._rng.uniform(0.0, ceiling))

    # -- manifest ----------------------------------------------------------------------------

    def manifest(self, gallery_id: str) -> Manifest | None:
        """The gallery's current manifest, or None if nothing was ever added to it."""
        manifest = self._read_manifest(gallery_id, if_none_match=None)
        return None if isinstance(manifest, _NotModifiedMarker) else manifest

    def _read_manifest(
        self, gallery_id: str, if_none_match: str | None
    ) -> Manifest | _NotModifiedMarker | None:
        """GET the manifest; :data:`_NOT_MODIFIED` only when ``if_none_match`` still matches."""
        key = self.manifest_key(gallery_id)
        extra = {"IfNoneMatch": if_none_match} if if_none_match else {}
        try:
            response = self._call("get_object", key, **extra)
            body = response["Body"].read()
        except _NotModifiedError:
            return _NOT_MODIFIED
        except _NoSuchKeyError:
            return None
        except (ClientError, BotoCoreError) as exc:  # raised while streaming the body
            raise _translate(exc, "get_object", f"s3://{self._bucket}/{key}") from exc
        manifest = Manifest.from_json(body, etag=str(response["ETag"]))
        if manifest.gallery_id != gallery_id:
            raise ManifestCorruptError(
                f"s3://{self._bucket}/{key} belongs to gallery {manifest.gallery_id!r}, not {gallery_id!r}"
            )
        return manifest

    def _publish(
        self,
        gallery_id: str,
        current: Manifest | None,
        build: Callable[[Manifest | None], Manifest],
        action: str,
    ) -> Manifest:
        """Compare-and-swap loop: ``build`` the next manifest from ``current`` and PUT it if unchanged.

        ``build`` returns its argument unchanged when there is nothing to write.
        """
        key = self.manifest_key(gallery_id)
        for attempt in range(self._max_retries + 1):
            new = build(current)
            if new is current and current is not None:
                return current
            condition = {"IfMatch": current.etag} if current is not None else {"IfNoneMatch": "*"}
            try:
                response = self._call(
                    "put_object",
                    key,
                    Body=new.to_json(),
                    ContentType="application/json",
                    **condition,
                )
                return replace(new, etag=str(response["ETag"]))
            except (_PreconditionFailedError, _NoSuchKeyError):
                # Lost the race (or the manifest vanished): re-read and rebuild on the winner's work.
                if attempt < self._max_retries:
                    self._backoff(attempt)
                    current = self.manifest(gallery_id)
        raise GalleryConflictError(
            f"could not {action} gallery {gallery_id!r}: its manifest changed under "
            f"{self._max_retries + 1} attempts in a row (too many concurrent writers); retry later"
        )

    @staticmethod
    def _check_model(gallery_id: str, manifest: Manifest, model_id: str) -> None:
        if manifest.model_id != model_id:
            raise ValueError(
                f"gallery {gallery_id!r} holds {manifest.model_id} templates; cannot add model "
                f"{model_id!r} templates (embeddings of different models are not comparable: "
                f"re-embed with {manifest.model_id} or use another gallery)"
            )

    # -- writes ------------------------------------------------------------------------------

    def _put_object(self, gallery_id: str, shard: Shard, kind: str) -> ObjectRef:
        data = encode_shard(shard)
        key = f"{self._gallery_prefix(gallery_id)}/objects/{uuid.uuid4().hex}.shard"
        try:
            self._call("put_object", key, Body=data, IfNoneMatch="*", ContentType="application/octet-stream")
        except _PreconditionFailedError as exc:
            raise GalleryConflictError(f"object key {key} already exists (uuid collision); retry") from exc
        return ObjectRef(key, kind, shard.count, hashlib.sha256(data).hexdigest(), len(data))

    def _bucket_is_versioned(self) -> bool:
        """Whether the bucket keeps old versions (versioning enabled, or suspended after it was)."""
        if self._versioned is None:
            try:
                status = self._s3.get_bucket_versioning(Bucket=self._bucket).get("Status")
            except (ClientError, BotoCoreError) as exc:
                raise _translate(exc, "get_bucket_versioning", f"s3://{self._bucket}") from exc
            self._versioned = status in ("Enabled", "Suspended")
        return self._versioned

    def _versions_of(self, keys: Sequence[str]) -> list[dict[str, str]]:
        """Every version and delete marker of ``keys`` (one listing of their common prefix)."""
        wanted = set(keys)
        # S3 prefixes are plain strings: the common prefix of the smallest and largest key is
        # the common prefix of them all.
        first, last = min(wanted), max(wanted)
        same = next((i for i, (a, b) in enumerate(zip(first, last, strict=False)) if a != b), len(first))
        prefix = first[:same]
        found: list[dict[str, str]] = []
        try:
            pages = self._s3.get_paginator("list_object_versions").paginate(
                Bucket=self._bucket, Prefix=prefix
            )
            for page in pages:
                for entry in (*page.get("Versions", []), *page.get("DeleteMarkers", [])):
                    if entry["Key"] in wanted:
                        found.append({"Key": entry["Key"], "VersionId": entry["VersionId"]})
        except (ClientError, BotoCoreError) as exc:
            raise _translate(exc, "list_object_versions", f"s3://{self._bucket}/{prefix}") from exc
        return found

    def _delete_objects(self, keys: Iterable[str]) -> None:
        """Delete ``keys`` for good: on a versioned bucket, every version of them (a plain DELETE
        there only adds a delete marker and keeps the bytes as an old version)."""
        pending = sorted(set(keys))
        if not pending:
            return
        targets: list[dict[str, str]] = (
            self._versions_of(pending) if self._bucket_is_versioned() else [{"Key": k} for k in pending]
        )
        for start in range(0, len(targets), _DELETE_BATCH):
            batch = targets[start : start + _DELETE_BATCH]
            try:
                response = self._s3.delete_objects(
                    Bucket=self._bucket, Delete={"Objects": batch, "Quiet": True}
                )
            except (ClientError, BotoCoreError) as exc:
                raise _translate(exc, "delete_objects", f"s3://{self._bucket}/{batch[0]['Key']}...") from exc
            errors = response.get("Errors") or []
            if errors:
                first = errors[0]
                raise GalleryStorageError(
                    f"S3 could not delete {len(errors)} object(s), e.g. {first.get('Key')}: "
                    f"{first.get('Code')} {first.get('Message')}"
                )

    def _append(
        self, gallery_id: str, shard: Shard, kind: str, current: Manifest | None
    ) -> tuple[Manifest, ObjectRef]:
        if current is not None:
            self._check_model(gallery_id, current, shard.model_id)
        ref = self._put_object(gallery_id, shard, kind)

        def build(latest: Manifest | None) -> Manifest:
            if latest is None:
                return Manifest(gallery_id, shard.model_id, 1, (ref,), ())
            if any(o.key == ref.key for o in latest.objects):
                # An earlier attempt landed although its response was lost (botocore retried it).
                return latest
            self._check_model(gallery_id, latest, shard.model_id)
            return replace(latest, version=latest.version + 1, objects=(*latest.objects, ref), etag="")

        try:
            return self._publish(gallery_id, current, build, "append to"), ref
        except ValueError:
            # The gallery was re-created for another model meanwhile: our object was never published.
            self._delete_objects([ref.key])
            raise

    def append(self, gallery_id: str, shard: Shard, *, kind: str = "delta") -> Manifest:
        """Add ``shard`` to the gallery (creating it) and publish it; returns the new manifest.

        ``kind="base"`` is for bulk loads (an import, a benchmark); readers treat both kinds alike.

        Raises
        ------
        ValueError
            The shard is malformed, or its model differs from the gallery's model.
        GalleryConflictError
            The manifest race was lost ``max_retries + 1`` times; the object stays unpublished.
        GalleryStorageError
            S3 failed otherwise.
        """
        if kind not in OBJECT_KINDS:
            raise ValueError(f"kind must be one of {OBJECT_KINDS}, not {kind!r}")
        current = self.manifest(gallery_id)
        return self._append(gallery_id, shard, kind, current)[0]

    def delete_person(self, gallery_id: str, person_id: str) -> Manifest:
        """Append a tombstone for ``person_id``: their templates disappear from every later load.

        The vectors stay in older objects until the erasure sweep compacts them away and deletes
        those objects after the grace period: the request is recorded as a marker for
        :meth:`sweep_erasures`, after the tombstone (a marker always has its tombstone).

        Raises
        ------
        GalleryNotFoundError
            The gallery does not exist.
        """
        if not person_id:
            raise ValueError("person_id must be a non-empty string")
        current = self.manifest(gallery_id)
        if current is None:
            raise GalleryNotFoundError(f"gallery {gallery_id!r} does not exist; nothing to delete")
        tombstone = Shard.tombstone(current.model_id, (person_id,))
        manifest, ref = self._append(gallery_id, tombstone, "delta", current)
        self._call("put_object", self._marker_key(gallery_id, ref.key), Body=b"")
        return manifest

    # -- reads -------------------------------------------------------------------------------

    def load(self, gallery_id: str, previous: Snapshot | None = None) -> Snapshot:
        """The gallery's current snapshot, revalidated against ``previous`` when given.

        With ``previous``, a conditional GET of the manifest returns ``previous`` itself when
        nothing changed (no other request is made); otherwise only objects not in ``previous`` are
        fetched, concurrently, each checked against the manifest's sha256 and decoded.

        Raises
        ------
        GalleryNotFoundError
            The gallery does not exist.
        ShardCorruptError
            An object or the manifest fails verification (the data is not served).
        GalleryStorageError
            S3 failed.
        """
        if previous is not None and previous.manifest.gallery_id != gallery_id:
            raise ValueError(
                f"previous snapshot is of gallery {previous.manifest.gallery_id!r}, not {gallery_id!r}"
            )
        manifest = self._read_manifest(gallery_id, previous.manifest.etag if previous else None)
        if isinstance(manifest, _NotModifiedMarker) and previous is not None:
            return previous
        if not isinstance(manifest, Manifest):
            raise GalleryNotFoundError(f"gallery {gallery_id!r} does not exist (no manifest yet)")

        held: dict[str, tuple[ObjectRef, Shard]] = {}
        if previous is not None:
            held = {
                ref.key: (ref, shard)
                for ref, shard in zip(previous.manifest.objects, previous.shards, strict=True)
            }
        # Objects are immutable: a held key with the same checksum is the same shard.
        listed = set(manifest.objects)
        reusable = {key: shard for key, (ref, shard) in held.items() if ref in listed}
        fetched = self._fetch([ref for ref in manifest.objects if ref.key not in reusable])
        shards: list[Shard] = []
        for ref in manifest.objects:
            shard = reusable[ref.key] if ref.key in reusable else fetched[ref.key]
            if shard.model_id != manifest.model_id or shard.count != ref.count:
                raise ShardCorruptError(
                    f"object {ref.key} holds {shard.count} {shard.model_id} templates but manifest "
                    f"v{manifest.version} lists {ref.count} {manifest.model_id} templates"
                )
            shards.append(shard)
        return Snapshot(manifest, tuple(shards))

    def _fetch(self, refs: Sequence[ObjectRef]) -> dict[str, Shard]:
        if not refs:
            return {}
        downloads = [_Download(ref, self._part_bytes) for ref in refs]
        tasks = [(d, i) for d in downloads for i in range(len(d.ranges))]
        verifier = _Verifier()
        try:
            with ThreadPoolExecutor(
                max_workers=min(self._max_workers, len(tasks)), thread_name_prefix="gallery-get"
            ) as pool:
                futures = [pool.submit(self._fetch_part, d, i, verifier) for d, i in tasks]
                try:
                    for future in futures:
                        future.result()
                except BaseException:
                    pool.shutdown(wait=True, cancel_futures=True)
                    raise
        except BaseException:
            verifier.close(raise_error=False)  # the download error is the one to report
            raise
        verifier.close()
        result: dict[str, Shard] = {}
        for download in downloads:
            if download.shard is None:  # every byte arrived and was verified, so it was decoded
                raise RuntimeError(f"object {download.ref.key} was downloaded but not decoded")
            result[download.ref.key] = download.shard
        return result

    def _fetch_part(self, download: _Download, part: int, verifier: _Verifier) -> None:
        ref = download.ref
        start, end = download.ranges[part]
        where = f"s3://{self._bucket}/{ref.key}"
        extra = {"Range": f"bytes={start}-{end - 1}"} if len(download.ranges) > 1 else {}
        try:
            response = self._call("get_object", ref.key, **extra)
        except _NoSuchKeyError as exc:
            raise GalleryStorageError(
                f"object {where} is listed in the manifest but missing from S3 (deleted by hand, "
                "or a lifecycle rule); restore it or re-enrol the gallery"
            ) from exc
        except _BadRangeError as exc:
            raise ShardCorruptError(
                f"object {where} is shorter than the {ref.size} bytes in the manifest"
            ) from exc
        length = int(response.get("ContentLength", -1))
        if length != end - start:
            raise ShardCorruptError(
                f"object {where}: S3 returned {length} bytes for bytes {start}..{end} "
                f"(the manifest says the object is {ref.size} bytes)"
            )
        body = response["Body"]
        position = start
        try:
            while position < end:
                got = body.readinto(download.view[position : min(position + _READ_CHUNK_BYTES, end)])
                if not got:
                    raise ShardCorruptError(f"object {where} ended after {position} of {ref.size} bytes")
                position += got
                download.progress(part, position - start, verifier)
        except (ClientError, BotoCoreError) as exc:
            raise _translate(exc, "get_object", where) from exc
        finally:
            body.close()

    # -- compaction --------------------------------------------------------------------------

    def compact(
        self, gallery_id: str, *, max_per_shard: int = 1_000_000, grace_seconds: float = 3600.0
    ) -> Manifest:
        """Merge the gallery's objects into base shards and drop deleted and replaced templates.

        Deltas appended while compacting are kept (published after the new bases). Replaced
        objects are retired now and deleted once they have been retired for ``grace_seconds``.

        Raises
        ------
        GalleryNotFoundError
            The gallery does not exist.
        GalleryConflictError
            The manifest kept changing (or other compactions kept winning).
        """
        if max_per_shard < 1:
            raise ValueError("max_per_shard must be at least 1")
        snapshot: Snapshot | None = None
        for attempt in range(self._max_retries + 1):
            snapshot = self.load(gallery_id, snapshot)
            base = snapshot.manifest
            new_refs, replaced = self._write_bases(gallery_id, snapshot, max_per_shard)
            try:
                return self._publish(
                    gallery_id,
                    base,
                    self._compaction_builder(gallery_id, base, new_refs, replaced, grace_seconds),
                    "compact",
                )
            except _PrefixChangedError:
                # Another compaction replaced our snapshot's objects: our bases (if we wrote any)
                # were never published, so drop them and redo the work on the new state.
                if replaced:
                    self._delete_objects(r.key for r in new_refs)
                if attempt < self._max_retries:
                    self._backoff(attempt)
        raise GalleryConflictError(
            f"could not compact gallery {gallery_id!r}: other compactions kept replacing its objects"
        )

    def _write_bases(
        self, gallery_id: str, snapshot: Snapshot, max_per_shard: int
    ) -> tuple[tuple[ObjectRef, ...], tuple[ObjectRef, ...]]:
        objects = snapshot.manifest.objects
        if all(r.kind == "base" and r.count <= max_per_shard for r in objects):
            return objects, ()  # already compact: only retired objects may need purging
        merged = merge_shards(snapshot.shards, snapshot.manifest.model_id)
        refs: list[ObjectRef] = []
        try:
            for start in range(0, merged.count, max_per_shard):
                rows = slice(start, start + max_per_shard)
                chunk = Shard(
                    merged.model_id, merged.template_ids[rows], merged.person_ids[rows], merged.vectors[rows]
                )
                refs.append(self._put_object(gallery_id, chunk, "base"))
        except Exception:
            # Unpublished bases are invisible to readers; remove them (best effort) and report
            # the original failure.
            with contextlib.suppress(GalleryError):
                self._delete_objects(r.key for r in refs)
            raise
        return tuple(refs), objects

    def _compaction_builder(
        self,
        gallery_id: str,
        base: Manifest,
        new_refs: tuple[ObjectRef, ...],
        replaced: tuple[ObjectRef, ...],
        grace_seconds: float,
    ) -> Callable[[Manifest | None], Manifest]:
        prefix = len(base.objects)

        def build(current: Manifest | None) -> Manifest:
            if current is None:
                raise GalleryNotFoundError(f"gallery {gallery_id!r} was removed while compacting")
            if current.objects[:prefix] != base.objects:
                raise _PrefixChangedError
            tail = current.objects[prefix:]  # deltas appended since the snapshot: keep them
            now = self._clock()
            retired = [*current.retired, *((r.key, now) for r in replaced)]
            expired = {key for key, at in retired if now - at > grace_seconds}
            if not replaced and not expired:
                return current
            if expired:
                # Deleting before publishing is safe: they left "objects" over a grace period ago,
                # and deleting is idempotent if this CAS attempt loses and is retried.
                self._delete_objects(expired)
            return Manifest(
                gallery_id=gallery_id,
                model_id=current.model_id,
                version=current.version + 1,
                objects=(*new_refs, *tail),
                retired=tuple((key, at) for key, at in retired if key not in expired),
            )

        return build

    def purge_retired(self, gallery_id: str, *, grace_seconds: float = 3600.0) -> Manifest:
        """Delete the objects retired more than ``grace_seconds`` ago (without compacting: only the
        manifest is read) and publish the manifest without them.

        Raises
        ------
        GalleryNotFoundError
            The gallery does not exist.
        GalleryConflictError
            The manifest kept changing.
        """
        current = self.manifest(gallery_id)
        if current is None:
            raise GalleryNotFoundError(f"gallery {gallery_id!r} does not exist; nothing to purge")

        def build(latest: Manifest | None) -> Manifest:
            if latest is None:
                raise GalleryNotFoundError(f"gallery {gallery_id!r} was removed while purging")
            now = self._clock()
            expired = {key for key, at in latest.retired if now - at > grace_seconds}
            if not expired:
                return latest
            self._delete_objects(expired)  # retired over a grace period ago: no reader needs them
            return replace(
                latest,
                version=latest.version + 1,
                retired=tuple((key, at) for key, at in latest.retired if key not in expired),
                etag="",
            )

        return self._publish(gallery_id, current, build, "purge")

    # -- erasure sweep -----------------------------------------------------------------------

    def sweep_erasures(self, *, grace_seconds: float = 3600.0, max_per_shard: int = 1_000_000) -> SweepReport:
        """Make pending erasures physical: the scheduled job of the erasure bound.

        For each gallery with erasure markers: if a marker's tombstone is still listed, compact the
        gallery (the erased vectors leave the listed objects; the objects that held them are
        retired); otherwise only delete the objects retired more than ``grace_seconds`` ago. A
        marker is removed once its tombstone is neither listed nor retired: the objects retired
        with it, which held the vectors, are deleted by then (every version of them on a versioned
        bucket). A gallery that fails is reported and left for the next sweep; the others go on.

        Started every ``P`` and ending within ``P``, it makes an erasure physical at most
        ``grace + 4P`` after it (``eventface.domain.model.template_purge_deadline``).
        """
        requests: dict[str, list[tuple[str, str]]] = {}
        for key in self._list_keys(self._erasures_prefix()):
            parsed = self._parse_marker(key)
            if parsed is not None:
                requests.setdefault(parsed[0], []).append((key, parsed[1]))
        compacted = purged = pending = 0
        failed: list[str] = []
        for gallery_id, markers in sorted(requests.items()):
            try:
                held, did_compact, deleted = self._sweep_gallery(
                    gallery_id, {tombstone for _, tombstone in markers}, grace_seconds, max_per_shard
                )
                done = [marker for marker, tombstone in markers if tombstone not in held]
                self._delete_objects(done)
            except (GalleryError, ShardCorruptError, ValueError) as exc:
                failed.append(f"{gallery_id}: {exc}")
                pending += len(markers)
                continue
            compacted += did_compact
            purged += deleted
            pending += len(markers) - len(done)
        return SweepReport(len(requests), compacted, purged, pending, tuple(failed))

    def _sweep_gallery(
        self, gallery_id: str, tombstones: set[str], grace_seconds: float, max_per_shard: int
    ) -> tuple[set[str], bool, int]:
        """Compact or purge one gallery: (keys still listed or retired, compacted?, objects deleted)."""
        current = self.manifest(gallery_id)
        if current is None:
            return set(), False, 0
        compact = bool(tombstones & {ref.key for ref in current.objects})
        try:
            if compact:
                after = self.compact(gallery_id, max_per_shard=max_per_shard, grace_seconds=grace_seconds)
            else:
                after = self.purge_retired(gallery_id, grace_seconds=grace_seconds)
        except GalleryNotFoundError:
            return set(), False, 0
        retired_after = {key for key, _ in after.retired}
        deleted = len({key for key, _ in current.retired} - retired_after)
        return {ref.key for ref in after.objects} | retired_after, compact, deleted
