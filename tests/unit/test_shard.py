"""The shard format: round trips, zero-copy decoding, refusal of every kind of damage, merge rules."""

from __future__ import annotations

import hashlib
import json
import pickle
import struct
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from face_engine.errors import FaceEngineError, ShardCorruptError
from face_engine.shard import FORMAT_VERSION, MAGIC, Shard, decode_shard, encode_shard, merge_shards

MODEL = "sface-2021dec"


def _unit(rows: np.ndarray) -> np.ndarray:
    return np.asarray(rows / np.linalg.norm(rows, axis=1, keepdims=True), dtype=np.float32)


@pytest.fixture
def make_shard() -> Callable[..., Shard]:
    def make(
        n: int = 4,
        dim: int = 128,
        *,
        seed: int = 0,
        ids: list[str] | None = None,
        people: list[str] | None = None,
        deleted: tuple[str, ...] = (),
        model_id: str = MODEL,
    ) -> Shard:
        rng = np.random.default_rng(seed)
        vectors = _unit(rng.standard_normal((n, dim))) if n else np.empty((0, dim), np.float32)
        return Shard(
            model_id=model_id,
            template_ids=np.asarray(
                ids if ids is not None else [f"t-{seed}-{i}" for i in range(n)], dtype=str
            ),
            person_ids=np.asarray(
                people if people is not None else [f"p-{i // 2}" for i in range(n)], dtype=str
            ),
            vectors=vectors,
            deleted_people=deleted,
        )

    return make


def _split(data: bytes) -> tuple[dict[str, Any], bytes]:
    (length,) = struct.unpack_from("<I", data, 8)
    return json.loads(data[12 : 12 + length]), data[12 + length :]


def _rewrite(data: bytes, edit: Callable[[dict[str, Any]], None], payload: bytes | None = None) -> bytes:
    """Re-pack a shard with an edited header (and optionally another payload), keeping it well framed."""
    header, original = _split(data)
    edit(header)
    text = json.dumps(header).encode()
    length = -(-(12 + len(text)) // 64) * 64 - 12
    return MAGIC + struct.pack("<I", length) + text.ljust(length) + (original if payload is None else payload)


def _assert_same(a: Shard, b: Shard) -> None:
    assert a.model_id == b.model_id
    assert a.template_ids.tolist() == b.template_ids.tolist()
    assert a.person_ids.tolist() == b.person_ids.tolist()
    assert a.vectors.shape == b.vectors.shape
    assert np.array_equal(a.vectors, b.vectors)
    assert a.deleted_people == b.deleted_people


# ------------------------------------------------------------------------------------ round trip


@pytest.mark.parametrize(
    ("n", "dim", "deleted"),
    [(0, 128, ("p-9",)), (1, 128, ()), (257, 128, ("p-1", "p-2")), (50, 512, ()), (3, 2, ())],
)
def test_shard_round_trip_keeps_ids_vectors_and_tombstones(make_shard, n, dim, deleted) -> None:
    # given
    shard = make_shard(n, dim, deleted=deleted)
    # when
    decoded = decode_shard(encode_shard(shard))
    # then
    _assert_same(decoded, shard)
    assert decoded.count == n
    assert decoded.dim == dim


def test_shard_round_trip_of_tombstone_only_factory_has_no_templates() -> None:
    # given
    tombstone = Shard.tombstone(MODEL, ("p-7",))
    # when
    decoded = decode_shard(encode_shard(tombstone))
    # then
    assert decoded.count == 0
    assert decoded.deleted_people == ("p-7",)


@pytest.mark.parametrize(
    ("ids", "stored_as"),
    [(["alice-1", "bob-22"], "|S"), (["émilie-1", "山田-2"], "<U")],
)
def test_shard_stores_ascii_ids_compactly_and_unicode_ids_exactly(make_shard, ids, stored_as) -> None:
    # given
    shard = make_shard(2, ids=ids, people=ids)
    # when
    data = encode_shard(shard)
    decoded = decode_shard(data)
    # then
    header, _ = _split(data)
    assert header["arrays"]["template_ids"]["dtype"].startswith(stored_as)
    assert decoded.template_ids.tolist() == ids
    assert decoded.template_ids.dtype.kind == "U"


def test_shard_layout_is_magic_length_json_header_then_aligned_payload(make_shard) -> None:
    # given
    shard = make_shard(5, 128, deleted=("p-3",))
    # when
    data = encode_shard(shard)
    header, payload = _split(data)
    # then
    assert data[:8] == b"EFSHARD\0"
    assert (len(data) - len(payload)) % 64 == 0
    assert header["format_version"] == FORMAT_VERSION
    assert (header["model_id"], header["count"], header["dim"], header["dtype"]) == (MODEL, 5, 128, "<f4")
    assert header["deleted_people"] == ["p-3"]
    assert header["payload_sha256"] == hashlib.sha256(payload).hexdigest()
    vectors = header["arrays"]["vectors"]
    assert payload[vectors["offset"] : vectors["offset"] + vectors["length"]] == shard.vectors.tobytes()
    assert all(spec["offset"] % 64 == 0 for spec in header["arrays"].values())


@pytest.mark.parametrize(
    ("ids", "ids_shared"),
    [(["ascii-1", "ascii-2"], False), (["ünï-1", "ünï-2"], True)],
    ids=["ascii ids are widened", "unicode ids are views"],
)
def test_decode_shard_is_zero_copy_and_read_only(make_shard, ids, ids_shared) -> None:
    # given
    data = encode_shard(make_shard(2, ids=ids, people=ids))
    raw = np.frombuffer(data, dtype=np.uint8)
    # when
    decoded = decode_shard(data)
    # then
    assert np.shares_memory(decoded.vectors, raw)
    assert np.shares_memory(decoded.template_ids, raw) is ids_shared
    assert not decoded.vectors.flags.writeable
    assert not decoded.template_ids.flags.writeable


def test_decode_shard_accepts_a_bytearray_without_copying(make_shard) -> None:
    # given: the S3 adapter downloads into a preallocated bytearray
    buffer = bytearray(encode_shard(make_shard(3)))
    # when
    decoded = decode_shard(buffer)
    # then
    assert np.shares_memory(decoded.vectors, np.frombuffer(buffer, dtype=np.uint8))
    assert not decoded.vectors.flags.writeable


# ------------------------------------------------------------------------------------ corruption


def _flip(data: bytes, index: int) -> bytes:
    return data[:index] + bytes([data[index] ^ 0xFF]) + data[index + 1 :]


def _header_end(data: bytes) -> int:
    (length,) = struct.unpack_from("<I", data, 8)
    return 12 + int(length)


def _set(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(header: dict[str, Any]) -> None:
        header[key] = value

    return edit


def _count_and_shapes(n: int) -> Callable[[dict[str, Any]], None]:
    def edit(header: dict[str, Any]) -> None:
        header["count"] = n
        header["arrays"]["vectors"]["shape"][0] = n
        header["arrays"]["template_ids"]["shape"] = [n]
        header["arrays"]["person_ids"]["shape"] = [n]

    return edit


def _ids_dtype(dtype: str) -> Callable[[dict[str, Any]], None]:
    def edit(header: dict[str, Any]) -> None:
        header["arrays"]["template_ids"]["dtype"] = dtype

    return edit


CORRUPTIONS: list[tuple[str, Callable[[bytes], bytes], str]] = [
    ("bad magic", lambda d: b"NOTSHARD" + d[8:], "bad magic"),
    ("pickle instead", lambda d: pickle.dumps({"vectors": [1.0]}), "bad magic"),
    (
        "future version",
        lambda d: _rewrite(d, _set("format_version", 2)),
        r"unknown format version 2.*supports.* 1",
    ),
    ("empty", lambda d: b"", "truncated"),
    ("cut in magic", lambda d: d[:5], "truncated"),
    ("cut in header", lambda d: d[:40], "truncated.*header"),
    ("cut at payload start", lambda d: d[: _header_end(d)], "truncated.*payload"),
    ("cut in vectors", lambda d: d[: _header_end(d) + 100], "truncated.*payload"),
    ("last byte missing", lambda d: d[:-1], "truncated.*payload"),
    ("trailing bytes", lambda d: d + b"\0" * 8, "unexpected bytes"),
    ("flipped payload byte", lambda d: _flip(d, _header_end(d) + 7), "checksum mismatch"),
    ("header not json", lambda d: d[:12] + b"#" + d[13:], "not valid UTF-8 JSON"),
    ("header length absurd", lambda d: d[:8] + struct.pack("<I", 2**31) + d[12:], "exceeds"),
    ("count lies", lambda d: _rewrite(d, _set("count", 5)), "disagrees with count"),
    (
        "count and shapes lie",
        lambda d: _rewrite(d, _count_and_shapes(5)),
        "vectors: length 256 bytes does not hold 80 items",
    ),
    ("dim lies", lambda d: _rewrite(d, _set("dim", 64)), "disagrees with count/dim"),
    ("object dtype ids", lambda d: _rewrite(d, _ids_dtype("|O")), "only fixed-width"),
    ("vector dtype float64", lambda d: _rewrite(d, _set("dtype", "<f8")), "not supported"),
]


@pytest.mark.parametrize(("damage", "message"), [c[1:] for c in CORRUPTIONS], ids=[c[0] for c in CORRUPTIONS])
def test_decode_shard_refuses_damaged_bytes(make_shard, damage, message) -> None:
    # given
    data = damage(encode_shard(make_shard(4, 16)))
    # when / then
    with pytest.raises(ShardCorruptError, match=message) as caught:
        decode_shard(data)
    assert isinstance(caught.value, FaceEngineError)
    assert str(caught.value).startswith("corrupt shard:")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_decode_shard_refuses_non_finite_vectors_even_with_a_valid_checksum(make_shard, bad) -> None:
    # given: a writer that bypassed validation, with a correct checksum over the bad payload
    data = encode_shard(make_shard(3, 8))
    _, payload = _split(data)
    vectors = np.frombuffer(payload, dtype="<f4", count=24).copy()
    vectors[13] = bad
    payload = vectors.tobytes() + payload[vectors.nbytes :]
    forged = _rewrite(data, _set("payload_sha256", hashlib.sha256(payload).hexdigest()), payload)
    # when / then
    with pytest.raises(ShardCorruptError, match="row 1 contains NaN or infinity"):
        decode_shard(forged)


def test_decode_shard_without_checksum_still_checks_structure(make_shard) -> None:
    # given: a damaged vector byte (caught by the payload checksum) and a damaged count
    data = encode_shard(make_shard(4, 16))
    flipped = _flip(data, _header_end(data) + 1)
    # when
    decoded = decode_shard(flipped, verify_checksum=False)
    # then: the checksum is the caller's business, the structure is still ours
    assert decoded.count == 4
    with pytest.raises(ShardCorruptError, match="checksum mismatch"):
        decode_shard(flipped)
    with pytest.raises(ShardCorruptError, match="disagrees with count"):
        decode_shard(_rewrite(data, _set("count", 3)), verify_checksum=False)


def test_decode_shard_never_unpickles(make_shard, monkeypatch) -> None:
    # given: every unpickling entry point fails the test if touched
    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("the shard reader must never unpickle")

    monkeypatch.setattr(pickle, "loads", forbidden)
    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(np, "load", forbidden)
    data = encode_shard(make_shard(3))
    # when
    decoded = decode_shard(data)
    # then
    assert decoded.count == 3


# ------------------------------------------------------------------------------------ validation


def _with(shard: Shard, **changes: Any) -> Shard:
    fields = {
        "model_id": shard.model_id,
        "template_ids": shard.template_ids,
        "person_ids": shard.person_ids,
        "vectors": shard.vectors,
        "deleted_people": shard.deleted_people,
    }
    return Shard(**{**fields, **changes})


INVALID: list[tuple[str, Callable[[Shard], Shard], str]] = [
    ("float64 vectors", lambda s: _with(s, vectors=s.vectors.astype(np.float64)), "2-D float32"),
    ("1-D vectors", lambda s: _with(s, vectors=s.vectors.reshape(-1)), "2-D float32"),
    ("rows != ids", lambda s: _with(s, vectors=s.vectors[:2]), "2 rows but there are 3 template ids"),
    ("not normalised", lambda s: _with(s, vectors=s.vectors * 2), "L2 norm 2.0.*divide each row"),
    (
        "nan vector",
        lambda s: _with(s, vectors=np.where(np.eye(3, 8) > 0, np.nan, s.vectors).astype(np.float32)),
        "NaN",
    ),
    ("duplicate ids", lambda s: _with(s, template_ids=np.array(["a", "b", "a"])), "'a' more than once"),
    ("empty id", lambda s: _with(s, template_ids=np.array(["a", "", "c"])), r"template_ids\[1\] is empty"),
    ("list ids", lambda s: _with(s, template_ids=["a", "b", "c"]), "1-D numpy unicode array"),
    (
        "object ids",
        lambda s: _with(s, person_ids=np.array(["a", "b", "c"], dtype=object)),
        "numpy unicode array",
    ),
    ("bytes ids", lambda s: _with(s, person_ids=np.array([b"a", b"b", b"c"])), "numpy unicode array"),
    ("short people", lambda s: _with(s, person_ids=np.array(["a", "b"])), r"expected \(3,\)"),
    ("no model", lambda s: _with(s, model_id=""), "model_id must be a non-empty string"),
    ("list tombstones", lambda s: _with(s, deleted_people=["p"]), "tuple of non-empty person id"),
]


@pytest.mark.parametrize(("spoil", "message"), [c[1:] for c in INVALID], ids=[c[0] for c in INVALID])
def test_encode_shard_refuses_malformed_shards_with_what_to_fix(make_shard, spoil, message) -> None:
    # given
    shard = spoil(make_shard(3, 8))
    # when / then
    with pytest.raises(ValueError, match=message):
        encode_shard(shard)


def test_encode_shard_accepts_norms_within_tolerance(make_shard) -> None:
    # given: float16-ish rounding noise on unit vectors
    shard = make_shard(3, 8)
    noisy = _with(shard, vectors=(shard.vectors * np.float32(1.0005)).astype(np.float32))
    # when
    decoded = decode_shard(encode_shard(noisy))
    # then
    assert np.array_equal(decoded.vectors, noisy.vectors)


# ---------------------------------------------------------------------------------------- merge


def test_merge_shards_tombstone_deletes_only_earlier_templates(make_shard) -> None:
    # given: p-0 enrolled, deleted, then enrolled again
    first = make_shard(2, 8, seed=1, ids=["t1", "t2"], people=["p-0", "p-1"])
    delete = Shard.tombstone(MODEL, ("p-0",))
    again = make_shard(1, 8, seed=2, ids=["t3"], people=["p-0"])
    # when
    merged = merge_shards([first, delete, again])
    # then
    assert merged.template_ids.tolist() == ["t2", "t3"]
    assert merged.person_ids.tolist() == ["p-1", "p-0"]
    assert np.array_equal(merged.vectors, np.vstack([first.vectors[1:], again.vectors]))
    assert merged.deleted_people == ()


def test_merge_shards_keeps_the_last_template_of_a_repeated_id(make_shard) -> None:
    # given
    old = make_shard(2, 8, seed=1, ids=["t1", "t2"], people=["p-0", "p-0"])
    new = make_shard(1, 8, seed=2, ids=["t1"], people=["p-0"])
    # when
    merged = merge_shards([old, new])
    # then
    assert merged.template_ids.tolist() == ["t2", "t1"]
    assert np.array_equal(merged.vectors[1], new.vectors[0])


def test_merge_shards_of_everything_deleted_is_empty(make_shard) -> None:
    # given
    shards = [make_shard(2, 8, people=["p-0", "p-0"]), Shard.tombstone(MODEL, ("p-0",))]
    # when
    merged = merge_shards(shards)
    # then
    assert merged.count == 0
    assert merged.vectors.shape == (0, 8)


def test_merge_shards_refuses_mixed_models(make_shard) -> None:
    # given
    shards = [make_shard(1, 8), make_shard(1, 8, seed=3, model_id="arcface-r100")]
    # when / then
    with pytest.raises(ValueError, match="arcface-r100"):
        merge_shards(shards)
