"""Domain errors: each has a stable ``code`` and a message that says what to do.

Each Chalice app maps these to HTTP with one table (``code`` → status); adapters translate the
errors of their technology (botocore, pynamodb, face_engine) into these, ``raise … from exc``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from eventface.domain.access import Principal


class EventfaceError(Exception):
    """Base class of every error the platform raises on purpose."""

    code = "EventfaceError"


class InvalidInputError(EventfaceError):
    """The request is malformed or breaks a rule about its own content (HTTP 400)."""

    code = "InvalidInputError"


class NotFoundError(EventfaceError):
    """The thing asked for does not exist, or not for this tenant (HTTP 404)."""

    code = "NotFoundError"


class AlreadyExistsError(EventfaceError):
    """Something with this id exists already (HTTP 409)."""

    code = "AlreadyExistsError"


class StateConflictError(EventfaceError):
    """The thing exists but its state does not allow this action, or it changed meanwhile (409)."""

    code = "StateConflictError"


class UnauthorizedError(EventfaceError):
    """No valid credentials: a missing, unknown or revoked key (HTTP 401)."""

    code = "UnauthorizedError"


class ForbiddenError(EventfaceError):
    """Valid credentials that do not cover this resource (HTTP 403)."""

    code = "ForbiddenError"


class NotAMemberError(ForbiddenError):
    """A signed-in user whose token names a tenant the platform's membership record does not give
    them (HTTP 403). ``principal`` is who the token claimed to be, so that the refusal is audited
    under the user's sub in the tenant they aimed at."""

    code = "ForbiddenError"

    def __init__(self, message: str, principal: Principal) -> None:
        super().__init__(message)
        self.principal = principal


class PayloadTooLargeError(EventfaceError):
    """The photo or body is over the configured limit (HTTP 413)."""

    code = "PayloadTooLargeError"


class FaceNotFoundError(EventfaceError):
    """The photo is readable but holds no usable face (HTTP 422)."""

    code = "FaceNotFoundError"


@dataclass(frozen=True, slots=True)
class QualityReason:
    """Why a registration photo was refused: a stable code and a message a person can act on."""

    code: str
    message: str


class FaceQualityError(EventfaceError):
    """A registration photo fails the quality gate; ``reasons`` lists what to fix (HTTP 422)."""

    code = "FaceQualityError"

    def __init__(self, message: str, reasons: tuple[QualityReason, ...] = ()) -> None:
        super().__init__(message)
        self.reasons = reasons


class TooManyRequestsError(EventfaceError):
    """The caller is over its rate limit; ``retry_after`` says when to try again (HTTP 429).

    Parameters
    ----------
    message
        What happened and what to do (``"... wait 12 s and retry"``).
    retry_after
        Whole seconds until a retry can succeed, at least 1 (sent as ``Retry-After``).
    """

    code = "TooManyRequestsError"

    def __init__(self, message: str, retry_after: int) -> None:
        if isinstance(retry_after, bool) or not isinstance(retry_after, int) or retry_after < 1:
            raise ValueError(f"retry_after must be a whole number of seconds >= 1, not {retry_after!r}")
        super().__init__(message)
        self.retry_after = retry_after


class DependencyError(EventfaceError):
    """A backing service (database, storage, queue) failed; retrying later may help (HTTP 503)."""

    code = "DependencyError"
