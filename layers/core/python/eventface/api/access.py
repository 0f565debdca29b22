"""Route guard of the management API: authenticate, check the route's authority, audit.

Every management route declares the authority it needs::

    @app.route("/v1/campaigns", methods=["POST"])
    @handled(ADMIN_ERRORS)
    @guard.route(Authority.CAMPAIGNS, "campaigns.create")
    def create_campaign() -> Response:
        call = guard.call()          # services, principal (tenant!), request

Each request leaves one audit entry: who, what (the action and the concrete path), when, and how
it ended (ok, denied, unauthenticated, not_found, failed); except the requests of a source this
process already refused for too many failed authentications, which are answered 429 before any
credential is looked up or anything is written.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, TypeVar

from chalice.app import Chalice, Request

from eventface.bootstrap import Services
from eventface.domain.access import AuditOutcome, Authority, Principal
from eventface.domain.errors import (
    EventfaceError,
    ForbiddenError,
    NotAMemberError,
    NotFoundError,
    TooManyRequestsError,
    UnauthorizedError,
)

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True, slots=True)
class Call:
    """What a guarded view works with: the services, the authenticated caller, the request."""

    services: Services
    principal: Principal
    request: Request

    @property
    def tenant(self) -> str:
        return self.principal.tenant_id


def source_of(request: Request) -> str:
    """The caller's address (API Gateway's ``identity.sourceIp``), for failed-auth throttling."""
    identity = request.context.get("identity") or {}
    return str(identity.get("sourceIp") or "unknown")


class Guard:
    """Authenticates and authorises the routes of one Chalice app (see the module docstring)."""

    def __init__(self, app: Chalice, services: Callable[[], Services]) -> None:
        self._app = app
        self._services = services
        self._call: ContextVar[Call] = ContextVar(f"{app.app_name}-call")

    def call(self) -> Call:
        """The current request's call (inside a guarded view)."""
        return self._call.get()

    def route(self, authority: Authority | None, action: str) -> Callable[[F], F]:
        """Guard a view: ``authority`` None admits any authenticated caller."""

        def decorate(view: F) -> F:
            @functools.wraps(view)
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                request = self._app.current_request
                if request is None:  # pragma: no cover - Chalice always sets it inside a route
                    raise RuntimeError("no current request")
                svc = self._services()
                target = request.path.format_map(request.uri_params or {})
                source = source_of(request)
                # A source this process saw go over its failed-auth budget is refused before any
                # credential lookup, and not audited: a flood of bad keys adds no reads or writes.
                svc.screen(source)
                principal: Principal | None = None
                try:
                    try:
                        principal = svc.authenticate(request.headers)
                    except UnauthorizedError:
                        svc.authentication_failed(source)  # 429 once over budget
                        raise
                    except NotAMemberError as exc:
                        # A valid user aiming at a tenant they are not a member of: throttled
                        # like a failed sign-in, audited (denied) as the user, in that tenant.
                        svc.authentication_failed(source_of(request))
                        principal = exc.principal
                        raise
                    svc.limit(principal)
                    svc.require(principal, authority)
                    token = self._call.set(Call(svc, principal, request))
                    try:
                        response = view(*args, **kwargs)
                    finally:
                        self._call.reset(token)
                except Exception as exc:
                    self._audit(svc, principal, action, target, exc)
                    raise
                self._audit(svc, principal, action, target, None)
                return response

            return wrapper  # type: ignore[return-value]

        return decorate

    @staticmethod
    def _audit(
        svc: Services, principal: Principal | None, action: str, target: str, exc: Exception | None
    ) -> None:
        if exc is None:
            outcome = AuditOutcome.OK
        elif isinstance(exc, UnauthorizedError) or (
            isinstance(exc, TooManyRequestsError) and principal is None
        ):
            outcome = AuditOutcome.UNAUTHENTICATED
        elif isinstance(exc, ForbiddenError):
            outcome = AuditOutcome.DENIED
        elif isinstance(exc, NotFoundError):
            outcome = AuditOutcome.NOT_FOUND
        else:
            outcome = AuditOutcome.FAILED
        detail = str(exc) if isinstance(exc, EventfaceError) else (type(exc).__name__ if exc else "")
        svc.audit(principal=principal, action=action, target=target, outcome=outcome, detail=detail)
