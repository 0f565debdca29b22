"""Synthetic galleries for storage and search benchmarks (random unit vectors, no faces).

``put_synthetic`` uploads one base object of ``n`` templates. Run as a module against whatever S3
``AWS_ENDPOINT_URL`` points at to time cold loads and a revalidated (304) load::

    python -m eventface.bench.synthetic BUCKET GALLERY_ID --n 1000000 [--part-mb 0] [--create-bucket]

The last line of stdout is one JSON object. :func:`measure_load_1m` does the same against a moto
server that it starts in its own process, as the local stack runs it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from eventface import aws
from eventface.adapters.gallery_cache import apply_shard
from eventface.adapters.s3_gallery import S3GalleryStore
from face_engine.index import GalleryIndex
from face_engine.shard import Shard

#: Rows generated per block, so that the float64-free generation never holds two full copies.
_BLOCK_ROWS = 131_072


def synthetic_shard(n: int, model_id: str, seed: int, dim: int = 128) -> Shard:
    """``n`` templates of i.i.d. Gaussian vectors, L2-normalised (uniform on the sphere).

    Template ids are ``t0000000``, ``t0000001``, ...; every template is its own person
    (``p0000000``, ...). The same ``seed`` gives the same vectors.
    """
    if n < 0 or dim < 1:
        raise ValueError("n must be >= 0 and dim >= 1")
    rng = np.random.default_rng(seed)
    vectors = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, _BLOCK_ROWS):
        block = rng.standard_normal((min(_BLOCK_ROWS, n - start), dim), dtype=np.float32)
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        vectors[start : start + block.shape[0]] = block
    width = max(7, len(str(max(n - 1, 0))))
    numbers = np.char.zfill(np.arange(n).astype(str), width)
    return Shard(
        model_id=model_id,
        template_ids=np.char.add("t", numbers),
        person_ids=np.char.add("p", numbers),
        vectors=vectors,
    )


def put_synthetic(store: S3GalleryStore, gallery_id: str, n: int, model_id: str, seed: int) -> None:
    """Upload a new gallery of ``n`` random 128-d templates as one base object.

    Raises
    ------
    ValueError
        If the gallery already exists (use a fresh id so that runs do not pile up).
    """
    if store.manifest(gallery_id) is not None:
        raise ValueError(f"gallery {gallery_id!r} already exists; use a new gallery id")
    store.append(gallery_id, synthetic_shard(n, model_id, seed), kind="base")


def main(argv: Sequence[str] | None = None) -> int:
    """Upload a synthetic gallery, then time a cold load and a revalidated (304) load."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("bucket")
    parser.add_argument("gallery_id")
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--model-id", default="sface-2021dec")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--part-mb", type=float, default=16.0, help="byte-range size; 0 = whole-object GETs")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--create-bucket", action="store_true")
    args = parser.parse_args(argv)
    if args.create_bucket:
        aws.client("s3").create_bucket(Bucket=args.bucket)

    part_bytes = int(args.part_mb * 1024 * 1024) or None
    store = S3GalleryStore(args.bucket, part_bytes=part_bytes)
    started = time.perf_counter()
    put_synthetic(store, args.gallery_id, args.n, args.model_id, args.seed)
    put_seconds = time.perf_counter() - started
    cold: list[float] = []
    download: list[float] = []
    for _ in range(args.repeats):
        started = time.perf_counter()
        snapshot = store.load(args.gallery_id)
        download.append(time.perf_counter() - started)
        # "Loaded" means searchable: the in-memory index is built from the snapshot too.
        index = GalleryIndex(snapshot.manifest.model_id)
        for shard in snapshot.shards:
            apply_shard(index, shard)
        cold.append(time.perf_counter() - started)
        del index
    started = time.perf_counter()
    again = store.load(args.gallery_id, snapshot)
    revalidate = time.perf_counter() - started
    result = {
        "n": args.n,
        "bytes": sum(o.size for o in snapshot.manifest.objects),
        "part_bytes": part_bytes,
        "put_s": round(put_seconds, 3),
        "cold_load_s": [round(t, 3) for t in cold],
        "download_s": [round(t, 3) for t in download],
        "revalidate_ms": round(revalidate * 1000, 2),
        "revalidate_reused": again is snapshot,
    }
    print(f"load of {args.n} templates: median {sorted(cold)[len(cold) // 2]:.3f} s")
    print(json.dumps(result))
    return 0


def measure_load_1m(n: int = 1_000_000, *, part_mb: float = 0.0, repeats: int = 3) -> float:
    """Median seconds to load a synthetic ``n``-template gallery (one base object) from moto
    into a searchable in-memory index (download, sha256, decode, quantise).

    Starts ``moto.server`` on a free loopback port in its own process, then uploads and loads in a
    child process whose environment points botocore at it (``AWS_ENDPOINT_URL``), as the local
    stack does. ``part_mb=0`` fetches the object with one GET: moto re-reads the whole object for
    every range request, so byte ranges (right for S3) cost parts x size there.
    """
    with tempfile.TemporaryDirectory(prefix="eventface-moto-") as scratch:
        log_path = Path(scratch) / "moto.log"
        with log_path.open("wb") as log:
            server = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", "0"],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            endpoint = _wait_for_endpoint(log_path, server)
            env = {
                **os.environ,
                "AWS_ENDPOINT_URL": endpoint,
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_DEFAULT_REGION": "us-east-1",
                "AWS_MAX_ATTEMPTS": "1",
            }
            command = [
                sys.executable,
                "-m",
                "eventface.bench.synthetic",
                f"bench-{uuid.uuid4().hex[:12]}",
                "synthetic-1m",
                "--n",
                str(n),
                "--part-mb",
                str(part_mb),
                "--repeats",
                str(repeats),
                "--create-bucket",
            ]
            done = subprocess.run(command, env=env, stdout=subprocess.PIPE, text=True, check=True)
        finally:
            server.terminate()
            server.wait(timeout=30)
    cold = sorted(json.loads(done.stdout.strip().splitlines()[-1])["cold_load_s"])
    return float(cold[len(cold) // 2])


def _wait_for_endpoint(log_path: Path, server: subprocess.Popen[bytes], timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = re.search(rb"Running on (http://127\.0\.0\.1:\d+)", log_path.read_bytes())
        if found:
            return found.group(1).decode()
        if server.poll() is not None:
            raise RuntimeError(f"moto server exited early: {log_path.read_text(errors='replace')}")
        time.sleep(0.05)
    raise RuntimeError(f"moto server did not start within {timeout} s")


if __name__ == "__main__":
    raise SystemExit(main())
