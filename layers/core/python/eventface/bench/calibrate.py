"""``eventface bench calibrate``: fit the open-set impostor tail model on a labelled face folder.

Scores are computed the way a search computes them: one probe (a camera frame, mask-aware)
against one registration template, in both directions of every impostor pair of non-group
images. The tail above the 99th percentile is fitted by PWM (``face_engine.open_set.fit_tail``).

The stored model is not the point fit. Resampling identities shows how unsure the tail shape is
(images of one person are not independent pairs), and on the uniform sphere, whose tail is known
exactly, a point fit with ``xi < 0`` extrapolates to thresholds that are too low. So the stored
shape is the 95th percentile of an identity bootstrap, with the scale refitted to the mean excess.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from eventface.bench.accuracy import engine_vectors, load_images
from eventface.bench.dataset import GROUP, LabelledImage, read_labels
from eventface.bench.metrics import Vectors, pair_scores, score_matrices
from face_engine.engine import EngineConfig, FaceEngine
from face_engine.models import SFACE
from face_engine.open_set import TailModel, comparison_rate, fit_tail, tail_check
from face_engine.thresholds import threshold_for

TAIL_FRACTION = 0.01
BOOTSTRAP_REPS = 200
BOOTSTRAP_LEVEL = 0.95
SEED = 0
SPHERE_REPS = 5
GALLERY_SIZES = (1_000, 10_000, 100_000, 1_000_000, 10_000_000)
FMRS = (1e-3, 1e-2)
DIM = 128


def directional_scores(labels: Sequence[LabelledImage], vectors: Vectors) -> tuple[np.ndarray, np.ndarray]:
    """(genuine, impostor) probe-vs-template scores, both directions of every non-group pair."""
    _, probe_vs_template = score_matrices(vectors)
    g1, i1 = pair_scores(labels, probe_vs_template)
    g2, i2 = pair_scores(labels, probe_vs_template.T)
    genuine, impostor = np.concatenate([g1, g2]), np.concatenate([i1, i2])
    return genuine[np.isfinite(genuine)], impostor[np.isfinite(impostor)]


def bootstrap_shapes(
    labels: Sequence[LabelledImage], vectors: Vectors, *, reps: int = BOOTSTRAP_REPS, seed: int = SEED
) -> np.ndarray:
    """Tail shape refitted on ``reps`` resamples of the identities (with replacement).

    Resampling people rather than pairs keeps each person's images together, which is where the
    dependence between impostor pairs comes from.
    """
    _, probe_vs_template = score_matrices(vectors)
    ids = np.array([row.identity for row in labels])
    names = sorted(set(ids.tolist()) - {GROUP})
    images = [np.flatnonzero(ids == name) for name in names]
    rng = np.random.default_rng(seed)
    shapes = np.empty(reps)
    for r in range(reps):
        drawn = rng.integers(0, len(names), len(names))
        index = np.concatenate([images[k] for k in drawn])
        who = ids[index]
        block = probe_vs_template[np.ix_(index, index)]
        scores = block[(who[:, None] != who[None, :]) & np.isfinite(block)]
        shapes[r] = fit_tail(scores, tail_fraction=TAIL_FRACTION, model_id="bootstrap", source="").xi
    return shapes


def sphere_survival(dim: int = DIM, points: int = 2_000_001) -> tuple[np.ndarray, np.ndarray]:
    """Exact P(cosine > t) of two independent uniform unit vectors in ``dim`` dimensions.

    The cosine has density proportional to (1 - t^2)^((dim - 3) / 2); integrated from the top
    with the trapezoid rule in float64, which keeps ~7 digits down to rates of 1e-9.
    """
    t = np.linspace(-1.0, 1.0, points)
    log_density = 0.5 * (dim - 3) * np.log(np.clip(1.0 - t * t, 1e-300, None))
    density = np.exp(log_density - log_density.max())
    step = t[1] - t[0]
    upper = np.concatenate([np.cumsum(((density[1:] + density[:-1]) * step / 2.0)[::-1])[::-1], [0.0]])
    return t, upper / upper[0]


def sphere_threshold(t: np.ndarray, survival: np.ndarray, p: float) -> float:
    """The t with exact sphere survival ``p`` (interpolated in log p)."""
    return float(np.interp(-math.log(p), -np.log(np.clip(survival, 1e-300, None)), t))


def sphere_check(n_scores: int, *, reps: int = SPHERE_REPS, seed: int = SEED) -> list[str]:
    """Fit sphere samples as big as the dev set and compare the extrapolations with the exact tail.

    Each of ``reps`` samples of ``n_scores`` random cosines gets the point fit and the stored
    recipe (95th-percentile bootstrap shape; pairs are independent here, so the bootstrap is over
    scores). Returns printable lines: exact threshold, then min / median / max of each recipe.
    """
    rng = np.random.default_rng(seed)
    rates = [(n, "fmr 1e-3", comparison_rate(n, 1e-3)) for n in GALLERY_SIZES]
    rates += [(n, "median", math.log(2) / n) for n in (1_000_000,)]
    point_t = np.empty((reps, len(rates)))
    upper_t = np.empty((reps, len(rates)))
    for r in range(reps):
        gauss = rng.standard_normal((n_scores, DIM)).astype(np.float32)
        cosines = gauss[:, 0] / np.linalg.norm(gauss, axis=1)
        point = fit_tail(cosines, tail_fraction=TAIL_FRACTION, model_id="sphere", source="")
        shapes = [
            fit_tail(
                rng.choice(cosines, cosines.size), tail_fraction=TAIL_FRACTION, model_id="s", source=""
            ).xi
            for _ in range(BOOTSTRAP_REPS)
        ]
        shape = float(np.quantile(shapes, BOOTSTRAP_LEVEL))
        cautious = fit_tail(cosines, tail_fraction=TAIL_FRACTION, model_id="sphere", source="", shape=shape)
        point_t[r] = [_inverse(point, rate) for _, _, rate in rates]
        upper_t[r] = [_inverse(cautious, rate) for _, _, rate in rates]
    t, survival = sphere_survival()
    lines = [
        f"uniform sphere, {DIM}-d: {reps} samples of {n_scores:,} cosines, thresholds min / median / max",
        f"{'N':>10} {'rate':>9} {'exact':>7} {'point fit':>22} {'stored recipe':>22}",
    ]
    for k, (n, label, rate) in enumerate(rates):
        lines.append(
            f"{n:>10,} {label:>9} {sphere_threshold(t, survival, rate):>7.4f} "
            f"{_spread(point_t[:, k]):>22} {_spread(upper_t[:, k]):>22}"
        )
    return lines


def _spread(values: np.ndarray) -> str:
    return f"{values.min():.4f} {np.median(values):.4f} {values.max():.4f}"


def _inverse(model: TailModel, rate: float) -> float:
    """The model's t at ``rate`` without the 1:1 floor (the floor belongs to real models)."""
    log_ratio = math.log(rate / model.p_u)
    return model.u + model.sigma * math.expm1(-model.xi * log_ratio) / model.xi


def report(labels: Sequence[LabelledImage], vectors: Vectors, data: Path) -> TailModel:
    """Fit, check and print; returns the conservative model to store."""
    model_id = SFACE.model_id
    genuine, impostor = directional_scores(labels, vectors)
    identities = len({row.identity for row in labels} - {GROUP})
    print(
        f"{len(labels)} images, {identities} identities; {impostor.size:,} impostor and {genuine.size:,} "
        f"genuine directional scores; impostor mean {impostor.mean():.4f} sd {impostor.std():.4f}"
    )
    point = fit_tail(impostor, tail_fraction=TAIL_FRACTION, model_id=model_id, source="point fit")
    shapes = bootstrap_shapes(labels, vectors)
    upper = float(np.quantile(shapes, BOOTSTRAP_LEVEL))
    low, mid = np.quantile(shapes, [1.0 - BOOTSTRAP_LEVEL, 0.5])
    print(
        f"point fit: u {point.u:.4f} p_u {point.p_u:.5f} xi {point.xi:.4f} sigma {point.sigma:.4f} "
        f"(finite endpoint {point.u - point.sigma / point.xi:.3f} if xi < 0)"
    )
    print(
        f"identity bootstrap ({BOOTSTRAP_REPS} reps) of xi: 5 % {low:.4f}, median {mid:.4f}, 95 % {upper:.4f}"
    )
    source = (
        f"eventface bench calibrate on {data} ({len(labels)} images, {identities} identities, "
        f"{impostor.size:,} directional probe-vs-template impostor scores); PWM fit above the "
        f"{1 - TAIL_FRACTION:g} quantile gave xi {point.xi:.4f}, sigma {point.sigma:.4f}; stored xi is the "
        f"{BOOTSTRAP_LEVEL:.0%} point of a {BOOTSTRAP_REPS}-rep identity bootstrap (seed {SEED}), sigma "
        "from the mean excess"
    )
    model = fit_tail(impostor, tail_fraction=TAIL_FRACTION, model_id=model_id, source=source, shape=upper)

    print("\ngoodness of fit (t, empirical p, point-model p, stored-model p):")
    for (t, empirical, p_point), (_, _, p_model) in zip(
        tail_check(point, impostor), tail_check(model, impostor), strict=True
    ):
        print(f"  t {t:.4f}  empirical {empirical:.2e}  point {p_point:.2e}  stored {p_model:.2e}")

    usual = threshold_for(model_id, 0.0)
    print(
        f"\nthresholds of the point fit and the stored model (1:1 floor {threshold_for(model_id, 1e-3)}); "
        "TAR = share of genuine scores at or above"
    )
    header = ("N", "fmr", "p(t)", "point t", "stored t", "TAR point", "TAR stored")
    print(" ".join(f"{name:>{width}}" for name, width in zip(header, (12, 6, 9, 8, 9, 10, 11), strict=True)))
    for fmr in FMRS:
        for n in GALLERY_SIZES:
            t_point, t_model = point.threshold(n, fmr), model.threshold(n, fmr)
            print(
                f"{n:>12,} {fmr:>6g} {comparison_rate(n, fmr):>9.2e} {t_point:>8.4f} {t_model:>9.4f} "
                f"{np.mean(genuine >= t_point):>10.4f} {np.mean(genuine >= t_model):>11.4f}"
            )
    print(f"TAR at SFace's usual {usual}: {np.mean(genuine >= usual):.4f}")
    for n in GALLERY_SIZES:
        scan = -math.expm1(n * math.log1p(-model.p_exceed(usual)))
        print(f"  per-scan false-match rate at {usual} with N = {n:,}: {scan:.3g} (stored model)")

    grid, survival = sphere_survival()
    # A uniform-sphere cosine has mean 0 and sd 1 / sqrt(dim).
    scale = float(impostor.std()) * math.sqrt(DIM)
    print("\nsphere proxy for these faces: impostor mean + (sd / sphere sd) * exact sphere threshold")
    for n in GALLERY_SIZES:
        rate = comparison_rate(n, 1e-3)
        proxy = impostor.mean() + scale * sphere_threshold(grid, survival, rate)
        print(
            f"  N {n:>10,} fmr 1e-3: proxy {proxy:.4f}  point {_inverse(point, rate):.4f}  "
            f"stored {_inverse(model, rate):.4f}"
        )
    median = math.log(2) / 1_000_000
    print(
        f"  median best impostor at N 1,000,000: proxy "
        f"{impostor.mean() + scale * sphere_threshold(grid, survival, median):.4f}  point "
        f"{_inverse(point, median):.4f}  stored {_inverse(model, median):.4f}"
    )

    print()
    for line in sphere_check(impostor.size):
        print(line)

    print("\npaste into face_engine/open_set.py:")
    print(
        f"TailModel(\n    model_id={model.model_id!r},\n    u={model.u:.6f},\n    p_u={model.p_u:.8f},\n"
        f"    xi={model.xi:.6f},\n    sigma={model.sigma:.6f},\n    n_impostor={model.n_impostor},\n"
        f"    source={model.source!r},\n)"
    )
    return model


def main(args: argparse.Namespace) -> int:
    data = Path(args.data)
    labels = read_labels(data)
    engine = FaceEngine(EngineConfig(models_dir=args.models_dir))
    vectors, _ = engine_vectors(engine, load_images(data, labels))
    report(labels, vectors, data)
    return 0
