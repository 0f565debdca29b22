"""Verification and identification metrics over one set of labelled images.

Each image plays both roles a deployment has: a *probe* (a camera frame: one embedding and a
predicted mask flag) and a *registration* (a plain template, and a synthetic masked template
where the pipeline makes one). Probe-vs-template scores use the pipeline's matching rule; the
score of an unordered pair is the mean of its two directions. A pipeline without mask handling
passes its probe vectors as templates and no mask predictions: every score is then a cosine.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from eventface.bench.dataset import GROUP, LabelledImage
from face_engine.matching import similarities

FARS = (1e-2, 1e-3, 1e-4)


@dataclass(frozen=True, slots=True, eq=False)
class Vectors:
    """Per-image outputs of a pipeline; rows of images without a face are ignored (``found``)."""

    found: np.ndarray  # (n,) bool
    probe: np.ndarray  # (n, d)
    template: np.ndarray  # (n, d)
    masked_template: np.ndarray | None  # (n, d)
    masked_pred: np.ndarray  # (n,) bool


def score_matrices(v: Vectors) -> tuple[np.ndarray, np.ndarray]:
    """(pair scores n x n, probe-vs-template scores n x n), -inf where a face is missing."""
    probe_vs_template = np.stack(
        [
            similarities(v.probe[i], v.template, v.masked_template, probe_masked=bool(v.masked_pred[i]))
            for i in range(len(v.probe))
        ]
    )
    missing = ~(v.found[:, None] & v.found[None, :])
    probe_vs_template = np.where(missing, -np.inf, probe_vs_template)
    pair = (probe_vs_template + probe_vs_template.T) / 2.0
    return pair, probe_vs_template


def tar_at_far(genuine: np.ndarray, impostor: np.ndarray, far: float) -> float:
    """Share of genuine scores above the threshold that lets at most ``far`` of impostors through."""
    if genuine.size == 0 or impostor.size == 0:
        return float("nan")
    ranked = np.sort(impostor)[::-1]
    allowed = int(np.floor(far * ranked.size))
    threshold = ranked[min(allowed, ranked.size - 1)]
    return float(np.mean(genuine > threshold))


def threshold_at_far(impostor: np.ndarray, far: float) -> float:
    """The score a match must exceed so that at most ``far`` of impostor pairs pass."""
    ranked = np.sort(impostor[np.isfinite(impostor)])[::-1]
    return float(ranked[min(int(np.floor(far * ranked.size)), ranked.size - 1)])


def pair_scores(
    labels: Sequence[LabelledImage], pair: np.ndarray, subset: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Genuine and impostor scores over all pairs of non-group images (optionally a pair subset)."""
    ids = np.array([row.identity for row in labels])
    usable = ids != GROUP
    upper = np.triu(np.ones(pair.shape, dtype=bool), k=1) & usable[:, None] & usable[None, :]
    if subset is not None:
        upper &= subset
    same = ids[:, None] == ids[None, :]
    return pair[upper & same], pair[upper & ~same]


def rank1(
    labels: Sequence[LabelledImage], probe_vs_template: np.ndarray, *, masked_only: bool = False
) -> float:
    """Closed-set rank-1: gallery = first unmasked image of each identity with 2+ images."""
    ids = [row.identity for row in labels]
    counts: dict[str, int] = {}
    for identity in ids:
        counts[identity] = counts.get(identity, 0) + 1
    gallery: dict[str, int] = {}
    for index, row in enumerate(labels):
        if row.identity != GROUP and counts[row.identity] >= 2 and not row.masked:
            gallery.setdefault(row.identity, index)
    columns = np.array(list(gallery.values()))
    names = np.array(list(gallery.keys()))
    probes = [
        i
        for i, row in enumerate(labels)
        if row.identity in gallery and i != gallery[row.identity] and (row.masked or not masked_only)
    ]
    if not probes:
        return float("nan")
    correct = 0
    for i in probes:
        scores = probe_vs_template[i, columns]
        if np.isfinite(scores.max()) and names[int(np.argmax(scores))] == ids[i]:
            correct += 1
    return correct / len(probes)


def summarise(labels: Sequence[LabelledImage], vectors: Vectors) -> dict[str, float | int]:
    """The accuracy keys of ``eventface bench accuracy`` for one pipeline."""
    pair, probe_vs_template = score_matrices(vectors)
    genuine, impostor = pair_scores(labels, pair)
    masked = np.array([row.masked for row in labels])
    cross = masked[:, None] != masked[None, :]
    g_cross, i_cross = pair_scores(labels, pair, cross)
    result: dict[str, float | int] = {
        "images": len(labels),
        "no_face": int((~vectors.found).sum()),
        "genuine_pairs": int(genuine.size),
        "impostor_pairs": int(impostor.size),
    }
    for far in FARS:
        result[f"tar_at_far_{far:.0e}".replace("e-0", "e-")] = round(tar_at_far(genuine, impostor, far), 4)
    result["rank1"] = round(rank1(labels, probe_vs_template), 4)
    result["rank1_masked"] = round(rank1(labels, probe_vs_template, masked_only=True), 4)
    result["tar_masked_vs_unmasked_at_far_1e-3"] = round(tar_at_far(g_cross, i_cross, 1e-3), 4)
    for far in FARS:
        result[f"threshold_at_far_{far:.0e}".replace("e-0", "e-")] = round(threshold_at_far(impostor, far), 4)
    if masked.any():
        truth = masked[vectors.found]
        pred = vectors.masked_pred[vectors.found]
        result["mask_detection_accuracy"] = round(float(np.mean(truth == pred)), 4)
    return result
