"""Latency of the probe path, stage by stage, against OpenCV's own YuNet + SFace pipeline.

``eventface bench latency`` builds two one-face JPEGs (640x480 and 1280x720) from a real photo and
times every stage of :meth:`FaceEngine.analyse` beside the path a user would otherwise write with
``cv2.FaceDetectorYN`` and ``cv2.FaceRecognizerSF`` on the same prepared model files. Each thread
setting runs in its own subprocess (``python -m eventface.bench.latency --worker``): onnxruntime and
OpenCV size their thread pools once per process. Cold start is measured in fresh processes.

The last line of stdout is one JSON object; the table above it is for people.
"""

from __future__ import annotations

import argparse
import base64
import gc
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from eventface.bench.dataset import GROUP, read_labels
from face_engine import models
from face_engine.alignment import align_face
from face_engine.decoding import decode_image
from face_engine.detection import pick_main_face, refine_landmarks
from face_engine.engine import EngineConfig, FaceEngine

#: (width, height) of the test photos; the first is the headline cell.
SIZES: tuple[tuple[int, int], ...] = ((640, 480), (1280, 720))
WARMUP_RUNS = 10
COLD_START_RUNS = 5
JPEG_QUALITY = 90
#: The face's box height as a share of the photo height: a kiosk or checkpoint framing.
FACE_FRACTION = 1.0 / 3.0
#: A source face is used only if the largest test photo enlarges it at most this much (sharpness).
MAX_ENLARGEMENT = 2.0
NEUTRAL_GREY = (128, 128, 128)
ENGINE_STAGES = ("decode", "detect", "refine", "align", "mask", "embed")
REFERENCE_STAGES = ("decode", "detect", "align", "embed")
PIPELINE = "pipeline"
#: Table order; refine and mask have no counterpart in OpenCV's pipeline.
STAGES = (*ENGINE_STAGES, PIPELINE)
STAGE_LABELS = {
    "decode": "decode",
    "detect": "detect + pick main face",
    "refine": "refine landmarks",
    "align": "align 112x112",
    "mask": "mask classifier",
    "embed": "embed 1 face",
    PIPELINE: "photo -> template (whole)",
}
#: Reference detector settings a user would copy from the OpenCV Zoo sample.
REF_SCORE_THRESHOLD = 0.6
REF_NMS_THRESHOLD = 0.3
REF_TOP_K = 5000

#: Run by ``python -c`` in a fresh process: nothing but the interpreter and ``site`` precedes ``start``.
_COLD_START_SCRIPT = """\
import time
start = time.perf_counter()
import numpy, cv2, onnxruntime, face_engine.engine
imported = time.perf_counter()
import json, sys
from pathlib import Path
from face_engine.engine import EngineConfig, FaceEngine
models_dir = Path(sys.argv[1]) if sys.argv[1] else None
FaceEngine(EngineConfig(models_dir=models_dir)).warm_up()
ready = time.perf_counter()
print(json.dumps({"imports_s": imported - start, "init_s": ready - start}))
"""

Timed = Callable[[], tuple[int, ...]]
Cell = dict[str, float | None]


def percentiles_ms(samples_ns: Sequence[int] | np.ndarray) -> tuple[float, float]:
    """(p50, p95) in milliseconds of durations given in nanoseconds (linear interpolation).

    Raises
    ------
    ValueError
        No samples.
    """
    values = np.asarray(samples_ns, dtype=np.float64)
    if values.size == 0:
        raise ValueError("percentiles_ms needs at least one sample")
    p50, p95 = np.percentile(values, [50.0, 95.0]) / 1e6
    return round(float(p50), 3), round(float(p95), 3)


def make_cell(engine_ns: Sequence[int] | np.ndarray, reference_ns: Sequence[int] | np.ndarray | None) -> Cell:
    """p50/p95 of the engine and, where OpenCV has the same stage, of the reference and their ratio."""
    e50, e95 = percentiles_ms(engine_ns)
    cell: Cell = {
        "engine_ms_p50": e50,
        "engine_ms_p95": e95,
        "reference_ms_p50": None,
        "reference_ms_p95": None,
        "ratio_p50": None,
    }
    if reference_ns is not None:
        r50, r95 = percentiles_ms(reference_ns)
        cell.update(reference_ms_p50=r50, reference_ms_p95=r95, ratio_p50=ratio(e50, r50))
    return cell


def ratio(numerator: float, denominator: float) -> float | None:
    """numerator / denominator rounded to 3 places; None when the denominator is not positive."""
    return round(numerator / denominator, 3) if denominator > 0 else None


def cell_key(size: str, threads: int, stage: str) -> str:
    """The key of one cell in the JSON ``cells`` dict, e.g. ``640x480/1t/detect``."""
    return f"{size}/{threads}t/{stage}"


def format_table(cells: Mapping[str, Cell], sizes: Sequence[str], threads: Sequence[int]) -> str:
    """The stage x size x threads table: engine and reference p50/p95 (ms) and engine/reference at p50."""

    def number(value: float | None, spec: str) -> str:
        return "-" if value is None else format(value, spec)

    header = (
        f"{'photo':<9} {'thr':>3}  {'stage':<26} {'engine p50':>10} {'p95':>8}"
        f" {'opencv p50':>10} {'p95':>8} {'eng/ocv':>8}"
    )
    lines = [header, "-" * len(header)]
    for size in sizes:
        for count in threads:
            for stage in STAGES:
                cell = cells.get(cell_key(size, count, stage))
                if cell is None:
                    continue
                lines.append(
                    f"{size:<9} {count:>3}  {STAGE_LABELS[stage]:<26}"
                    f" {number(cell['engine_ms_p50'], '.2f'):>10} {number(cell['engine_ms_p95'], '.2f'):>8}"
                    f" {number(cell['reference_ms_p50'], '.2f'):>10}"
                    f" {number(cell['reference_ms_p95'], '.2f'):>8}"
                    f" {number(cell['ratio_p50'], '.2f'):>8}"
                )
            lines.append("")
    return "\n".join(lines).rstrip("\n")


# --------------------------------------------------------------------------- test photos


def default_data_dir() -> Path:
    """``../shared/data/faces`` next to the repository (layers/core/python/eventface/bench/ is 5 deep)."""
    return Path(__file__).resolve().parents[5].parent / "shared" / "data" / "faces"


def resolve_data_dir(data: Path | None) -> Path:
    """The face folder to take the test photo from: ``--data`` or the shared default.

    Raises
    ------
    FileNotFoundError
        Neither is a folder with labels.csv.
    """
    if data is not None:
        return data
    fallback = default_data_dir()
    if (fallback / "labels.csv").is_file():
        return fallback
    raise FileNotFoundError(
        f"no face folder at {fallback}: pass --data with a folder holding labels.csv "
        "(file,identity,masked) and its images, e.g. --data ../shared/data/faces"
    )


def place_face(
    image: np.ndarray, box: tuple[float, float, float, float], width: int, height: int
) -> np.ndarray:
    """``image`` scaled so the face box is FACE_FRACTION of ``height``, centred on a grey canvas."""
    x, y, w, h = box
    scale = height * FACE_FRACTION / max(h, 1.0)
    interpolation = cv2.INTER_AREA if scale < 1.0 else cv2.INTER_CUBIC
    resized = cv2.resize(image, None, fx=scale, fy=scale, interpolation=interpolation)
    # Whole-pixel shift with nearest sampling: a copy, not a second resampling of the photo.
    dx = round(width / 2.0 - (x + w / 2.0) * scale)
    dy = round(height / 2.0 - (y + h / 2.0) * scale)
    shift = np.array([[1.0, 0.0, dx], [0.0, 1.0, dy]])
    return np.asarray(
        cv2.warpAffine(
            resized,
            shift,
            (width, height),
            flags=cv2.INTER_NEAREST,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=NEUTRAL_GREY,
        )
    )


def build_photos(data_dir: Path, engine: FaceEngine) -> tuple[str, dict[str, bytes]]:
    """The source file and one JPEG per size, from the first unmasked one-face photo with a large face.

    Raises
    ------
    ValueError
        No photo in ``data_dir`` qualifies.
    """
    min_face = max(h for _, h in SIZES) * FACE_FRACTION / MAX_ENLARGEMENT
    for row in read_labels(data_dir):
        if row.identity == GROUP or row.masked:
            continue
        image = decode_image((data_dir / row.file).read_bytes())
        found = engine.detect(image)
        if len(found) != 1 or found[0].size < min_face:
            continue
        photos = {}
        for width, height in SIZES:
            ok, encoded = cv2.imencode(
                ".jpg",
                place_face(image, found[0].box, width, height),
                [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY],
            )
            if not ok:
                raise ValueError(f"OpenCV could not encode the {width}x{height} test photo from {row.file}")
            photos[f"{width}x{height}"] = bytes(encoded.tobytes())
        return row.file, photos
    raise ValueError(
        f"no unmasked, non-group photo with exactly one face of at least {min_face:.0f} px in {data_dir}: "
        "pass --data with a folder that has one"
    )


# --------------------------------------------------------------------------- worker (one thread setting)


class Reference:
    """OpenCV's own pipeline on the same prepared model files: the baseline a user would pick."""

    def __init__(self, yunet: Path, sface: Path, size: tuple[int, int]) -> None:
        self.detector = cv2.FaceDetectorYN.create(
            str(yunet), "", size, REF_SCORE_THRESHOLD, REF_NMS_THRESHOLD, REF_TOP_K
        )
        # Frames of a fixed camera share one size, so a user sets it once, outside the hot path.
        self.detector.setInputSize(size)
        self.recognizer = cv2.FaceRecognizerSF.create(str(sface), "")

    @staticmethod
    def decode(data: bytes) -> np.ndarray:
        """``cv2.imdecode`` to BGR; ValueError when OpenCV cannot decode the bytes."""
        image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
        if image is None:
            raise ValueError("OpenCV could not decode the test photo")
        return np.asarray(image)

    def largest_face(self, image: np.ndarray) -> np.ndarray:
        """The row (box, landmarks, score) of the largest face; ValueError when there is none."""
        _, faces = self.detector.detect(image)
        if faces is None or len(faces) == 0:
            raise ValueError("OpenCV's FaceDetectorYN found no face in the test photo")
        return np.asarray(faces[int(np.argmax(faces[:, 2] * faces[:, 3]))])

    def stages(self, data: bytes) -> tuple[int, ...]:
        """Nanoseconds of decode, detect (+ largest), align and embed for one photo."""
        clock = time.perf_counter_ns
        t0 = clock()
        image = self.decode(data)
        t1 = clock()
        face = self.largest_face(image)
        t2 = clock()
        aligned = self.recognizer.alignCrop(image, face)
        t3 = clock()
        self.recognizer.feature(aligned)
        t4 = clock()
        return (t1 - t0, t2 - t1, t3 - t2, t4 - t3)

    def template(self, data: bytes) -> np.ndarray:
        """The whole reference path: photo bytes to an L2-normalised embedding."""
        image = self.decode(data)
        vector = np.asarray(
            self.recognizer.feature(self.recognizer.alignCrop(image, self.largest_face(image))),
            dtype=np.float32,
        ).reshape(-1)
        return vector / max(float(np.linalg.norm(vector)), 1e-12)


def engine_stages(engine: FaceEngine, data: bytes) -> tuple[int, ...]:
    """Nanoseconds of each stage of ``decode_image`` + ``engine.analyse``, done step by step."""
    clock = time.perf_counter_ns
    t0 = clock()
    image = decode_image(data)
    t1 = clock()
    main = pick_main_face(engine.detect(image), image.shape)
    t2 = clock()
    landmarks = refine_landmarks(engine.detector, image, main)
    t3 = clock()
    aligned = align_face(image, landmarks)
    t4 = clock()
    engine.mask_classifier.probability(aligned)
    t5 = clock()
    engine.embed([aligned])
    t6 = clock()
    return (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t6 - t5)


def engine_template(engine: FaceEngine, data: bytes) -> np.ndarray:
    """The whole probe path: ``decode_image`` then ``engine.analyse``, to the embedding vector."""
    return engine.analyse(decode_image(data)).embedding.vector


def whole(run: Callable[[], object]) -> Timed:
    """``run`` wrapped to return its own duration in nanoseconds, as a 1-tuple."""

    def timed() -> tuple[int, ...]:
        start = time.perf_counter_ns()
        run()
        return (time.perf_counter_ns() - start,)

    return timed


def interleave(first: Timed, second: Timed, runs: int, warmup: int) -> tuple[np.ndarray, np.ndarray]:
    """Run two timed callables alternately; (runs, stages) arrays of nanoseconds for each.

    Which goes first flips every round so that neither always meets the caches the other left.
    """
    for _ in range(warmup):
        first()
        second()
    rows_first: list[tuple[int, ...]] = []
    rows_second: list[tuple[int, ...]] = []
    gc.collect()
    for index in range(runs):
        if index % 2 == 0:
            rows_first.append(first())
            rows_second.append(second())
        else:
            rows_second.append(second())
            rows_first.append(first())
    return np.asarray(rows_first, dtype=np.int64), np.asarray(rows_second, dtype=np.int64)


def run_worker(request: Mapping[str, Any]) -> dict[str, Any]:
    """Time every cell of one thread setting; returns ``{"cells": ..., "checks": ...}``."""
    threads = int(request["threads"])
    runs = int(request["runs"])
    warmup = int(request["warmup"])
    models_dir = Path(request["models_dir"]) if request["models_dir"] else None
    cv2.setNumThreads(threads)
    engine = FaceEngine(EngineConfig(models_dir=models_dir, threads=threads))
    engine.warm_up()
    yunet = models.prepared_path(models.YUNET, models_dir)
    sface = models.prepared_path(models.SFACE, models_dir)
    cells: dict[str, Cell] = {}
    checks: dict[str, float] = {}
    for size, encoded in request["photos"].items():
        data = base64.b64decode(encoded)
        width, height = (int(side) for side in size.split("x"))
        reference = Reference(yunet, sface, (width, height))
        # Both paths must see the face, or the timings would compare different work.
        cosine = float(engine_template(engine, data) @ reference.template(data))
        checks[f"{size}/embedding_cosine"] = round(cosine, 4)

        ours, theirs = interleave(
            partial(engine_stages, engine, data), partial(reference.stages, data), runs, warmup
        )
        for column, stage in enumerate(ENGINE_STAGES):
            ref_column = REFERENCE_STAGES.index(stage) if stage in REFERENCE_STAGES else None
            cells[cell_key(size, threads, stage)] = make_cell(
                ours[:, column], None if ref_column is None else theirs[:, ref_column]
            )
        ours, theirs = interleave(
            whole(partial(engine_template, engine, data)),
            whole(partial(reference.template, data)),
            runs,
            warmup,
        )
        cells[cell_key(size, threads, PIPELINE)] = make_cell(ours[:, 0], theirs[:, 0])
    return {"cells": cells, "checks": checks}


def _spawn_worker(request: Mapping[str, Any]) -> dict[str, Any]:
    """Run one thread setting in a fresh interpreter; its stderr (OpenCV warnings) passes through."""
    threads = str(request["threads"])
    # numpy's BLAS and OpenMP read these at import; pin them too so "1 thread" means one.
    env = {**os.environ, "OMP_NUM_THREADS": threads, "OPENBLAS_NUM_THREADS": threads}
    done = subprocess.run(
        [sys.executable, "-m", "eventface.bench.latency", "--worker"],
        input=json.dumps(request),
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        check=False,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"latency worker ({threads} thread(s)) failed with exit code {done.returncode}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


# --------------------------------------------------------------------------- cold start


def _wall_s(command: Sequence[str]) -> tuple[float, str]:
    """Process wall time from spawn to exit, and the process's stdout."""
    start = time.perf_counter()
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=True)
    return time.perf_counter() - start, done.stdout


def measure_cold_start(models_dir: Path | None) -> dict[str, float]:
    """Medians over fresh processes of interpreter start, imports and full engine init (seconds)."""
    interpreter = statistics.median(
        _wall_s([sys.executable, "-c", "pass"])[0] for _ in range(COLD_START_RUNS)
    )
    imports, init, wall = [], [], []
    for _ in range(COLD_START_RUNS):
        seconds, out = _wall_s([sys.executable, "-c", _COLD_START_SCRIPT, str(models_dir or "")])
        report = json.loads(out.strip().splitlines()[-1])
        imports.append(float(report["imports_s"]))
        init.append(float(report["init_s"]))
        wall.append(seconds)
    return {
        "interpreter_start_s": round(interpreter, 3),
        "imports_in_process_s": round(statistics.median(imports), 3),
        "imports_s": round(statistics.median(imports) + interpreter, 3),
        "init_in_process_s": round(statistics.median(init), 3),
        "cold_start_s": round(statistics.median(init) + interpreter, 3),
        "process_wall_s": round(statistics.median(wall), 3),
    }


def format_cold_start(cold: Mapping[str, float]) -> str:
    """The cold-start lines of the report, saying how each number was taken."""
    return "\n".join(
        [
            f"cold start (fresh processes, median of {COLD_START_RUNS}, 1 thread, models prepared, "
            "warm page cache):",
            f"  interpreter start  `python -c pass`, process wall       {cold['interpreter_start_s']:.3f} s",
            f"  imports done       numpy, cv2, onnxruntime, face_engine {cold['imports_s']:.3f} s"
            f"  (in-process {cold['imports_in_process_s']:.3f} s + interpreter start)",
            f"  full init          + both sessions + first inference    {cold['cold_start_s']:.3f} s"
            f"  (in-process {cold['init_in_process_s']:.3f} s + interpreter start) = cold_start_s",
            f"  process wall       spawn to exit, includes teardown     {cold['process_wall_s']:.3f} s",
        ]
    )


# --------------------------------------------------------------------------- entry points


def main(args: argparse.Namespace) -> int:
    """``eventface bench latency``: print the table, then the JSON summary as the last line."""
    if args.runs < 1:
        raise ValueError(f"--runs must be at least 1, got {args.runs}")
    data_dir = resolve_data_dir(args.data)
    models_dir: Path | None = args.models_dir
    # Prepared before any timing: preparation is a one-off install step, not part of a cold start.
    for spec in models.MODELS:
        models.prepared_path(spec, models_dir)
    source, photos = build_photos(data_dir, FaceEngine(EngineConfig(models_dir=models_dir)))
    sizes = list(photos)
    print(f"test photos: {', '.join(sizes)} JPEG q{JPEG_QUALITY} built from {data_dir / source}", flush=True)

    cold = measure_cold_start(models_dir)
    all_cores = os.cpu_count() or 1
    settings = [1] if all_cores == 1 else [1, all_cores]
    cells: dict[str, Cell] = {}
    checks: dict[str, float] = {}
    for threads in settings:
        request = {
            "threads": threads,
            "runs": args.runs,
            "warmup": WARMUP_RUNS,
            "models_dir": str(models_dir) if models_dir else None,
            "photos": {size: base64.b64encode(data).decode("ascii") for size, data in photos.items()},
        }
        try:
            result = _spawn_worker(request)
        except RuntimeError as exc:
            print(f"eventface: {exc}; its error is printed above", file=sys.stderr)
            return 1
        cells.update(result["cells"])
        checks.update(result["checks"])

    print(
        f"\nlatency in ms, p50/p95 over {args.runs} runs after {WARMUP_RUNS} warm-up runs;"
        " engine and OpenCV runs alternate; eng/ocv = engine p50 / OpenCV p50"
    )
    print(format_table(cells, sizes, settings))
    cosines = ", ".join(f"{key.split('/')[0]} {value:.3f}" for key, value in checks.items())
    print(f"engine vs OpenCV embedding cosine (same photo): {cosines}")
    print()
    print(format_cold_start(cold))

    headline = cells[cell_key(sizes[0], 1, PIPELINE)]
    summary = {
        "pipeline_ms_p50": headline["engine_ms_p50"],
        "pipeline_ms_p95": headline["engine_ms_p95"],
        "reference_ms_p50": headline["reference_ms_p50"],
        "reference_ms_p95": headline["reference_ms_p95"],
        "ratio_p50": headline["ratio_p50"],
        "cold_start_s": cold["cold_start_s"],
        "runs": args.runs,
        "warmup_runs": WARMUP_RUNS,
        "threads": settings,
        "source_photo": source,
        "cold_start": cold,
        "checks": checks,
        "cells": cells,
    }
    print(json.dumps(summary))
    return 0


def _worker_main(argv: Sequence[str]) -> int:
    """``python -m eventface.bench.latency --worker``: request JSON on stdin, result JSON on stdout."""
    parser = argparse.ArgumentParser(prog="python -m eventface.bench.latency")
    parser.add_argument("--worker", action="store_true", required=True, help="time one thread setting")
    parser.parse_args(argv)
    print(json.dumps(run_worker(json.load(sys.stdin))), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(_worker_main(sys.argv[1:]))
