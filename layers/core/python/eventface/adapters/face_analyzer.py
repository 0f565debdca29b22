"""EngineFaceAnalyzer: the FaceAnalyzer port over face_engine (decode → analyse / enrol).

face_engine errors are translated into domain errors here, so that the services never import
cv2 or the engine. Embeddings leave as tuples of floats (the domain is stdlib only).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from eventface.domain.errors import (
    FaceNotFoundError,
    FaceQualityError,
    InvalidInputError,
    PayloadTooLargeError,
    QualityReason,
)
from eventface.domain.model import Probe, Template

#: Faces of a sighting frame smaller than this share of the largest face are not searched.
MIN_FACE_RATIO = 0.2


class EngineFaceAnalyzer:
    """Lazy wrapper of one :class:`face_engine.engine.FaceEngine` (sessions load on first use).

    Parameters
    ----------
    models_dir, threads
        Passed to ``EngineConfig``.
    max_photo_bytes
        Photos above this size are refused before decoding.
    engine
        An engine to use instead of building one (tests, warm-up).
    """

    def __init__(
        self,
        *,
        models_dir: Path | None = None,
        threads: int = 1,
        max_photo_bytes: int = 5 * 1024 * 1024,
        engine: Any | None = None,
    ) -> None:
        self._models_dir = models_dir
        self._threads = threads
        self._max_photo_bytes = max_photo_bytes
        self._engine = engine

    @property
    def engine(self) -> Any:
        if self._engine is None:
            from face_engine.engine import EngineConfig, FaceEngine

            self._engine = FaceEngine(EngineConfig(models_dir=self._models_dir, threads=self._threads))
        return self._engine

    @property
    def model_id(self) -> str:
        return str(self.engine.model_id)

    def _image(self, photo: bytes) -> Any:
        from face_engine.decoding import decode_image
        from face_engine.errors import ImageDecodeError, ImageTooLargeError

        if len(photo) > self._max_photo_bytes:
            raise PayloadTooLargeError(
                f"the photo is over the {self._max_photo_bytes}-byte limit: send a smaller one"
            )
        try:
            return decode_image(photo, max_bytes=self._max_photo_bytes)
        except ImageTooLargeError as exc:
            raise PayloadTooLargeError(f"{exc}: send a smaller photo") from exc
        except ImageDecodeError as exc:
            raise InvalidInputError(
                f"the photo cannot be read ({exc}): send a JPEG, PNG or WebP image"
            ) from exc

    def probe(self, photo: bytes) -> Probe:
        """The main face of a scan photo; FaceNotFoundError when there is none."""
        from face_engine.errors import NoFaceDetectedError

        image = self._image(photo)
        try:
            face = self.engine.analyse(image)
        except NoFaceDetectedError as exc:
            raise FaceNotFoundError("no face found: look at the camera and try again") from exc
        vector = face.embedding.vector
        return Probe(
            vector=tuple(float(v) for v in vector), model_id=face.embedding.model_id, masked=bool(face.masked)
        )

    def probes(self, photo: bytes, max_faces: int) -> tuple[Probe, ...]:
        """Every face of a frame (largest first, at most ``max_faces``; faces under a fifth of the
        largest one's size are left out); FaceNotFoundError when there is none."""
        from face_engine.errors import NoFaceDetectedError

        image = self._image(photo)
        try:
            faces = self.engine.analyse_all(image, max_faces=max_faces, min_face_ratio=MIN_FACE_RATIO)
        except NoFaceDetectedError as exc:
            raise FaceNotFoundError("no face found in the frame") from exc
        return tuple(
            Probe(
                vector=tuple(float(v) for v in face.embedding.vector),
                model_id=face.embedding.model_id,
                masked=bool(face.masked),
            )
            for face in faces
        )

    def enrol(self, photo: bytes) -> tuple[Template, ...]:
        """Plain and masked templates of the single face of a registration photo."""
        from face_engine.errors import LowQualityFaceError, MultipleFacesError, NoFaceDetectedError

        image = self._image(photo)
        try:
            enrolment = self.engine.enrol(image)
        except NoFaceDetectedError as exc:
            raise FaceNotFoundError(
                "no face found: take a photo of the face, front-on, in good light"
            ) from exc
        except MultipleFacesError as exc:
            reason = QualityReason("several_faces", "only one person may be in the photo")
            raise FaceQualityError(reason.message, reasons=(reason,)) from exc
        except LowQualityFaceError as exc:
            reasons = tuple(QualityReason(r.code, r.message) for r in exc.reasons)
            raise FaceQualityError(str(exc), reasons=reasons) from exc
        return (
            Template(
                tuple(float(v) for v in enrolment.template.vector), enrolment.template.model_id, "plain"
            ),
            Template(
                tuple(float(v) for v in enrolment.masked_template.vector),
                enrolment.masked_template.model_id,
                "masked",
            ),
        )
