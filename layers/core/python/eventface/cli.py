"""The ``eventface`` command: model preparation and benchmarks."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path


def _models_prepare(args: argparse.Namespace) -> int:
    from face_engine import models

    for spec in models.MODELS:
        path = models.prepare(spec, args.dir)
        print(f"{spec.model_id}: {path}")
    return 0


def _bench_accuracy(args: argparse.Namespace) -> int:
    from eventface.bench import accuracy

    return accuracy.main(args)


def _bench_latency(args: argparse.Namespace) -> int:
    from eventface.bench import latency

    return latency.main(args)


def _bench_search(args: argparse.Namespace) -> int:
    from eventface.bench import search

    return search.main(args)


def _bench_scan(args: argparse.Namespace) -> int:
    from eventface.bench import scan

    return scan.main(args)


def _bench_vip(args: argparse.Namespace) -> int:
    from eventface.bench import vip

    return vip.main(args)


def _bench_calibrate(args: argparse.Namespace) -> int:
    from eventface.bench import calibrate

    return calibrate.main(args)


def _bench_fit_mask(args: argparse.Namespace) -> int:
    from eventface.bench import accuracy

    return accuracy.fit_mask_main(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="eventface", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    models_cmd = commands.add_parser("models", help="model files").add_subparsers(
        dest="action", required=True
    )
    prepare = models_cmd.add_parser("prepare", help="verify, prepare and cache the YuNet and SFace models")
    prepare.add_argument("--dir", type=Path, default=None, help="models directory (default: per-user cache)")
    prepare.set_defaults(func=_models_prepare)

    bench = commands.add_parser("bench", help="benchmarks").add_subparsers(dest="action", required=True)
    acc = bench.add_parser("accuracy", help="engine vs OpenCV's pipeline on a labelled face folder")
    acc.add_argument("--data", type=Path, required=True, help="folder with labels.csv (file,identity,masked)")
    acc.add_argument("--models-dir", type=Path, default=None)
    acc.set_defaults(func=_bench_accuracy)

    lat = bench.add_parser("latency", help="per-stage latency of the engine vs OpenCV's pipeline")
    lat.add_argument("--data", type=Path, default=None, help="face folder to take the test photos from")
    lat.add_argument("--runs", type=int, default=200, help="timed runs per cell, after warm-up")
    lat.add_argument("--models-dir", type=Path, default=None)
    lat.set_defaults(func=_bench_latency)

    srch = bench.add_parser("search", help="gallery index vs numpy and faiss, and the bandwidth floor")
    srch.add_argument("--n", type=int, default=1_000_000, help="gallery size (templates)")
    srch.add_argument("--load", action="store_true", help="also time loading 1M templates from S3 (moto)")
    srch.set_defaults(func=_bench_search)

    scn = bench.add_parser("scan", help="a checkpoint scan end to end through the edge API on moto")
    scn.add_argument("--n", type=int, nargs="+", default=[10_000, 100_000], help="distractor templates")
    scn.add_argument("--runs", type=int, default=100, help="timed scans per gallery size")
    scn.set_defaults(func=_bench_scan)

    vip = bench.add_parser(
        "vip", help="VIP sighting to staff push on the local stack, CRM healthy and timing out"
    )
    vip.add_argument("--n", type=int, default=30, help="timed sightings per CRM condition, after warm-up")
    vip.add_argument("--deadline-ms", type=int, default=500, help="the venue's CRM deadline in ms (50-10000)")
    vip.set_defaults(func=_bench_vip)

    cal = bench.add_parser("calibrate", help="fit the impostor tail that sets open-set thresholds")
    cal.add_argument("--data", type=Path, required=True)
    cal.add_argument("--models-dir", type=Path, default=None)
    cal.set_defaults(func=_bench_calibrate)

    fit = bench.add_parser("fit-mask", help="fit the mask classifier and print its coefficients")
    fit.add_argument("--data", type=Path, required=True)
    fit.add_argument("--models-dir", type=Path, default=None)
    fit.set_defaults(func=_bench_fit_mask)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (FileNotFoundError, ValueError) as exc:
        print(f"eventface: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
