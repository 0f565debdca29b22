"""``eventface bench accuracy``: the engine against OpenCV's own pipeline on a labelled face folder.

Both pipelines use the same prepared model files and the same detection thresholds, so the
difference is the pipeline: detector input sizing and landmark refinement, alignment, templates
flipped at registration, mask detection with synthetic masked templates.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from eventface.bench.dataset import LabelledImage, read_labels
from eventface.bench.metrics import Vectors, summarise
from face_engine import models
from face_engine.decoding import decode_image
from face_engine.engine import EngineConfig, FaceEngine
from face_engine.errors import FaceEngineError
from face_engine.masks import fit_mask_classifier, mask_features

DIM = 128


def engine_vectors(engine: FaceEngine, images: Sequence[np.ndarray]) -> tuple[Vectors, list[np.ndarray]]:
    """Probe, templates and mask flags of every image through the engine."""
    n = len(images)
    found = np.zeros(n, dtype=bool)
    probe = np.zeros((n, DIM), np.float32)
    template = np.zeros((n, DIM), np.float32)
    masked_template = np.zeros((n, DIM), np.float32)
    masked_pred = np.zeros(n, dtype=bool)
    aligned: list[np.ndarray] = []
    for i, image in enumerate(images):
        try:
            result = engine.analyse(image)
        except FaceEngineError:
            aligned.append(np.zeros((112, 112, 3), np.uint8))
            continue
        found[i] = True
        probe[i] = result.embedding.vector
        masked_pred[i] = result.masked
        plain, masked = engine.templates(result.aligned)
        template[i], masked_template[i] = plain.vector, masked.vector
        aligned.append(result.aligned)
    return Vectors(found, probe, template, masked_template, masked_pred), aligned


def reference_vectors(
    yunet: Path, sface: Path, images: Sequence[np.ndarray], config: EngineConfig
) -> Vectors:
    """OpenCV's pipeline: FaceDetectorYN at the photo's size, largest face, alignCrop, feature."""
    import cv2

    detector = cv2.FaceDetectorYN.create(
        str(yunet), "", (320, 320), config.score_threshold, config.nms_threshold, 5000
    )
    recognizer = cv2.FaceRecognizerSF.create(str(sface), "")
    n = len(images)
    found = np.zeros(n, dtype=bool)
    probe = np.zeros((n, DIM), np.float32)
    for i, image in enumerate(images):
        detector.setInputSize((image.shape[1], image.shape[0]))
        _, faces = detector.detect(image)
        if faces is None or len(faces) == 0:
            continue
        face = max(faces, key=lambda row: min(row[2], row[3]))
        vector = np.asarray(recognizer.feature(recognizer.alignCrop(image, face)), np.float32).reshape(-1)
        probe[i] = vector / max(float(np.linalg.norm(vector)), 1e-12)
        found[i] = True
    return Vectors(found, probe, probe, None, np.zeros(n, dtype=bool))


def load_images(root: Path, labels: Sequence[LabelledImage]) -> list[np.ndarray]:
    return [decode_image((root / row.file).read_bytes()) for row in labels]


def run(data: Path, models_dir: Path | None = None) -> dict[str, Any]:
    """Both pipelines over the folder; returns the engine's keys with the reference's under ``reference``."""
    labels = read_labels(data)
    images = load_images(data, labels)
    config = EngineConfig(models_dir=models_dir)
    engine = FaceEngine(config)
    started = time.perf_counter()
    vectors, _ = engine_vectors(engine, images)
    engine_s = time.perf_counter() - started
    started = time.perf_counter()
    reference = reference_vectors(
        models.prepared_path(models.YUNET, models_dir),
        models.prepared_path(models.SFACE, models_dir),
        images,
        config,
    )
    reference_s = time.perf_counter() - started
    result: dict[str, Any] = dict(summarise(labels, vectors))
    result["seconds"] = round(engine_s, 1)
    result["reference"] = dict(summarise(labels, reference))
    result["reference"]["seconds"] = round(reference_s, 1)
    return result


KEYS = (
    "no_face",
    "tar_at_far_1e-2",
    "tar_at_far_1e-3",
    "tar_at_far_1e-4",
    "rank1",
    "rank1_masked",
    "tar_masked_vs_unmasked_at_far_1e-3",
)


def main(args: argparse.Namespace) -> int:
    result = run(args.data, args.models_dir)
    reference = result["reference"]
    print(f"{'key':40} {'engine':>8} {'opencv':>8}")
    for key in KEYS:
        print(f"{key:40} {result[key]:>8} {reference[key]:>8}")
    print(json.dumps(result))
    return 0


def fit_mask_main(args: argparse.Namespace) -> int:
    """Fit the mask classifier on the folder and print the constants for ``masks.py``.

    Also prints the leave-identities-out accuracy (5 folds by identity), the honest estimate.
    """
    labels = read_labels(args.data)
    engine = FaceEngine(EngineConfig(models_dir=args.models_dir))
    vectors, aligned = engine_vectors(engine, load_images(args.data, labels))
    keep = np.flatnonzero(vectors.found)
    features = np.stack([mask_features(aligned[i]) for i in keep])
    masked = np.array([labels[i].masked for i in keep])
    identities = [labels[i].identity for i in keep]
    folds = {name: k % 5 for k, name in enumerate(sorted(set(identities)))}
    fold = np.array([folds[name] for name in identities])
    correct = 0
    for k in range(5):
        train = fold != k
        model = fit_mask_classifier(features[train], masked[train])
        for j in np.flatnonzero(~train):
            correct += int((model_probability(model, features[j]) >= 0.5) == masked[j])
    final = fit_mask_classifier(features, masked)
    print(f"leave-identities-out accuracy: {correct / len(keep):.4f} on {len(keep)} faces")
    print(final)
    return 0


def model_probability(model: Any, features: np.ndarray) -> float:
    x = (features - np.asarray(model.mean)) / np.asarray(model.std)
    return float(1.0 / (1.0 + np.exp(-(x @ np.asarray(model.weights) + model.bias))))
