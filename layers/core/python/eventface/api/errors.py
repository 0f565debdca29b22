"""One error table per app: exception class → HTTP status, and the wire shape of an error.

Every 4xx/5xx body is Chalice's ``{"Code": ..., "Message": ...}`` (plus ``Reasons`` for a refused
registration photo). Lookup walks the exception's MRO, so a subclass inherits its parent's status
unless the table names it. Anything not in the table is a 500 with a generic message: stack
traces and internal messages never reach the client.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final

from eventface.domain import errors as domain
from eventface.settings import SettingsError
from face_engine import errors as engine


class UnsupportedMediaTypeError(domain.InvalidInputError):
    """The body's Content-Type is not one the route accepts (HTTP 415)."""

    code = "UnsupportedMediaType"


class ImageUndecodableError(domain.InvalidInputError):
    """The body is not an image that can be decoded (HTTP 422)."""

    code = "ImageDecodeError"


_COMMON: Final[dict[type[BaseException], int]] = {
    domain.InvalidInputError: 400,
    UnsupportedMediaTypeError: 415,
    ImageUndecodableError: 422,
    domain.UnauthorizedError: 401,
    domain.ForbiddenError: 403,
    domain.NotFoundError: 404,
    domain.AlreadyExistsError: 409,
    domain.StateConflictError: 409,
    domain.PayloadTooLargeError: 413,
    domain.TooManyRequestsError: 429,
    domain.FaceNotFoundError: 422,
    domain.FaceQualityError: 422,
    domain.DependencyError: 503,
    # face_engine errors, should one escape an adapter.
    engine.ImageDecodeError: 422,
    engine.ImageTooLargeError: 413,
    engine.NoFaceDetectedError: 422,
    engine.MultipleFacesError: 422,
    engine.LowQualityFaceError: 422,
    engine.ModelMismatchError: 400,
    engine.ModelLoadError: 503,
    engine.ShardCorruptError: 503,
    SettingsError: 503,
}

#: The edge (device) API's table.
EDGE_ERRORS: Final[Mapping[type[BaseException], int]] = MappingProxyType(dict(_COMMON))
#: The management API's table.
ADMIN_ERRORS: Final[Mapping[type[BaseException], int]] = MappingProxyType(dict(_COMMON))

#: Messages for errors whose own text is for operators, not clients.
_PRIVATE: Final[dict[type[BaseException], str]] = {
    SettingsError: "the service is not configured correctly: operators, see the function's logs",
    engine.ModelLoadError: "the face models are unavailable: try again later",
    engine.ShardCorruptError: "the face gallery is unavailable: try again later",
}
INTERNAL_MESSAGE: Final = "internal error: try again later; if it persists, contact the operators"


@dataclass(frozen=True, slots=True)
class ErrorReply:
    """An error as it goes on the wire."""

    status: int
    body: dict[str, Any]


def status_of(exc: BaseException, table: Mapping[type[BaseException], int]) -> int | None:
    """The status the table gives ``exc`` (most specific class first), or None if unmapped."""
    for cls in type(exc).__mro__:
        if cls in table:
            return table[cls]
    return None


def _code(exc: BaseException) -> str:
    code = getattr(exc, "code", None)
    return code if isinstance(code, str) else type(exc).__name__


def to_reply(exc: BaseException, table: Mapping[type[BaseException], int]) -> ErrorReply:
    """Map ``exc`` to its reply; unmapped exceptions become a 500 that reveals nothing.

    An ``InvalidInputError`` raised from a face_engine ``ImageDecodeError`` (how the face
    analyzer adapter reports an unreadable photo) is an undecodable image: 422, not 400.
    """
    if isinstance(exc, domain.InvalidInputError) and isinstance(exc.__cause__, engine.ImageDecodeError):
        exc = _undecodable(exc)
    status = status_of(exc, table)
    if status is None:
        return ErrorReply(500, {"Code": "InternalServerError", "Message": INTERNAL_MESSAGE})
    private = next((m for cls, m in _PRIVATE.items() if isinstance(exc, cls)), None)
    body: dict[str, Any] = {"Code": _code(exc), "Message": private or str(exc) or _code(exc)}
    if isinstance(exc, domain.FaceQualityError | engine.LowQualityFaceError):
        body["Reasons"] = [{"code": r.code, "message": r.message} for r in exc.reasons]
    return ErrorReply(status, body)


def _undecodable(exc: BaseException) -> ImageUndecodableError:
    error = ImageUndecodableError(str(exc))
    error.__cause__ = exc.__cause__
    return error
