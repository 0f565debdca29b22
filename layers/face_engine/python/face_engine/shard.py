"""The gallery's shard: a versioned binary container of templates (ids + embeddings) and tombstones.

A gallery is stored as a list of shards (see ``eventface.adapters.s3_gallery``). A shard holds ``n``
templates of one model — template id, person id and an L2-normalised float32 vector each — and the
people it deletes (tombstones). A delete is a shard with ``n = 0`` and ``deleted_people`` set.

Layout (version 1), byte by byte
--------------------------------
All integers are little-endian. Offsets in the header are relative to the start of the payload.

====================  =============  ==========================================================
offset                size (bytes)   content
====================  =============  ==========================================================
0                     8              magic ``b"EFSHARD\\0"``
8                     4              ``H``: length of the header, unsigned 32-bit integer
12                    ``H``          header: a UTF-8 JSON object, right-padded with ASCII spaces
                                     so that the payload starts at a multiple of 64 bytes
12 + H                rest           payload: the three arrays as raw little-endian bytes, each
                                     starting at a multiple of 64 bytes, zero bytes in between
====================  =============  ==========================================================

Header keys::

    {"format_version": 1,
     "model_id": "sface-2021dec",
     "count": n, "dim": d, "dtype": "<f4",
     "deleted_people": ["p-17", ...],
     "payload_length": L,                 # bytes after the header, padding included
     "payload_sha256": "<64 hex digits>",  # sha256 of those L bytes
     "arrays": {"vectors":      {"dtype": "<f4",  "shape": [n, d], "offset": 0, "length": 4*n*d},
                "template_ids": {"dtype": "|S36", "shape": [n],    "offset": o, "length": 36*n},
                "person_ids":   {"dtype": "<U12", "shape": [n],    "offset": p, "length": 48*n}}}

Vectors are row-major ``(n, d)`` float32. Ids are fixed-width numpy strings: ``|S<k>`` (one byte
per character) when every id is ASCII, which is the usual case and 4x smaller, else ``<U<k>``
(UCS-4). Only these three dtype families are accepted when reading, so nothing in a file can make
the reader build an object array; pickle is never used (unpickling runs code).

Decoding is zero-copy for the vectors and for ``<U`` ids (``np.frombuffer`` on the bytes given),
and the arrays it returns are read-only: shards are immutable and shared between snapshots.
"""

from __future__ import annotations

import hashlib
import json
import re
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np

from face_engine.errors import ShardCorruptError

FORMAT_VERSION = 1
SUPPORTED_VERSIONS = (1,)
MAGIC = b"EFSHARD\0"
ALIGNMENT = 64
#: Unit-norm tolerance checked when a shard is written.
NORM_TOLERANCE = 1e-3
#: Upper bound on the JSON header; a larger length field means the file is not a shard.
MAX_HEADER_BYTES = 64 * 1024 * 1024

_PREFIX = struct.Struct("<8sI")
_VECTOR_DTYPE = np.dtype("<f4")
_ID_DTYPE = re.compile(r"^(\|S|<U)([1-9][0-9]{0,5})$")
_ARRAYS = ("vectors", "template_ids", "person_ids")


@dataclass(frozen=True, slots=True, eq=False)
class Shard:
    """Templates of one model plus the people this shard deletes.

    Attributes
    ----------
    model_id
        Id of the model that made every vector (templates of different models never mix).
    template_ids
        ``(n,)`` unicode array; unique within the gallery.
    person_ids
        ``(n,)`` unicode array: whose face each template is.
    vectors
        ``(n, d)`` float32, each row L2-normalised.
    deleted_people
        Tombstones: these people's templates in *earlier* shards of the gallery are deleted.
    """

    model_id: str
    template_ids: np.ndarray
    person_ids: np.ndarray
    vectors: np.ndarray
    deleted_people: tuple[str, ...] = ()

    @property
    def count(self) -> int:
        """Number of templates in the shard."""
        return int(self.vectors.shape[0])

    @property
    def dim(self) -> int:
        """Embedding dimension (0 for a tombstone-only shard built without vectors)."""
        return int(self.vectors.shape[1])

    @classmethod
    def tombstone(cls, model_id: str, people: tuple[str, ...], dim: int = 0) -> Shard:
        """A shard that only deletes ``people`` (no templates)."""
        return cls(
            model_id=model_id,
            template_ids=np.empty(0, dtype="<U1"),
            person_ids=np.empty(0, dtype="<U1"),
            vectors=np.empty((0, dim), dtype=np.float32),
            deleted_people=tuple(people),
        )


# --------------------------------------------------------------------------------------- encode


def _align(n: int) -> int:
    return -(-n // ALIGNMENT) * ALIGNMENT


def _check_ids(name: str, ids: Any, n: int) -> np.ndarray:
    if not isinstance(ids, np.ndarray) or ids.dtype.kind != "U":
        found = ids.dtype if isinstance(ids, np.ndarray) else type(ids).__name__
        raise ValueError(
            f"shard.{name} must be a numpy unicode array (e.g. np.asarray(ids, dtype=str)); got {found}"
        )
    if ids.shape != (n,):
        raise ValueError(f"shard.{name} has shape {ids.shape}; expected ({n},), one id per vector row")
    if n and bool((ids == "").any()):
        row = int(np.flatnonzero(ids == "")[0])
        raise ValueError(f"shard.{name}[{row}] is empty; every template needs a non-empty {name[:-1]}")
    return np.ascontiguousarray(ids)


def _id_bytes(ids: np.ndarray) -> tuple[str, bytes | memoryview]:
    """Fixed-width storage of ``ids``: ``|S<k>`` if all ASCII (4x smaller), else ``<U<k>``."""
    width = max(1, ids.dtype.itemsize // 4)
    codes = np.ascontiguousarray(ids, dtype=f"<U{width}").view(np.uint32).reshape(ids.shape[0], width)
    if codes.size == 0 or int(codes.max()) < 128:
        return f"|S{width}", codes.astype(np.uint8).tobytes()
    return f"<U{width}", codes.reshape(-1).view(np.uint8).data


def _validate_vectors(vectors: Any, n_hint: int) -> np.ndarray:
    if not isinstance(vectors, np.ndarray) or vectors.dtype != np.float32 or vectors.ndim != 2:
        found = (
            f"{vectors.dtype} array of shape {vectors.shape}"
            if isinstance(vectors, np.ndarray)
            else type(vectors).__name__
        )
        raise ValueError(
            f"shard.vectors must be a 2-D float32 array (n, d); got {found}. "
            "Use np.asarray(vectors, dtype=np.float32).reshape(n, d)"
        )
    if vectors.shape[0] != n_hint:
        raise ValueError(
            f"shard.vectors has {vectors.shape[0]} rows but there are {n_hint} template ids; "
            "give exactly one template id and one person id per row"
        )
    if vectors.shape[0] and vectors.shape[1] == 0:
        raise ValueError("shard.vectors has 0 columns; embeddings must have at least one dimension")
    contiguous: np.ndarray = np.ascontiguousarray(vectors, dtype=_VECTOR_DTYPE)
    if contiguous.shape[0]:
        bad = _non_finite_rows(contiguous)
        if bad.size:
            raise ValueError(
                f"shard.vectors row {int(bad[0])} contains NaN or infinity; "
                "re-compute that embedding (and check the model output) before storing it"
            )
        # float32 squared norms are exact to ~1e-7, far inside the tolerance (no float64 copy).
        norms = np.sqrt(np.einsum("ij,ij->i", contiguous, contiguous))
        off = np.abs(norms - 1.0)
        worst = int(np.argmax(off))
        if off[worst] > NORM_TOLERANCE:
            raise ValueError(
                f"shard.vectors row {worst} has L2 norm {norms[worst]:.6f}; every template must be "
                f"L2-normalised (|norm - 1| <= {NORM_TOLERANCE}): divide each row by its norm"
            )
    return contiguous


def _non_finite_rows(vectors: np.ndarray) -> np.ndarray:
    """Rows holding NaN or infinity, found with one memory-bound matrix-vector product.

    A row sum is non-finite whenever the row holds NaN or +-inf; an overflowing sum of huge but
    finite values is the only false alarm, so the flagged rows are confirmed exactly.
    """
    sums = vectors @ np.ones(vectors.shape[1], dtype=vectors.dtype)
    flagged: np.ndarray = np.flatnonzero(~np.isfinite(sums))
    if flagged.size:
        flagged = flagged[~np.isfinite(vectors[flagged]).all(axis=1)]
    return flagged


def encode_shard(shard: Shard) -> bytes:
    """Serialise ``shard`` to the version-1 byte layout described in the module docstring.

    Raises
    ------
    ValueError
        If the shard is not well formed (wrong dtypes or shapes, duplicate or empty template ids,
        non-finite or non-normalised vectors, no model id); the message says what to fix.
    """
    if not isinstance(shard.model_id, str) or not shard.model_id:
        raise ValueError("shard.model_id must be a non-empty string such as 'sface-2021dec'")
    if not isinstance(shard.template_ids, np.ndarray) or shard.template_ids.ndim != 1:
        raise ValueError("shard.template_ids must be a 1-D numpy unicode array, one id per vector row")
    n = int(shard.template_ids.shape[0])
    vectors = _validate_vectors(shard.vectors, n)
    template_ids = _check_ids("template_ids", shard.template_ids, n)
    person_ids = _check_ids("person_ids", shard.person_ids, n)
    if n > 1:
        as_list = template_ids.tolist()
        if len(set(as_list)) != n:
            seen: set[str] = set()
            for template_id in as_list:
                if template_id in seen:
                    raise ValueError(
                        f"shard.template_ids contains {template_id!r} more than once; "
                        "template ids must be unique within a shard"
                    )
                seen.add(template_id)
    deleted = shard.deleted_people
    if not isinstance(deleted, tuple) or not all(isinstance(p, str) and p for p in deleted):
        raise ValueError("shard.deleted_people must be a tuple of non-empty person id strings")

    blobs: list[tuple[str, str, list[int], bytes | memoryview]] = [
        (
            "vectors",
            _VECTOR_DTYPE.str,
            [n, int(vectors.shape[1])],
            vectors.reshape(-1).view(np.uint8).data,
        ),
    ]
    for name, ids in (("template_ids", template_ids), ("person_ids", person_ids)):
        dtype, raw = _id_bytes(ids)
        blobs.append((name, dtype, [n], raw))

    arrays: dict[str, dict[str, Any]] = {}
    parts: list[bytes | memoryview] = []
    offset = 0
    for name, dtype, shape, raw in blobs:
        start = _align(offset)
        if start > offset:
            parts.append(bytes(start - offset))
        arrays[name] = {"dtype": dtype, "shape": shape, "offset": start, "length": len(raw)}
        parts.append(raw)
        offset = start + len(raw)
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part)

    header = {
        "format_version": FORMAT_VERSION,
        "model_id": shard.model_id,
        "count": n,
        "dim": int(vectors.shape[1]),
        "dtype": _VECTOR_DTYPE.str,
        "deleted_people": list(deleted),
        "payload_length": offset,
        "payload_sha256": digest.hexdigest(),
        "arrays": arrays,
    }
    text = json.dumps(header, ensure_ascii=True, separators=(",", ":")).encode("ascii")
    header_length = _align(_PREFIX.size + len(text)) - _PREFIX.size
    text = text.ljust(header_length, b" ")
    return b"".join([_PREFIX.pack(MAGIC, header_length), text, *parts])


# --------------------------------------------------------------------------------------- decode


def _corrupt(message: str) -> ShardCorruptError:
    return ShardCorruptError(f"corrupt shard: {message}")


def _read_header(view: memoryview) -> tuple[dict[str, Any], int]:
    if len(view) < _PREFIX.size:
        raise _corrupt(
            f"truncated: {len(view)} bytes, fewer than the {_PREFIX.size}-byte prefix (magic + length)"
        )
    magic, header_length = _PREFIX.unpack_from(view, 0)
    if magic != MAGIC:
        raise _corrupt(f"bad magic {bytes(magic)!r}; expected {MAGIC!r} (is this an eventface shard?)")
    if header_length > MAX_HEADER_BYTES:
        raise _corrupt(f"header length {header_length} exceeds the {MAX_HEADER_BYTES}-byte limit")
    payload_start = _PREFIX.size + header_length
    if len(view) < payload_start:
        raise _corrupt(f"truncated: {len(view)} bytes, but the header alone ends at byte {payload_start}")
    try:
        header = json.loads(bytes(view[_PREFIX.size : payload_start]).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _corrupt(f"header is not valid UTF-8 JSON ({exc})") from exc
    if not isinstance(header, dict):
        raise _corrupt("header is not a JSON object")
    version = header.get("format_version")
    if version not in SUPPORTED_VERSIONS:
        raise _corrupt(
            f"unknown format version {version!r}; this reader supports version(s) "
            f"{', '.join(map(str, SUPPORTED_VERSIONS))} — upgrade face_engine to read newer shards"
        )
    return header, payload_start


def _field(header: dict[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    value = header.get(key)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise _corrupt(f"header field {key!r} is missing or has the wrong type ({value!r})")
    return value


def _array(payload: memoryview, arrays: dict[str, Any], name: str, shape: tuple[int, ...]) -> np.ndarray:
    spec = arrays.get(name)
    if not isinstance(spec, dict):
        raise _corrupt(f"header lacks the {name!r} array")
    raw_dtype, offset, length = spec.get("dtype"), spec.get("offset"), spec.get("length")
    if name == "vectors":
        if raw_dtype != _VECTOR_DTYPE.str:
            raise _corrupt(f"vectors have dtype {raw_dtype!r}; only {_VECTOR_DTYPE.str!r} is supported")
    elif not isinstance(raw_dtype, str) or not _ID_DTYPE.match(raw_dtype):
        raise _corrupt(f"{name} have dtype {raw_dtype!r}; only fixed-width '|S<k>' or '<U<k>' are allowed")
    dtype = np.dtype(raw_dtype)
    if list(spec.get("shape", ())) != list(shape):
        raise _corrupt(f"{name} shape {spec.get('shape')} disagrees with count/dim {list(shape)}")
    items = int(np.prod(shape))
    if not isinstance(offset, int) or not isinstance(length, int) or offset < 0:
        raise _corrupt(f"{name} has an invalid offset/length ({offset!r}, {length!r})")
    if length != items * dtype.itemsize:
        raise _corrupt(
            f"{name}: length {length} bytes does not hold {items} items of {dtype.itemsize} bytes "
            "(the header's count or dim is wrong)"
        )
    if offset + length > len(payload):
        raise _corrupt(
            f"truncated: {name} needs payload bytes {offset}..{offset + length} "
            f"but the payload has {len(payload)}"
        )
    array = np.frombuffer(payload, dtype=dtype, count=items, offset=offset).reshape(shape)
    if dtype.kind == "S":
        ascii_codes = array.view(np.uint8).reshape(items, dtype.itemsize)
        if ascii_codes.size and int(ascii_codes.max()) >= 128:
            raise _corrupt(f"{name} are stored as ASCII but contain non-ASCII bytes")
        # ASCII -> UCS-4 is a zero-extension of every byte: one vectorised cast.
        array = ascii_codes.astype(np.uint32).view(f"<U{dtype.itemsize}").reshape(shape)
    elif dtype.kind == "U" and items and int(array.view(np.uint32).max()) > 0x10FFFF:
        raise _corrupt(f"{name} contain invalid Unicode code points")
    array.flags.writeable = False
    return array


def decode_shard(data: bytes | bytearray | memoryview, *, verify_checksum: bool = True) -> Shard:
    """Parse and verify a shard written by :func:`encode_shard`.

    The vectors are a read-only, zero-copy view of ``data`` (keep ``data`` alive and unmodified).

    Parameters
    ----------
    data
        The shard's bytes.
    verify_checksum
        Check the payload's sha256 against the header (about 0.3 s per 500 MB). Pass False only
        when the caller has just verified a digest of *all* of ``data`` against an independent
        record, such as the gallery manifest's sha256: that check is strictly stronger. Every
        structural check (magic, version, lengths, counts, dtypes, finite vectors) always runs.

    Raises
    ------
    ShardCorruptError
        Bad magic, unknown format version, truncated bytes, payload checksum mismatch, header
        counts or dims that disagree with the arrays, or non-finite vectors.
    """
    view = memoryview(data)
    if view.ndim != 1 or view.format != "B":
        view = view.cast("B")
    header, payload_start = _read_header(view)
    model_id = _field(header, "model_id", str)
    n = _field(header, "count", int)
    d = _field(header, "dim", int)
    payload_length = _field(header, "payload_length", int)
    expected_sha = _field(header, "payload_sha256", str)
    deleted = _field(header, "deleted_people", list)
    arrays = _field(header, "arrays", dict)
    if n < 0 or d < 0 or (n > 0 and d == 0):
        raise _corrupt(f"impossible count/dim ({n}, {d})")
    if header.get("dtype") != _VECTOR_DTYPE.str:
        raise _corrupt(f"vector dtype {header.get('dtype')!r} is not supported; expected '<f4'")
    if not model_id or not all(isinstance(p, str) and p for p in deleted):
        raise _corrupt("model_id or deleted_people is malformed")

    available = len(view) - payload_start
    if available < payload_length:
        raise _corrupt(
            f"truncated: the header announces a {payload_length}-byte payload, only {available} bytes follow"
        )
    if available > payload_length:
        raise _corrupt(f"{available - payload_length} unexpected bytes after the payload")
    payload = view[payload_start:]
    if verify_checksum:
        actual_sha = hashlib.sha256(payload).hexdigest()
        if actual_sha != expected_sha:
            raise _corrupt(
                f"checksum mismatch: payload sha256 is {actual_sha}, header says {expected_sha} "
                "(the object was damaged in storage or transit; re-fetch it or restore it)"
            )

    vectors = _array(payload, arrays, "vectors", (n, d))
    template_ids = _array(payload, arrays, "template_ids", (n,))
    person_ids = _array(payload, arrays, "person_ids", (n,))
    if n:
        bad = _non_finite_rows(vectors)
        if bad.size:
            raise _corrupt(f"vector row {int(bad[0])} contains NaN or infinity")
    return Shard(
        model_id=model_id,
        template_ids=template_ids,
        person_ids=person_ids,
        vectors=vectors,
        deleted_people=tuple(deleted),
    )


# ---------------------------------------------------------------------------------------- merge


def merge_shards(shards: list[Shard] | tuple[Shard, ...], model_id: str | None = None) -> Shard:
    """Apply a gallery's shards in order and return the templates that are live at the end.

    Rules: a tombstone in shard ``i`` deletes its people's templates in shards *before* ``i``
    (a later re-registration stays); when a template id occurs more than once, the last one wins.
    The result has no tombstones; surviving rows keep gallery order (a template id that occurs
    several times takes the place of its last occurrence).

    Raises
    ------
    ValueError
        If the shards hold templates of different models, or vectors of different dimensions.
    """
    model = model_id if model_id is not None else (shards[0].model_id if shards else "")
    dims = {s.dim for s in shards if s.count}
    mismatched = sorted({s.model_id for s in shards} - {model})
    if mismatched:
        raise ValueError(f"cannot merge shards of models {mismatched} into a gallery of model {model!r}")
    if len(dims) > 1:
        raise ValueError(f"cannot merge shards of different dimensions {sorted(dims)}")
    dim = dims.pop() if dims else 0

    # People deleted by some shard after shard j, for every j (suffix unions of the tombstones).
    deleted_after: list[frozenset[str]] = [frozenset()] * len(shards)
    acc: frozenset[str] = frozenset()
    for j in range(len(shards) - 1, -1, -1):
        deleted_after[j] = acc
        acc = acc | frozenset(shards[j].deleted_people)

    keep_t: list[np.ndarray] = []
    keep_p: list[np.ndarray] = []
    keep_v: list[np.ndarray] = []
    for shard, dead in zip(shards, deleted_after, strict=True):
        if not shard.count:
            continue
        alive = ~np.isin(shard.person_ids, list(dead)) if dead else np.ones(shard.count, dtype=bool)
        keep_t.append(shard.template_ids[alive])
        keep_p.append(shard.person_ids[alive])
        keep_v.append(shard.vectors[alive])
    if not keep_t:
        return Shard.tombstone(model, (), dim)
    template_ids = np.concatenate(keep_t)
    person_ids = np.concatenate(keep_p)
    vectors = np.concatenate(keep_v) if len(keep_v) > 1 else np.array(keep_v[0])
    # Keep the last occurrence of every template id: unique over the reversed array gives the
    # first index from the end.
    _, last_from_end = np.unique(template_ids[::-1], return_index=True)
    if last_from_end.size != template_ids.size:
        rows = np.sort(template_ids.size - 1 - last_from_end)
        template_ids, person_ids, vectors = template_ids[rows], person_ids[rows], vectors[rows]
    return Shard(model, template_ids, person_ids, vectors)
