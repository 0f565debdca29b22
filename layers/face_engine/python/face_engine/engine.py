"""The face engine facade: photo bytes in, detections, aligned faces and templates out."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from face_engine import models
from face_engine.alignment import align_face
from face_engine.detection import MainFacePolicy, YuNetDetector, pick_main_face, refine_landmarks
from face_engine.embedding import SFaceEmbedder
from face_engine.errors import LowQualityFaceError
from face_engine.masks import DEFAULT_MASK_CLASSIFIER, MaskClassifier, synthetic_masked
from face_engine.quality import QualityPolicy, assess
from face_engine.runtime import create_session
from face_engine.types import Detection, Embedding, QualityReport


@dataclass(frozen=True, slots=True)
class EngineConfig:
    """Everything the engine needs to know, passed in (the engine reads no environment).

    Parameters
    ----------
    models_dir
        Where prepared models are cached; None means the per-user default.
    threads
        onnxruntime intra-op threads per session: the function's vCPUs.
    detector_max_side
        Longer side of the detector input. 640 finds faces down to about 20 px in a 640 px photo
        and about 40 px in a 1280 px one.
    score_threshold, nms_threshold
        YuNet detection score and NMS IoU thresholds.
    refine
        Re-detect the main face at the detector's best scale and average the landmarks.
    flip_templates
        Registration averages each template with the mirrored face's embedding (a second
        recogniser pass where latency matters little); probes are never flipped.
    mask_threshold
        Probability above which a face counts as masked.
    """

    models_dir: Path | None = None
    threads: int = 1
    detector_max_side: int = 640
    score_threshold: float = 0.6
    nms_threshold: float = 0.3
    refine: bool = True
    flip_templates: bool = True
    mask_threshold: float = 0.5


@dataclass(frozen=True, slots=True, eq=False)
class FaceResult:
    """The main face of a photo: where it is, its aligned crop, mask status and embedding."""

    detection: Detection
    detections: tuple[Detection, ...]
    landmarks: np.ndarray
    aligned: np.ndarray
    mask_probability: float
    masked: bool
    embedding: Embedding


@dataclass(frozen=True, slots=True, eq=False)
class Enrolment:
    """What registration stores: the plain template and the synthetic masked template."""

    face: FaceResult
    template: Embedding
    masked_template: Embedding
    quality: QualityReport


class FaceEngine:
    """Lazy, thread-safe holder of the detector and recogniser sessions.

    Sessions are created on first use and kept for the life of the process (a warm Lambda
    container reuses them); nothing is loaded at construction.
    """

    def __init__(self, config: EngineConfig | None = None) -> None:
        self.config = config or EngineConfig()
        self._lock = threading.Lock()
        self._detector: YuNetDetector | None = None
        self._embedder: SFaceEmbedder | None = None
        self.mask_classifier: MaskClassifier = DEFAULT_MASK_CLASSIFIER

    @property
    def model_id(self) -> str:
        return models.SFACE.model_id

    @property
    def detector(self) -> YuNetDetector:
        if self._detector is None:
            with self._lock:
                if self._detector is None:
                    session = self._session(models.YUNET)
                    self._detector = YuNetDetector(
                        session,
                        max_side=self.config.detector_max_side,
                        score_threshold=self.config.score_threshold,
                        nms_threshold=self.config.nms_threshold,
                    )
        return self._detector

    @property
    def embedder(self) -> SFaceEmbedder:
        if self._embedder is None:
            with self._lock:
                if self._embedder is None:
                    session = self._session(models.SFACE)
                    self._embedder = SFaceEmbedder(session, models.SFACE.model_id)
        return self._embedder

    def _session(self, spec: models.ModelSpec) -> Any:
        return create_session(models.read_prepared(spec, self.config.models_dir), self.config.threads)

    def warm_up(self) -> None:
        """Create both sessions and run each once (for a Lambda INIT phase or a benchmark)."""
        self.detector.detect(np.zeros((64, 64, 3), dtype=np.uint8))
        self.embedder.vectors([np.zeros((112, 112, 3), dtype=np.uint8)])

    def detect(self, image: np.ndarray) -> list[Detection]:
        """All faces in a BGR image, best score first."""
        return self.detector.detect(image)

    def embed(self, faces: list[np.ndarray], *, flip: bool = False) -> list[Embedding]:
        """Embeddings of aligned faces, in one batch."""
        return self.embedder.embed(faces, flip=flip)

    def locate(
        self, image: np.ndarray, policy: MainFacePolicy = MainFacePolicy.LARGEST
    ) -> tuple[Detection, list[Detection], np.ndarray]:
        """Detect, pick the main face and (when configured) refine its landmarks."""
        detections = self.detect(image)
        main = pick_main_face(detections, image.shape, policy)
        landmarks = refine_landmarks(self.detector, image, main) if self.config.refine else main.landmarks
        return main, detections, landmarks

    def analyse(
        self, image: np.ndarray, policy: MainFacePolicy = MainFacePolicy.LARGEST, *, flip: bool = False
    ) -> FaceResult:
        """The probe path: locate the main face, align it, tell whether it is masked, embed it."""
        main, detections, landmarks = self.locate(image, policy)
        aligned = align_face(image, landmarks)
        (embedding,) = self.embed([aligned], flip=flip)
        return self._result(main, detections, landmarks, aligned, embedding)

    def analyse_all(
        self, image: np.ndarray, *, max_faces: int = 5, min_face_ratio: float = 0.0
    ) -> list[FaceResult]:
        """Every face of a frame (largest first, at most ``max_faces``), each aligned, mask-checked
        and embedded; the embeddings are computed in one batch. Faces smaller than
        ``min_face_ratio`` of the largest are left out (distant passers-by).

        Raises
        ------
        NoFaceDetectedError
            The frame has no face.
        """
        detections = self.detect(image)
        if not detections:
            pick_main_face(detections, image.shape)  # raises NoFaceDetectedError with its message
        detections = sorted(detections, key=lambda d: d.size, reverse=True)
        largest = detections[0].size
        chosen = [d for d in detections if d.size >= min_face_ratio * largest][:max_faces]
        located = [
            (d, refine_landmarks(self.detector, image, d) if self.config.refine else d.landmarks)
            for d in chosen
        ]
        aligned = [align_face(image, landmarks) for _, landmarks in located]
        embeddings = self.embed(aligned)
        return [
            self._result(d, detections, landmarks, crop, embedding)
            for (d, landmarks), crop, embedding in zip(located, aligned, embeddings, strict=True)
        ]

    def _result(
        self,
        main: Detection,
        detections: list[Detection],
        landmarks: np.ndarray,
        aligned: np.ndarray,
        embedding: Embedding,
    ) -> FaceResult:
        probability = self.mask_classifier.probability(aligned)
        return FaceResult(
            detection=main,
            detections=tuple(detections),
            landmarks=landmarks,
            aligned=aligned,
            mask_probability=probability,
            masked=probability >= self.config.mask_threshold,
            embedding=embedding,
        )

    def enrol(
        self,
        image: np.ndarray,
        *,
        policy: MainFacePolicy = MainFacePolicy.SINGLE,
        quality: QualityPolicy | None = None,
    ) -> Enrolment:
        """The registration path: one face, quality-gated, with plain and masked templates.

        Raises
        ------
        NoFaceDetectedError, MultipleFacesError
            No face, or several where ``policy`` asks for one.
        LowQualityFaceError
            The face fails the quality gate; ``reasons`` lists what to fix.
        """
        main, detections, landmarks = self.locate(image, policy)
        aligned = align_face(image, landmarks)
        refined = Detection(box=main.box, landmarks=landmarks, score=main.score)
        report = assess(image, detections, refined, aligned, quality or QualityPolicy())
        if not report.ok:
            raise LowQualityFaceError(
                "; ".join(issue.message for issue in report.issues), reasons=report.issues
            )
        template, masked_template = self.templates(aligned)
        face = self._result(main, detections, landmarks, aligned, template)
        return Enrolment(face=face, template=template, masked_template=masked_template, quality=report)

    def templates(self, aligned: np.ndarray) -> tuple[Embedding, Embedding]:
        """The plain template of an aligned face and its synthetic masked template.

        The masked template is the normalised mean of the embeddings of the face with each
        synthetic mask style drawn on it. Both are embedded in one batch.
        """
        vectors = self.embedder.vectors(
            [aligned, *synthetic_masked(aligned)], flip=self.config.flip_templates
        )
        masked = vectors[1:].sum(axis=0)
        masked /= max(float(np.linalg.norm(masked)), 1e-12)
        return (
            Embedding(vector=vectors[0], model_id=self.model_id),
            Embedding(vector=masked.astype(np.float32), model_id=self.model_id),
        )
