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
#: Pixel caps (from the header, before decoding): an edge frame, a registration photo.
DEFAULT_EDGE_MAX_PIXELS = 12_000_000
DEFAULT_REGISTRATION_MAX_PIXELS = 24_000_000
#: The longer side a photo is decoded at, at least (libjpeg scales by 1/2, 1/4 or 1/8 while it
#: decodes). The detector looks at 640 px; alignment crops 112x112 faces from the decoded image,
#: so an edge frame keeps 1920 px (a face the detector finds at 640 is 60+ px here) and a
#: registration photo 2560 px (a portrait's face stays far above the quality gate's 80 px).
EDGE_DECODE_SIDE = 1920
REGISTRATION_DECODE_SIDE = 2560


class EngineFaceAnalyzer:
    """Lazy wrapper of one :class:`face_engine.engine.FaceEngine` (sessions load on first use).

    Parameters
    ----------
    models_dir, threads
        Passed to ``EngineConfig``.
    max_photo_bytes
        Photos above this size are refused before decoding.
    edge_max_pixels, registration_max_pixels
        Photos whose header claims more pixels are refused before decoding (HTTP 413): scans and
        sightings, and registrations (enrolment).
    engine
        An engine to use instead of building one (tests, warm-up).
    """

    def __init__(
        self,
        *,
        models_dir: Path | None = None,
        threads: int = 1,
        max_photo_bytes: int = 5 * 1024 * 1024,
        edge_max_pixels: int = DEFAULT_EDGE_MAX_PIXELS,
        registration_max_pixels: int = DEFAULT_REGISTRATION_MAX_PIXELS,
        engine: Any | None = None,
    ) -> None:
        self._models_dir = models_dir
        self._threads = threads
        self._max_photo_bytes = max_photo_bytes
        self._edge = (edge_max_pixels, EDGE_DECODE_SIDE)
        self._registration = (registration_max_pixels, REGISTRATION_DECODE_SIDE)
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

    def _image(self, photo: bytes, limits: tuple[int, int]) -> Any:
        """The decoded photo: refused by its header over ``limits[0]`` pixels, and a large JPEG
        decoded at a reduced scale that keeps its longer side at least ``limits[1]``."""
        from face_engine.decoding import decode_image
        from face_engine.errors import ImageDecodeError, ImageTooLargeError

        if len(photo) > self._max_photo_bytes:
            raise PayloadTooLargeError(
                f"the photo is over the {self._max_photo_bytes}-byte limit: send a smaller one"
            )
        max_pixels, max_side = limits
        try:
            return decode_image(
                photo, max_bytes=self._max_photo_bytes, max_pixels=max_pixels, max_side=max_side
            )
        except ImageTooLargeError as exc:
            raise PayloadTooLargeError(str(exc)) from exc
        except ImageDecodeError as exc:
            raise InvalidInputError(
                f"the photo cannot be read ({exc}): send a JPEG, PNG or WebP image"
            ) from exc

    def probe(self, photo: bytes) -> Probe:
        """The main face of a scan photo; FaceNotFoundError when there is none."""
        from face_engine.errors import NoFaceDetectedError

        image = self._image(photo, self._edge)
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

        image = self._image(photo, self._edge)
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

        image = self._image(photo, self._registration)
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
