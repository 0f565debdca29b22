"""In-memory gallery index: exact top-k cosine search over people, int8 first stage, exact re-rank.

Layout
------
Templates live in blocks of at most ``block_size`` columns. Per template the index keeps, in RAM:

* 128 int8 codes, stored dimension-major (``codes[block]`` is ``(d, capacity)``) so that one query
  is a single (1 x d) @ (d x n) integer product: onnxruntime's MatMulInteger runs it at memory
  speed (5.6 ms for 1M templates on one core here, where a float32 scan needs 30 ms or more);
* ``128 * sum(codes)`` (int32, see below) and its quantisation scale (float32): 136 bytes in all.

The float32 templates and each template's person index are kept beside it for the exact re-rank
(in RAM, or in a memory-mapped file when a directory is given, so that they cost disk, not RAM).

Exactness
---------
A query ``q`` is quantised to uint8 as ``q_s + 128`` with ``q_s = round(q / s_q)``; the product
with a template's codes ``c`` is ``(q_s + 128) . c = q_s . c + 128 * sum(c)``, so subtracting
the stored ``128 * sum(c)`` leaves ``q_s . c`` exactly (integers). (A zero point on the query
would do the same inside MatMulInteger, but onnxruntime then leaves its fast one-row kernel and the
scan is 4x slower.) The approximate similarity
``a = s_q * s_x * q_s . c`` differs from the true cosine by at most
``eps = e_x + e_q * (1 + e_x)``, where ``e_x`` is the largest template quantisation error
``|x - s_x c|`` in the index and ``e_q = |q - s_q q_s|``. Each block returns its K best
approximate scores; the candidates are re-scored exactly in float32 and grouped by person. A
template that was not a candidate has a true score at most (its block's K-th approximate score +
eps); when that bound is below both the k-th best person's exact score and ``exact_floor``, no
outsider can change the answer, so the result equals float32 brute force. Otherwise K grows for
the blocks that need it and the search repeats.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, overload

import numpy as np

from face_engine.errors import ModelMismatchError
from face_engine.open_set import DEFAULT_FMR_PER_SCAN, OpenSetThreshold, decide_threshold

#: Similarities at or above this are always returned exactly (far below any match threshold).
EXACT_FLOOR = 0.2
_FIRST_K = 256
_MIN_CAPACITY = 1024
_CHUNK = 16384


@dataclass(frozen=True, slots=True)
class Hit:
    """One person in a search result: their best template's exact cosine similarity."""

    person_id: str
    score: float
    template: int


@dataclass(frozen=True, slots=True)
class SearchResult:
    """Top people for one query; scores at or above ``exact_above`` equal float32 brute force."""

    hits: tuple[Hit, ...]
    exact_above: float
    candidates: int


@dataclass(frozen=True, slots=True)
class Identification:
    """An open-set answer: the best person if they clear the threshold, and which threshold it was."""

    match: Hit | None
    result: SearchResult
    threshold: OpenSetThreshold


def _search_graph(dim: int) -> bytes:
    """ONNX graph: approx = (MatMulInteger(q_u8, codes) - offsets) * scales, then TopK."""
    from onnx import TensorProto, helper

    value = helper.make_tensor_value_info
    nodes = [
        helper.make_node("MatMulInteger", ["q", "codes"], ["acc"]),
        helper.make_node("Sub", ["acc", "offsets"], ["dot"]),
        helper.make_node("Cast", ["dot"], ["dotf"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["dotf", "scales"], ["approx"]),
        helper.make_node("TopK", ["approx", "k"], ["values", "indices"], axis=-1, largest=1, sorted=1),
    ]
    graph = helper.make_graph(
        nodes,
        "gallery_scan",
        [
            value("q", TensorProto.UINT8, ["m", dim]),
            value("codes", TensorProto.INT8, [dim, "n"]),
            value("offsets", TensorProto.INT32, ["n"]),
            value("scales", TensorProto.FLOAT, ["n"]),
            value("k", TensorProto.INT64, [1]),
        ],
        [value("values", TensorProto.FLOAT, ["m", "kk"]), value("indices", TensorProto.INT64, ["m", "kk"])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    model.ir_version = 10
    return bytes(model.SerializeToString())


@overload
def quantise(
    vectors: np.ndarray, *, with_norms: Literal[False] = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]: ...


@overload
def quantise(
    vectors: np.ndarray, *, with_norms: Literal[True]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]: ...


def quantise(vectors: np.ndarray, *, with_norms: bool = False) -> tuple[np.ndarray, ...]:
    """Per-row symmetric int8 codes: (codes, scales, 128 * code sums, exact error norms[, norms])."""
    x = np.asarray(vectors, dtype=np.float32)
    codes = np.empty(x.shape, dtype=np.int8)
    scales = np.empty(len(x), dtype=np.float32)
    errors = np.empty(len(x), dtype=np.float32)
    norms = np.empty(len(x), dtype=np.float32)
    # Chunks that stay in cache: whole-array temporaries of a 1M gallery cost 8x more in page faults.
    for start in range(0, len(x), _CHUNK):
        part = x[start : start + _CHUNK]
        peak = np.abs(part).max(axis=1)
        if not np.isfinite(peak).all():
            raise ValueError("templates contain NaN or infinity: re-embed the face")
        scale = np.where(peak > 0, peak / 127.0, 1.0).astype(np.float32)
        code = np.clip(np.rint(part / scale[:, None]), -127, 127)
        codes[start : start + _CHUNK] = code
        scales[start : start + _CHUNK] = scale
        residual = part - code * scale[:, None]
        errors[start : start + _CHUNK] = np.sqrt(np.einsum("ij,ij->i", residual, residual))
        norms[start : start + _CHUNK] = np.sqrt(np.einsum("ij,ij->i", part, part))
    offsets = 128 * codes.sum(axis=1, dtype=np.int32)
    if with_norms:
        return codes, scales, offsets, errors, norms
    return codes, scales, offsets, errors


class _Block:
    """One contiguous dimension-major block of codes with its per-template scalars."""

    def __init__(self, dim: int, capacity: int) -> None:
        self.codes = np.zeros((dim, capacity), dtype=np.int8)
        self.offsets = np.zeros(capacity, dtype=np.int32)
        self.scales = np.zeros(capacity, dtype=np.float32)
        self.size = 0

    @property
    def capacity(self) -> int:
        return int(self.scales.shape[0])

    def grow(self, capacity: int) -> None:
        codes = np.zeros((self.codes.shape[0], capacity), dtype=np.int8)
        codes[:, : self.size] = self.codes[:, : self.size]
        offsets = np.zeros(capacity, dtype=np.int32)
        offsets[: self.size] = self.offsets[: self.size]
        scales = np.zeros(capacity, dtype=np.float32)
        scales[: self.size] = self.scales[: self.size]
        self.codes, self.offsets, self.scales = codes, offsets, scales


class GalleryIndex:
    """Exact top-k search over people, several templates per person, tombstone deletion.

    Parameters
    ----------
    model_id
        Templates of one model only; queries of another model are refused.
    dim
        Embedding size.
    threads
        onnxruntime intra-op threads for the scan.
    block_size
        Templates per block (a block is scanned by one onnxruntime call).
    spill_dir
        Where to memory-map the float32 re-rank rows; None keeps them in RAM.
    """

    def __init__(
        self,
        model_id: str,
        *,
        dim: int = 128,
        threads: int = 1,
        block_size: int = 1 << 20,
        spill_dir: Path | None = None,
    ) -> None:
        if block_size < _MIN_CAPACITY:
            raise ValueError(f"block_size must be at least {_MIN_CAPACITY}, got {block_size}")
        self.model_id = model_id
        self.dim = dim
        self.block_size = block_size
        self._threads = threads
        self._spill_dir = Path(spill_dir) if spill_dir is not None else None
        self._spill_path: Path | None = None
        self._blocks: list[_Block] = []
        self._vectors = np.zeros((0, dim), dtype=np.float32)
        self._owner = np.zeros(0, dtype=np.int32)
        self._count = 0
        self._people: list[str] = []
        self._person_index: dict[str, int] = {}
        self._live_people: dict[int, int] = {}
        self._max_error = 0.0
        self._session: Any = None
        self._lock = threading.RLock()

    # -- size -----------------------------------------------------------------------------------
    def __len__(self) -> int:
        """Live templates (tombstoned ones excluded)."""
        return int(sum(self._live_people.values()))

    @property
    def people(self) -> int:
        return len(self._live_people)

    @property
    def ram_bytes_per_template(self) -> int:
        """RAM the scan structure holds per template: codes + offset + scale."""
        return self.dim + 4 + 4

    # -- writes ---------------------------------------------------------------------------------
    def add(self, person_ids: Sequence[str] | np.ndarray, vectors: np.ndarray) -> np.ndarray:
        """Add templates (rows of L2-normalised ``vectors``); returns their template numbers."""
        x = np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1, self.dim)
        if len(person_ids) != len(x):
            raise ValueError(f"{len(person_ids)} person ids for {len(x)} vectors: give one id per row")
        codes, scales, offsets, errors, norms = quantise(x, with_norms=True)
        if len(x) and np.abs(norms - 1.0).max() > 1e-3:
            raise ValueError("templates must be L2-normalised (unit length): normalise before adding")
        with self._lock:
            first = self._count
            owners = self._owners_of(person_ids)
            self._reserve(first + len(x))
            self._vectors[first : first + len(x)] = x
            self._owner[first : first + len(x)] = owners
            position = first
            while position < first + len(x):
                block_no, offset = divmod(position, self.block_size)
                if block_no == len(self._blocks):
                    self._blocks.append(_Block(self.dim, min(self.block_size, _MIN_CAPACITY)))
                block = self._blocks[block_no]
                take = min(self.block_size - offset, first + len(x) - position)
                if offset + take > block.capacity:
                    block.grow(min(self.block_size, max(2 * block.capacity, offset + take)))
                rows = slice(position - first, position - first + take)
                for start in range(0, take, _CHUNK):  # transpose in cache-sized pieces
                    part = codes[rows][start : start + _CHUNK]
                    block.codes[:, offset + start : offset + start + len(part)] = part.T
                block.offsets[offset : offset + take] = offsets[rows]
                block.scales[offset : offset + take] = scales[rows]
                block.size = offset + take
                position += take
            self._count = first + len(x)
            if len(errors):
                self._max_error = max(self._max_error, float(errors.max()))
            present, counts = np.unique(owners, return_counts=True)
            live = self._live_people
            for owner, count in zip(present.tolist(), counts.tolist(), strict=True):
                live[owner] = live.get(owner, 0) + count
            return np.arange(first, first + len(x))

    def delete_person(self, person_id: str) -> int:
        """Erase every template of a person; visible to the very next search. Returns the count.

        The rows are overwritten with zeros, not only hidden: the int8 codes, their offset and
        scale in RAM, and the float32 re-rank row (flushed to the spill file when there is one), so
        an erased face leaves no copy in this process's memory or on its disk.
        """
        with self._lock:
            owner = self._person_index.get(person_id)
            if owner is None or owner not in self._live_people:
                return 0
            rows = np.flatnonzero(self._owner[: self._count] == owner)
            for row in rows.tolist():
                block_no, offset = divmod(row, self.block_size)
                block = self._blocks[block_no]
                block.codes[:, offset] = 0
                block.offsets[offset] = 0
                block.scales[offset] = 0.0
            self._vectors[rows] = 0.0
            if isinstance(self._vectors, np.memmap):
                self._vectors.flush()
            self._owner[rows] = -1
            del self._live_people[owner]
            return len(rows)

    def close(self) -> None:
        """Remove the spill file (a replaced index calls this; searches still running on it keep
        their mapping until they finish). The index must not be used afterwards."""
        with self._lock:
            if self._spill_path is not None:
                self._spill_path.unlink(missing_ok=True)
                self._spill_path = None

    def _owners_of(self, person_ids: Sequence[str] | np.ndarray) -> np.ndarray:
        """Person numbers of ``person_ids``, registering new people (vectorised for bulk loads)."""
        names, inverse = np.unique(np.asarray(person_ids, dtype=str), return_inverse=True)
        known = self._person_index
        listed = names.tolist()
        fresh = [name for name in listed if name not in known]
        known.update(zip(fresh, range(len(self._people), len(self._people) + len(fresh)), strict=True))
        self._people.extend(fresh)
        numbers = np.fromiter((known[name] for name in listed), dtype=np.int32, count=len(listed))
        return numbers[inverse.reshape(-1)]

    def _reserve(self, needed: int) -> None:
        if needed <= len(self._owner):
            return
        capacity = max(needed, 2 * len(self._owner), _MIN_CAPACITY)
        if self._spill_dir is not None:
            self._spill_dir.mkdir(parents=True, exist_ok=True)
            path = self._spill_dir / f"rerank-{id(self)}-{capacity}.npy"
            vectors: np.ndarray = np.lib.format.open_memmap(
                path, mode="w+", dtype=np.float32, shape=(capacity, self.dim)
            )
            vectors[: self._count] = self._vectors[: self._count]
            if self._spill_path is not None:
                self._spill_path.unlink(missing_ok=True)  # the old mapping stays valid until freed
            self._spill_path = path
        else:
            vectors = np.zeros((capacity, self.dim), dtype=np.float32)
            vectors[: self._count] = self._vectors[: self._count]
        owner = np.full(capacity, -1, dtype=np.int32)
        owner[: self._count] = self._owner[: self._count]
        self._vectors, self._owner = vectors, owner

    # -- search ---------------------------------------------------------------------------------
    def _scan_session(self) -> Any:
        if self._session is None:
            import onnxruntime as ort

            options = ort.SessionOptions()
            options.intra_op_num_threads = max(1, self._threads)
            options.inter_op_num_threads = 1
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            self._session = ort.InferenceSession(
                _search_graph(self.dim), options, providers=["CPUExecutionProvider"]
            )
        return self._session

    def search(
        self, query: np.ndarray, k: int = 5, *, model_id: str | None = None, exact_floor: float = EXACT_FLOOR
    ) -> SearchResult:
        """Top ``k`` people for one L2-normalised query."""
        return self.search_batch(
            np.asarray(query).reshape(1, -1), k, model_id=model_id, exact_floor=exact_floor
        )[0]

    def search_batch(
        self,
        queries: np.ndarray,
        k: int = 5,
        *,
        model_id: str | None = None,
        exact_floor: float = EXACT_FLOOR,
    ) -> list[SearchResult]:
        """Top ``k`` people for each row of ``queries`` (one scan of the gallery for the batch)."""
        if model_id is not None and model_id != self.model_id:
            raise ModelMismatchError(
                f"this gallery holds {self.model_id} templates; a {model_id} query cannot be compared"
            )
        q = np.ascontiguousarray(queries, dtype=np.float32).reshape(-1, self.dim)
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        with self._lock:
            if not self._live_people:
                return [SearchResult((), -math.inf, 0) for _ in range(len(q))]
            peak = np.abs(q).max(axis=1)
            q_scale = np.where(peak > 0, peak / 127.0, 1.0).astype(np.float32)
            q_codes = np.clip(np.rint(q / q_scale[:, None]), -127, 127)
            q_error = np.linalg.norm(q - q_codes * q_scale[:, None], axis=1)
            q_u8 = (q_codes + 128).astype(np.uint8)
            eps = self._max_error + q_error * (1.0 + self._max_error) + 1e-5
            if len(q) == 1:
                return [
                    self._search_one(
                        query=q[0],
                        q_u8=q_u8,
                        q_scale=float(q_scale[0]),
                        eps=float(eps[0]),
                        k=k,
                        exact_floor=exact_floor,
                    )
                ]
            return self._search_many(q=q, q_u8=q_u8, q_scale=q_scale, eps=eps, k=k, exact_floor=exact_floor)

    def identify(
        self, query: np.ndarray, k: int = 5, *, fmr_per_scan: float = DEFAULT_FMR_PER_SCAN
    ) -> Identification:
        """Is this anyone we know? The best person, if their score clears the open-set threshold.

        The threshold depends on the model, the number of templates searched and the accepted rate
        of false matches per scan (see :mod:`face_engine.open_set`): a fixed threshold would let the
        best impostor through more and more often as the gallery grows.
        """
        result = self.search(query, k)
        threshold = decide_threshold(self.model_id, max(1, len(self)), fmr_per_scan)
        best = result.hits[0] if result.hits else None
        match = best if best is not None and best.score >= threshold.value else None
        return Identification(match=match, result=result, threshold=threshold)

    def _scan(self, q_u8: np.ndarray, block: _Block, k: int) -> tuple[np.ndarray, np.ndarray]:
        kk = min(k, block.capacity)
        values, indices = self._scan_session().run(
            None,
            {
                "q": q_u8,
                "codes": block.codes,
                "offsets": block.offsets,
                "scales": block.scales,
                "k": np.array([kk], dtype=np.int64),
            },
        )
        return np.asarray(values), np.asarray(indices)

    def _search_many(
        self,
        *,
        q: np.ndarray,
        q_u8: np.ndarray,
        q_scale: np.ndarray,
        eps: np.ndarray,
        k: int,
        exact_floor: float,
    ) -> list[SearchResult]:
        # One scan per block for the whole batch (the integer product is then compute-bound and
        # far cheaper per query); queries that need a deeper candidate list are finished alone.
        first_k = max(_FIRST_K, 4 * k)
        scans = [self._scan(q_u8, block, first_k) for block in self._blocks]
        results = []
        for i in range(len(q)):
            seeded = [(values[i : i + 1], indices[i : i + 1]) for values, indices in scans]
            results.append(
                self._search_one(
                    query=q[i],
                    q_u8=q_u8[i : i + 1],
                    q_scale=float(q_scale[i]),
                    eps=float(eps[i]),
                    k=k,
                    exact_floor=exact_floor,
                    seeded=seeded,
                )
            )
        return results

    def _search_one(
        self,
        *,
        query: np.ndarray,
        q_u8: np.ndarray,
        q_scale: float,
        eps: float,
        k: int,
        exact_floor: float,
        seeded: list[tuple[np.ndarray, np.ndarray]] | None = None,
    ) -> SearchResult:
        depth = [max(_FIRST_K, 4 * k)] * len(self._blocks)
        scans = seeded or [self._scan(q_u8, block, depth[b]) for b, block in enumerate(self._blocks)]
        while True:
            rows: list[np.ndarray] = []
            bounds: list[float] = []
            for b, (values, indices) in enumerate(scans):
                block = self._blocks[b]
                rows.append(indices[0] + b * self.block_size)
                exhausted = len(indices[0]) >= block.capacity
                bounds.append(-math.inf if exhausted else float(values[0, -1]) * q_scale + eps)
            candidates = np.unique(np.concatenate(rows))
            candidates = candidates[candidates < self._count]
            owners = self._owner[candidates]
            alive = owners >= 0
            candidates, owners = candidates[alive], owners[alive]
            scores = self._vectors[candidates] @ query
            hits = _best_per_person(owners, scores, candidates, k)
            kth = hits[-1][1] if len(hits) >= k else -math.inf
            cutoff = max(kth, exact_floor)
            deeper = [b for b, bound in enumerate(bounds) if bound >= cutoff]
            if not deeper:
                exact_above = max(bounds) if bounds else -math.inf
                return SearchResult(
                    tuple(Hit(self._people[o], float(s), int(t)) for o, s, t in hits),
                    exact_above,
                    len(candidates),
                )
            for b in deeper:
                depth[b] = min(self._blocks[b].capacity, depth[b] * 8)
                scans[b] = self._scan(q_u8, self._blocks[b], depth[b])


def _best_per_person(
    owners: np.ndarray, scores: np.ndarray, templates: np.ndarray, k: int
) -> list[tuple[int, float, int]]:
    """(person, best score, its template) for the ``k`` best people, best first."""
    order = np.argsort(-scores, kind="stable")
    seen: set[int] = set()
    best: list[tuple[int, float, int]] = []
    for i in order.tolist():
        owner = int(owners[i])
        if owner in seen:
            continue
        seen.add(owner)
        best.append((owner, float(scores[i]), int(templates[i])))
        if len(best) == k:
            break
    return best


def merge_results(results: Sequence[SearchResult], k: int) -> SearchResult:
    """Merge the results of disjoint partitions (scatter-gather): best score per person, top k.

    A person whose templates are spread over several partitions keeps their best score. The merged
    result is exact above the largest of the partitions' ``exact_above`` bounds.
    """
    best: dict[str, Hit] = {}
    for result in results:
        for hit in result.hits:
            if hit.person_id not in best or hit.score > best[hit.person_id].score:
                best[hit.person_id] = hit
    ranked = sorted(best.values(), key=lambda h: -h.score)[:k]
    return SearchResult(
        tuple(ranked),
        max((r.exact_above for r in results), default=-math.inf),
        sum(r.candidates for r in results),
    )


class PartitionedSearcher:
    """Scatter a query over several indexes (shard groups) in parallel and gather the top k.

    Each partition is anything with ``search(query, k)``: a local :class:`GalleryIndex` today, a
    remote function invocation tomorrow. ``executor`` runs them concurrently (threads suffice:
    onnxruntime releases the GIL during the scan).
    """

    def __init__(self, partitions: Sequence[Any], executor: Executor) -> None:
        self._partitions = list(partitions)
        self._executor = executor

    def search(self, query: np.ndarray, k: int = 5) -> SearchResult:
        futures = [self._executor.submit(p.search, query, k) for p in self._partitions]
        return merge_results([f.result() for f in futures], k)
