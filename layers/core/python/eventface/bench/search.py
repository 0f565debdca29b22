"""``eventface bench search``: the gallery index against numpy and faiss, and the memory-bandwidth floor.

Synthetic gallery: N unit vectors (i.i.d. Gaussian, normalised), one template per person. Queries:
32 mated probes (noisy copies of gallery rows, cosine 0.4-0.8 to their source) and 32 non-mated
random unit vectors. Every method runs in the same process, so their ratios are comparable; each
thread setting runs in its own worker process (BLAS and OpenMP size their pools once).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from face_engine.index import EXACT_FLOOR, GalleryIndex

DIM = 128
QUERIES = 32
BATCH = 32
K = 5


def synthetic_gallery(n: int, seed: int = 7) -> np.ndarray:
    """(n, 128) float32 unit vectors, generated in chunks to bound the peak memory."""
    rng = np.random.default_rng(seed)
    out = np.empty((n, DIM), dtype=np.float32)
    for start in range(0, n, 1 << 18):
        chunk = rng.standard_normal((min(1 << 18, n - start), DIM), dtype=np.float32)
        out[start : start + len(chunk)] = chunk / np.linalg.norm(chunk, axis=1, keepdims=True)
    return out


def queries(gallery: np.ndarray, seed: int = 11) -> np.ndarray:
    """32 mated probes (target cosine 0.4-0.8 to a gallery row), then 32 random ones."""
    rng = np.random.default_rng(seed)
    sources = gallery[rng.integers(0, len(gallery), QUERIES)]
    target = rng.uniform(0.4, 0.8, QUERIES).astype(np.float32)
    noise = rng.standard_normal((QUERIES, DIM), dtype=np.float32)
    noise -= (noise * sources).sum(axis=1, keepdims=True) * sources
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    mated = target[:, None] * sources + np.sqrt(1 - target[:, None] ** 2) * noise
    random = rng.standard_normal((QUERIES, DIM), dtype=np.float32)
    random /= np.linalg.norm(random, axis=1, keepdims=True)
    return np.ascontiguousarray(np.vstack([mated, random]), dtype=np.float32)


def timed_ms(run: Callable[[], object], repeats: int, budget_s: float = 3.0) -> float:
    """Median wall time of ``run`` in ms after one warm-up, within a time budget."""
    run()
    samples: list[float] = []
    deadline = time.perf_counter() + budget_s
    while len(samples) < repeats and (len(samples) < 3 or time.perf_counter() < deadline):
        start = time.perf_counter()
        run()
        samples.append((time.perf_counter() - start) * 1000.0)
    return float(np.median(samples))


def per_query_ms(search: Callable[[np.ndarray], object], probes: np.ndarray) -> float:
    """Median over probes of each probe's median single-query time."""
    return round(float(np.median([timed_ms(partial(search, q), 3, 0.5) for q in probes])), 2)


def _faiss_search(index: Any, q: np.ndarray) -> object:
    return index.search(q[None, :], K)


def bandwidth_gbs(size_mb: int = 1024) -> float:
    """Read bandwidth: the median of summing a large int64 array (bytes / second, in GB/s)."""
    data = np.ones(size_mb * (1 << 20) // 8, dtype=np.int64)
    ms = timed_ms(lambda: np.add.reduce(data), 7)
    return data.nbytes / (ms / 1000.0) / 1e9


def exact_topk(gallery_t: np.ndarray, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """numpy float32 brute force on a dimension-major gallery: matmul + argpartition."""
    scores = q @ gallery_t
    top = np.argpartition(-scores, k)[:k]
    order = top[np.argsort(-scores[top])]
    return order, scores[order]


def run_worker(n: int, threads: int) -> dict[str, Any]:
    """All methods on one gallery in this process, with ``threads`` threads each."""
    gallery = synthetic_gallery(n)
    probes = queries(gallery)
    result: dict[str, Any] = {"n": n, "threads": threads}

    # The float32 re-rank rows are memory-mapped from local disk (as on Lambda's /tmp), so the
    # index's RAM is the 136 bytes per template it reports.
    spill = tempfile.TemporaryDirectory(prefix="eventface-rerank-")
    index = GalleryIndex("synthetic", threads=threads, spill_dir=Path(spill.name))
    started = time.perf_counter()
    for start in range(0, n, 1 << 18):
        chunk = gallery[start : start + (1 << 18)]
        index.add([str(i) for i in range(start, start + len(chunk))], chunk)
    result["index_build_s"] = round(time.perf_counter() - started, 2)
    result["bytes_per_template"] = index.ram_bytes_per_template

    def ours(q: np.ndarray) -> object:
        return index.search(q, K)

    result["ms_p50_single"] = per_query_ms(ours, probes)
    result["ms_p50_single_mated"] = per_query_ms(ours, probes[:QUERIES])
    result["ms_p50_single_nonmated"] = per_query_ms(ours, probes[QUERIES:])
    batch_ms = timed_ms(lambda: index.search_batch(probes[:BATCH], K), 5)
    result["ms_p50_batch32_per_query"] = round(batch_ms / BATCH, 2)

    # exactness against float32 brute force: every returned person and score above the floor
    gallery_t = np.ascontiguousarray(gallery.T)
    mismatches = top1 = 0
    for q in probes:
        ids, scores = exact_topk(gallery_t, q, K)
        hits = index.search(q, K).hits
        top1 += int(hits[0].person_id == str(ids[0]))
        for want_id, want_score, hit in zip(ids.tolist(), scores.tolist(), hits, strict=False):
            if want_score >= EXACT_FLOOR and (
                hit.person_id != str(want_id) or abs(hit.score - want_score) > 1e-5
            ):
                mismatches += 1
    result["recall_at_1"] = top1 / len(probes)
    result["mismatches_above_floor"] = mismatches

    result["numpy_f32_ms_p50_single"] = per_query_ms(partial(exact_topk, gallery_t, k=K), probes[:8])
    del gallery_t
    result["numpy_f32_rowmajor_ms_p50_single"] = per_query_ms(
        partial(exact_topk_rows, gallery, k=K), probes[:8]
    )

    try:
        import faiss
    except ImportError:
        result["faiss"] = "not installed: pip install -e '.[bench]'"
    else:
        faiss.omp_set_num_threads(threads)
        for name, make in (
            ("faiss_flat", lambda: faiss.IndexFlatIP(DIM)),
            ("faiss_sqfp16", lambda: faiss.IndexScalarQuantizer(DIM, faiss.ScalarQuantizer.QT_fp16, 0)),
            ("faiss_sq8", lambda: faiss.IndexScalarQuantizer(DIM, faiss.ScalarQuantizer.QT_8bit, 0)),
        ):
            built = make()
            if not built.is_trained:
                built.train(gallery[: min(n, 100_000)])
            built.add(gallery)
            result[f"{name}_ms_p50_single"] = per_query_ms(partial(_faiss_search, built), probes[:16])
            batch = probes[:BATCH]
            result[f"{name}_ms_p50_batch32_per_query"] = round(
                timed_ms(partial(built.search, batch, K), 3) / BATCH, 2
            )
            del built

    bandwidth = bandwidth_gbs()
    result["bandwidth_gbs"] = round(bandwidth, 1)
    result["floor_ms_single"] = round(index.ram_bytes_per_template * n / (bandwidth * 1e9) * 1000.0, 2)
    spill.cleanup()
    return result


def exact_topk_rows(gallery: np.ndarray, q: np.ndarray, k: int) -> np.ndarray:
    """numpy float32 brute force as usually written: row-major ``G @ q`` + argpartition."""
    scores = gallery @ q
    return np.argpartition(-scores, k)[:k]


def _spawn(n: int, threads: int) -> dict[str, Any]:
    env = dict(os.environ)
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[name] = str(threads)
    done = subprocess.run(
        [sys.executable, "-m", "eventface.bench.search", "--worker", str(n), str(threads)],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"search worker for n={n}, threads={threads} failed (exit {done.returncode})")
    last: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return last


ROWS = (
    ("ours (int8 + exact re-rank)", "ms_p50_single", "ms_p50_batch32_per_query"),
    ("numpy f32 dim-major", "numpy_f32_ms_p50_single", None),
    ("numpy f32 row-major", "numpy_f32_rowmajor_ms_p50_single", None),
    ("faiss IndexFlatIP", "faiss_flat_ms_p50_single", "faiss_flat_ms_p50_batch32_per_query"),
    ("faiss SQfp16", "faiss_sqfp16_ms_p50_single", "faiss_sqfp16_ms_p50_batch32_per_query"),
    ("faiss SQ8", "faiss_sq8_ms_p50_single", "faiss_sq8_ms_p50_batch32_per_query"),
    ("bandwidth floor (our bytes)", "floor_ms_single", None),
)


def main(args: argparse.Namespace) -> int:
    threads_all = os.cpu_count() or 1
    runs = {threads: _spawn(args.n, threads) for threads in sorted({1, threads_all})}
    print(f"gallery n={args.n:,}, d={DIM}, k={K}; median ms per query; batch = {BATCH} queries per call")
    header = "".join(f"{f'{t}T single':>12}{f'{t}T batch':>12}" for t in runs)
    print(f"{'method':32}{header}")
    for label, single_key, batch_key in ROWS:
        cells = ""
        for run in runs.values():
            single = run.get(single_key, "-")
            batch = run.get(batch_key, "-") if batch_key else "-"
            cells += f"{single!s:>12}{batch!s:>12}"
        print(f"{label:32}{cells}")
    one = runs[1]
    print(
        f"recall@1 {one['recall_at_1']:.3f}; "
        f"mismatches above {EXACT_FLOOR}: {one['mismatches_above_floor']}; "
        f"{one['bytes_per_template']} B/template in RAM; bandwidth {one['bandwidth_gbs']} GB/s"
    )
    summary: dict[str, Any] = {
        "n": args.n,
        "ms_p50_single": one["ms_p50_single"],
        "ms_p50_batch32_per_query": one["ms_p50_batch32_per_query"],
        "faiss_flat_ms_p50_single": one.get("faiss_flat_ms_p50_single"),
        "numpy_f32_ms_p50_single": one["numpy_f32_ms_p50_single"],
        "floor_ms_single": one["floor_ms_single"],
        "recall_at_1": one["recall_at_1"],
        "bytes_per_template": one["bytes_per_template"],
        "load_1m_s": None,
        "threads": runs,
    }
    if one.get("faiss_flat_ms_p50_single"):
        summary["ratio_vs_faiss_flat"] = round(one["ms_p50_single"] / one["faiss_flat_ms_p50_single"], 3)
    summary["ratio_vs_floor"] = round(one["ms_p50_single"] / one["floor_ms_single"], 3)
    if args.load:
        from eventface.bench.synthetic import measure_load_1m

        summary["load_1m_s"] = round(measure_load_1m(), 2)
        print(f"load 1M templates from S3 (moto server): {summary['load_1m_s']} s")
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--worker":
        print(json.dumps(run_worker(int(sys.argv[2]), int(sys.argv[3]))))
