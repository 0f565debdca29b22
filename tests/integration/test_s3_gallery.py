"""The S3 gallery store against a moto server: CAS publication, revalidation, corruption, compaction."""

from __future__ import annotations

import math
import multiprocessing
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

from eventface import aws
from eventface.adapters.s3_gallery import (
    GalleryConflictError,
    GalleryNotFoundError,
    ManifestCorruptError,
    S3GalleryStore,
    Snapshot,
)
from face_engine.errors import ShardCorruptError
from face_engine.shard import Shard, encode_shard, merge_shards

MODEL = "sface-2021dec"
DIM = 128
GALLERY = "campaign-7/vip"


def shard_of(
    ids: list[str],
    people: list[str] | None = None,
    *,
    seed: int = 0,
    model_id: str = MODEL,
    dim: int = DIM,
) -> Shard:
    """Templates ``ids`` of ``people`` (default: one person per template, ``p-<id>``)."""
    rng = np.random.default_rng(seed)
    rows = rng.standard_normal((len(ids), dim))
    vectors = np.asarray(rows / np.linalg.norm(rows, axis=1, keepdims=True), dtype=np.float32)
    return Shard(
        model_id=model_id,
        template_ids=np.asarray(ids, dtype=str).reshape(-1),
        person_ids=np.asarray(people if people is not None else [f"p-{i}" for i in ids], dtype=str).reshape(
            -1
        ),
        vectors=vectors.reshape(len(ids), dim),
    )


def live_ids(snapshot: Snapshot) -> list[str]:
    """Template ids a search would see: tombstones and replacements applied."""
    return sorted(merge_shards(snapshot.shards, snapshot.manifest.model_id).template_ids.tolist())


def stored_ids(snapshot: Snapshot) -> Counter[str]:
    """Every template id stored in the snapshot's objects, with multiplicity."""
    return Counter(t for shard in snapshot.shards for t in shard.template_ids.tolist())


def append_worker(
    bucket: str, gallery_id: str, *, worker: int, appends: int, per_append: int, barrier: Any
) -> None:
    """Runs in a spawned process: its own interpreter, its own boto3 client from AWS_ENDPOINT_URL."""
    store = S3GalleryStore(bucket)
    barrier.wait(timeout=120)
    for a in range(appends):
        ids = [f"w{worker}-a{a}-t{i}" for i in range(per_append)]
        store.append(gallery_id, shard_of(ids, seed=worker * 1000 + a))


def run_writer_processes(bucket: str, gallery_id: str, writers: int, appends: int, per_append: int) -> None:
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(writers)
    processes = [
        context.Process(
            target=append_worker,
            args=(bucket, gallery_id),
            kwargs={"worker": w, "appends": appends, "per_append": per_append, "barrier": barrier},
        )
        for w in range(writers)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
    assert [p.exitcode for p in processes] == [0] * writers


@dataclass
class Clock:
    now: float = 1_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class CallLog:
    """Every S3 call made through the shared client: (operation, HTTP status, Range header)."""

    calls: list[tuple[str, int, str | None]] = field(default_factory=list)
    _ranges: dict[int, str | None] = field(default_factory=dict)

    def before(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        self._ranges[threading.get_ident()] = params.get("Range")

    def after(self, http_response: Any, model: Any, **_: Any) -> None:
        self.calls.append(
            (model.name, http_response.status_code, self._ranges.pop(threading.get_ident(), None))
        )

    def of(self, operation: str) -> list[tuple[str, int, str | None]]:
        return [c for c in self.calls if c[0] == operation]


@pytest.fixture
def make_shard() -> Callable[..., Shard]:
    return shard_of


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def make_store(bucket: str, clock: Clock, sleeps: list[float]) -> Callable[..., S3GalleryStore]:
    """Stores on the test's bucket; backoff is recorded instead of slept."""

    def make(**overrides: Any) -> S3GalleryStore:
        options: dict[str, Any] = {"clock": clock, "sleep": sleeps.append, **overrides}
        return S3GalleryStore(bucket, **options)

    return make


@pytest.fixture
def s3_calls(bucket: str) -> Iterator[CallLog]:
    log = CallLog()
    events = aws.client("s3").meta.events
    events.register("before-parameter-build.s3", log.before)
    events.register("after-call.s3", log.after)
    yield log
    events.unregister("before-parameter-build.s3", log.before)
    events.unregister("after-call.s3", log.after)


def bucket_keys(bucket: str) -> set[str]:
    listing = aws.client("s3").list_objects_v2(Bucket=bucket)
    return {o["Key"] for o in listing.get("Contents", [])}


# -------------------------------------------------------------------------------- append and load


def test_store_append_then_load_round_trips_templates(make_store) -> None:
    # given
    store = make_store()
    first, second = shard_of(["t1", "t2", "t3"], seed=1), shard_of(["t4"], seed=2)
    # when
    store.append(GALLERY, first)
    published = store.append(GALLERY, second)
    snapshot = store.load(GALLERY)
    # then
    assert published.version == 2
    assert [(o.kind, o.count) for o in published.objects] == [("delta", 3), ("delta", 1)]
    assert snapshot.manifest == published
    assert snapshot.manifest.etag == published.etag
    assert [s.template_ids.tolist() for s in snapshot.shards] == [["t1", "t2", "t3"], ["t4"]]
    assert np.array_equal(snapshot.shards[0].vectors, first.vectors)
    assert store.manifest(GALLERY) == published


def test_store_load_of_an_unknown_gallery_raises_not_found(make_store) -> None:
    # given
    store = make_store()
    # when / then
    assert store.manifest("nobody-here") is None
    with pytest.raises(GalleryNotFoundError, match="'nobody-here' does not exist"):
        store.load("nobody-here")


@pytest.mark.parametrize("gallery_id", ["", "/abs", "a//b", "../up", "a/../b", "sp ace"])
def test_store_refuses_gallery_ids_that_are_not_safe_key_segments(make_store, gallery_id) -> None:
    # given
    store = make_store()
    # when / then
    with pytest.raises(ValueError, match="invalid gallery id"):
        store.append(gallery_id, shard_of(["t1"]))


def test_store_append_refuses_a_shard_of_another_model_and_writes_nothing(make_store, bucket) -> None:
    # given
    store = make_store()
    store.append(GALLERY, shard_of(["t1"]))
    before = bucket_keys(bucket)
    # when / then
    with pytest.raises(ValueError, match="holds sface-2021dec templates; cannot add model 'arcface-r100'"):
        store.append(GALLERY, shard_of(["t2"], model_id="arcface-r100"))
    assert bucket_keys(bucket) == before


def test_store_append_after_losing_the_manifest_race_retries_on_the_winners_manifest(
    make_store, sleeps, monkeypatch
) -> None:
    # given: another writer publishes between our manifest read and our conditional PUT
    store, rival = make_store(), make_store()
    store.append(GALLERY, shard_of(["t0"]))
    read_manifest = store.manifest
    raced: list[bool] = []

    def manifest_then_rival_appends(gallery_id: str) -> Any:
        manifest = read_manifest(gallery_id)
        if not raced:
            raced.append(True)
            rival.append(gallery_id, shard_of(["rival"]))
        return manifest

    monkeypatch.setattr(store, "manifest", manifest_then_rival_appends)
    # when
    published = store.append(GALLERY, shard_of(["ours"]))
    # then
    assert published.version == 3
    assert live_ids(store.load(GALLERY)) == ["ours", "rival", "t0"]
    assert len(sleeps) == 1


@pytest.mark.parametrize("max_retries", [0, 2])
def test_store_append_gives_up_with_a_conflict_error_after_max_retries(
    make_store, sleeps, monkeypatch, max_retries
) -> None:
    # given: a rival wins every race
    store, rival = make_store(max_retries=max_retries), make_store()
    read_manifest = store.manifest
    rounds = iter(range(100))

    def manifest_then_rival_appends(gallery_id: str) -> Any:
        manifest = read_manifest(gallery_id)
        rival.append(gallery_id, shard_of([f"rival-{next(rounds)}"]))
        return manifest

    monkeypatch.setattr(store, "manifest", manifest_then_rival_appends)
    # when / then
    with pytest.raises(GalleryConflictError, match="too many concurrent writers"):
        store.append(GALLERY, shard_of(["ours"]))
    assert len(sleeps) == max_retries
    assert "ours" not in live_ids(store.load(GALLERY))


def test_store_threads_appending_concurrently_lose_nothing(make_store) -> None:
    # given
    store = make_store()
    batches = [[f"thread{t}-{i}" for i in range(20)] for t in range(2)]

    def append_all(ids: list[str]) -> None:
        for i, template_id in enumerate(ids):
            store.append(GALLERY, shard_of([template_id], seed=i))

    # when
    threads = [threading.Thread(target=append_all, args=(ids,)) for ids in batches]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # then
    snapshot = store.load(GALLERY)
    assert snapshot.manifest.version == 40
    assert stored_ids(snapshot) == Counter(batches[0] + batches[1])


def test_store_writer_processes_appending_concurrently_lose_nothing(make_store, bucket) -> None:
    # given: 8 processes, each with its own client, released together
    writers, appends, per_append = 8, 10, 5
    # when
    run_writer_processes(bucket, GALLERY, writers, appends, per_append)
    # then: every template of every append is there exactly once
    snapshot = make_store().load(GALLERY)
    expected = Counter(
        f"w{w}-a{a}-t{i}" for w in range(writers) for a in range(appends) for i in range(per_append)
    )
    assert stored_ids(snapshot) == expected
    assert len(snapshot.manifest.objects) == writers * appends
    assert snapshot.manifest.version == writers * appends


# ------------------------------------------------------------------------------------ revalidation


def test_store_load_with_an_unchanged_manifest_returns_the_same_snapshot_after_one_304(
    make_store, s3_calls
) -> None:
    # given
    store = make_store()
    store.append(GALLERY, shard_of(["t1", "t2"]))
    snapshot = store.load(GALLERY)
    s3_calls.calls.clear()
    # when
    again = store.load(GALLERY, snapshot)
    # then
    assert again is snapshot
    assert s3_calls.calls == [("GetObject", 304, None)]


def test_store_load_after_another_process_appends_sees_it_and_fetches_only_the_new_object(
    make_store, bucket, s3_calls
) -> None:
    # given: a warm reader
    store = make_store()
    store.append(GALLERY, shard_of(["t1", "t2"]))
    snapshot = store.load(GALLERY)
    # when: another process enrols, then the reader revalidates
    run_writer_processes(bucket, GALLERY, writers=1, appends=1, per_append=3)
    s3_calls.calls.clear()
    fresh = store.load(GALLERY, snapshot)
    # then: read-your-writes, reusing the shard it already held
    assert live_ids(fresh) == ["t1", "t2", "w0-a0-t0", "w0-a0-t1", "w0-a0-t2"]
    assert fresh.shards[0] is snapshot.shards[0]
    assert [(op, status) for op, status, _ in s3_calls.calls] == [("GetObject", 200), ("GetObject", 200)]


@pytest.mark.parametrize("objects", [1, 3])
def test_store_load_fetches_large_objects_as_parallel_byte_ranges(make_store, s3_calls, objects) -> None:
    # given: objects of ~35 kB and 4 kB parts
    part = 4096
    store = make_store(part_bytes=part, max_workers=4)
    shards = [shard_of([f"o{o}-t{i}" for i in range(64)], seed=o) for o in range(objects)]
    for shard in shards:
        store.append(GALLERY, shard)
    sizes = [o.size for o in store.manifest(GALLERY).objects]
    s3_calls.calls.clear()
    # when
    snapshot = store.load(GALLERY)
    # then
    for loaded, shard in zip(snapshot.shards, shards, strict=True):
        assert np.array_equal(loaded.vectors, shard.vectors)
        assert loaded.template_ids.tolist() == shard.template_ids.tolist()
    ranged = [r for op, _, r in s3_calls.of("GetObject") if r is not None]
    assert len(ranged) == sum(math.ceil(size / part) for size in sizes)
    assert "bytes=0-4095" in ranged


# ------------------------------------------------------------------------------------ corruption


def _flip_middle(data: bytes) -> bytes:
    middle = len(data) // 2
    return data[:middle] + bytes([data[middle] ^ 0x01]) + data[middle + 1 :]


DAMAGE: dict[str, tuple[Callable[[bytes], bytes], str]] = {
    "flipped byte": (_flip_middle, "sha256 .* but the manifest says"),
    "truncated": (lambda data: data[:-100], "bytes"),
    "another valid shard": (lambda data: encode_shard(shard_of(["x"], seed=99)), "manifest"),
}


@pytest.mark.parametrize("part_bytes", [None, 4096], ids=["one GET", "byte ranges"])
@pytest.mark.parametrize(("damage", "message"), DAMAGE.values(), ids=DAMAGE.keys())
def test_store_load_refuses_an_object_damaged_in_s3_and_serves_nothing(
    make_store, bucket, part_bytes, damage, message
) -> None:
    # given: a reader holding v1, then v2 whose new object gets damaged in the bucket
    store = make_store(part_bytes=part_bytes)
    store.append(GALLERY, shard_of(["t1"]))
    snapshot = store.load(GALLERY)
    ref = store.append(GALLERY, shard_of([f"t{i}" for i in range(2, 40)], seed=2)).objects[-1]
    s3 = aws.client("s3")
    original = s3.get_object(Bucket=bucket, Key=ref.key)["Body"].read()
    s3.put_object(Bucket=bucket, Key=ref.key, Body=damage(original))
    # when / then
    with pytest.raises(ShardCorruptError, match=message):
        store.load(GALLERY, snapshot)
    assert live_ids(snapshot) == ["t1"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b'{"format": 2}', "unknown gallery manifest format 2"),
        (b'{"format": 1, "gallery_id": "campaign-7/vip"}', "missing or invalid field"),
    ],
)
def test_store_load_refuses_a_corrupt_manifest(make_store, bucket, body, message) -> None:
    # given
    store = make_store()
    aws.client("s3").put_object(Bucket=bucket, Key=store.manifest_key(GALLERY), Body=body)
    # when / then
    with pytest.raises(ManifestCorruptError, match=message):
        store.load(GALLERY)


# ------------------------------------------------------------------------------------ tombstones


def test_store_delete_person_appends_a_tombstone_that_hides_earlier_templates(make_store) -> None:
    # given
    store = make_store()
    store.append(GALLERY, shard_of(["a1", "a2", "b1"], ["anna", "anna", "ben"]))
    # when
    published = store.delete_person(GALLERY, "anna")
    snapshot = store.load(GALLERY)
    # then
    assert (published.objects[-1].kind, published.objects[-1].count) == ("delta", 0)
    assert snapshot.shards[-1].deleted_people == ("anna",)
    assert live_ids(snapshot) == ["b1"]


def test_store_delete_person_of_an_unknown_gallery_raises_not_found(make_store) -> None:
    # given
    store = make_store()
    # when / then
    with pytest.raises(GalleryNotFoundError, match="nothing to delete"):
        store.delete_person("nobody-here", "anna")


# ------------------------------------------------------------------------------------ compaction


def test_store_compact_drops_deleted_and_replaced_templates_but_keeps_re_registrations(
    make_store, clock
) -> None:
    # given: anna enrolled twice, erased, enrolled again; ben's t2 re-enrolled with a new vector
    store = make_store()
    store.append(GALLERY, shard_of(["t1", "t2"], ["anna", "ben"], seed=1))
    store.append(GALLERY, shard_of(["t3"], ["anna"], seed=2))
    store.delete_person(GALLERY, "anna")
    store.append(GALLERY, shard_of(["t4"], ["anna"], seed=3))
    newer_t2 = shard_of(["t2"], ["ben"], seed=4)
    store.append(GALLERY, newer_t2)
    reader = store.load(GALLERY)
    # when
    compacted = store.compact(GALLERY)
    snapshot = store.load(GALLERY, reader)
    # then
    assert [(o.kind, o.count) for o in compacted.objects] == [("base", 2)]
    assert sorted(k for k, _ in compacted.retired) == sorted(o.key for o in reader.manifest.objects)
    assert {t for _, t in compacted.retired} == {clock.now}
    only = snapshot.shards[0]
    assert sorted(zip(only.template_ids.tolist(), only.person_ids.tolist(), strict=True)) == [
        ("t2", "ben"),
        ("t4", "anna"),
    ]
    assert np.array_equal(only.vectors[only.template_ids.tolist().index("t2")], newer_t2.vectors[0])
    assert live_ids(snapshot) == live_ids(reader)


def test_store_compact_splits_into_base_shards_of_at_most_max_per_shard(make_store) -> None:
    # given
    store = make_store()
    for batch in range(3):
        store.append(GALLERY, shard_of([f"b{batch}-{i}" for i in range(4)], seed=batch))
    store.delete_person(GALLERY, "p-b0-0")
    # when
    compacted = store.compact(GALLERY, max_per_shard=4)
    # then
    assert [(o.kind, o.count) for o in compacted.objects] == [("base", 4), ("base", 4), ("base", 3)]
    assert len(live_ids(store.load(GALLERY))) == 11


def test_store_compact_keeps_deltas_appended_while_it_was_merging(make_store, monkeypatch) -> None:
    # given: writers append and erase after compaction took its snapshot, before it publishes
    store, writer = make_store(), make_store()
    store.append(GALLERY, shard_of(["old-1", "old-2"], ["anna", "ben"]))
    store.append(GALLERY, shard_of(["old-3"], ["carl"]))
    write_bases = store._write_bases

    def write_bases_then_others_write(*args: Any) -> Any:
        written = write_bases(*args)
        writer.append(GALLERY, shard_of(["new-1"], ["dora"]))
        writer.delete_person(GALLERY, "ben")
        return written

    monkeypatch.setattr(store, "_write_bases", write_bases_then_others_write)
    # when
    compacted = store.compact(GALLERY)
    # then: bases first, then the two deltas that arrived meanwhile, in order
    assert [o.kind for o in compacted.objects] == ["base", "delta", "delta"]
    assert live_ids(store.load(GALLERY)) == ["new-1", "old-1", "old-3"]


def test_store_compact_while_two_threads_append_loses_nothing(make_store, monkeypatch) -> None:
    # given: an erasure already published, and two enrolment threads that keep appending
    store = make_store()
    store.append(GALLERY, shard_of(["gone-1"], ["erased"]))
    store.delete_person(GALLERY, "erased")
    batches = [[f"thread{t}-{i}" for i in range(15)] for t in range(2)]
    progress = threading.Condition()
    appended = [0]

    def append_all(ids: list[str]) -> None:
        writer = make_store()
        for i, template_id in enumerate(ids):
            writer.append(GALLERY, shard_of([template_id], seed=i))
            with progress:
                appended[0] += 1
                progress.notify_all()

    write_bases = store._write_bases

    def write_bases_while_threads_append(*args: Any) -> Any:
        written = write_bases(*args)
        # Hold the merged result until the threads have published a few more deltas.
        with progress:
            target = min(appended[0] + 4, 30)
            progress.wait_for(lambda: appended[0] >= target, timeout=60)
        return written

    monkeypatch.setattr(store, "_write_bases", write_bases_while_threads_append)
    threads = [threading.Thread(target=append_all, args=(ids,)) for ids in batches]
    for thread in threads:
        thread.start()
    # when: compaction starts once appends are flowing
    with progress:
        progress.wait_for(lambda: appended[0] >= 2, timeout=60)
    store.compact(GALLERY)
    for thread in threads:
        thread.join()
    # then
    snapshot = store.load(GALLERY)
    assert live_ids(snapshot) == sorted(batches[0] + batches[1])
    assert "gone-1" not in stored_ids(snapshot)
    assert snapshot.manifest.objects[0].kind == "base"


def test_store_compact_that_loses_to_another_compaction_redoes_and_leaves_no_orphans(
    make_store, bucket, monkeypatch
) -> None:
    # given: a rival compaction publishes while ours is merging the same snapshot
    store, rival = make_store(), make_store()
    for batch in range(3):
        store.append(GALLERY, shard_of([f"b{batch}"], seed=batch))
    write_bases = store._write_bases
    raced: list[bool] = []

    def write_bases_then_rival_compacts(*args: Any) -> Any:
        written = write_bases(*args)
        if not raced:
            raced.append(True)
            rival.compact(GALLERY)
        return written

    monkeypatch.setattr(store, "_write_bases", write_bases_then_rival_compacts)
    # when
    final = store.compact(GALLERY)
    # then: the rival's result stands; our unpublished bases were removed
    assert [o.kind for o in final.objects] == ["base"]
    assert live_ids(store.load(GALLERY)) == ["b0", "b1", "b2"]
    referenced = {o.key for o in final.objects} | {k for k, _ in final.retired}
    assert bucket_keys(bucket) == referenced | {store.manifest_key(GALLERY)}


@pytest.mark.parametrize(
    ("elapsed", "purged"),
    [(3599.0, False), (3600.0, False), (3601.0, True)],
    ids=["within grace", "at grace", "after grace"],
)
def test_store_compact_deletes_retired_objects_only_after_the_grace_period(
    make_store, bucket, clock, elapsed, purged
) -> None:
    # given: a compaction at t=1000 retired two deltas
    store = make_store()
    store.append(GALLERY, shard_of(["t1"]))
    store.append(GALLERY, shard_of(["t2"], seed=2))
    retired = {k for k, _ in store.compact(GALLERY, grace_seconds=3600.0).retired}
    # when: the next compaction runs `elapsed` seconds later
    clock.now += elapsed
    manifest = store.compact(GALLERY, grace_seconds=3600.0)
    # then
    assert (retired & bucket_keys(bucket) == set()) is purged
    assert ({k for k, _ in manifest.retired} == set()) is purged
    assert live_ids(store.load(GALLERY)) == ["t1", "t2"]
