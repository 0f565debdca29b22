"""Face engine errors: each says what was wrong and what the caller can do about it."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from face_engine.types import QualityIssue


class FaceEngineError(Exception):
    """Base class of every error the face engine raises on purpose."""

    code = "FaceEngineError"


class ModelLoadError(FaceEngineError):
    """A model file is missing, corrupt, or cannot be prepared or loaded."""

    code = "ModelLoadError"


class ImageDecodeError(FaceEngineError):
    """The bytes are not an image we can read (empty, truncated, unknown format)."""

    code = "ImageDecodeError"


class ImageTooLargeError(ImageDecodeError):
    """The image is over the byte or pixel limit (for example a decompression bomb)."""

    code = "ImageTooLargeError"


class NoFaceDetectedError(FaceEngineError):
    """No face was found in the image."""

    code = "NoFaceDetectedError"


class MultipleFacesError(FaceEngineError):
    """Several faces were found where the caller asked for exactly one."""

    code = "MultipleFacesError"


class LowQualityFaceError(FaceEngineError):
    """A face was found but fails the quality gate; ``reasons`` says why and what to do."""

    code = "LowQualityFaceError"

    def __init__(self, message: str, reasons: tuple[QualityIssue, ...] = ()) -> None:
        super().__init__(message)
        self.reasons = reasons


class ModelMismatchError(FaceEngineError):
    """Two embeddings from different models were compared."""

    code = "ModelMismatchError"


class ShardCorruptError(FaceEngineError):
    """Stored gallery bytes fail verification (magic, version, length, checksum or contents).

    The data is never served: re-fetch the object, or restore it from the writer's copy.
    """

    code = "ShardCorruptError"
