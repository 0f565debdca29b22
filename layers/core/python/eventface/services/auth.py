"""Who is calling the management API: a signed-in user (OIDC token) or a system (API key).

Users sign in with OpenID Connect (Cognito in AWS, moto's Cognito on the local stack); their ID
token names their tenant (``custom:tenant_id``), which must be a tenant the platform's membership
record gives them (:func:`eventface.services.memberships.check_membership`: the claim alone is never
trusted), and their authorities are the Cognito groups they belong to, one group per authority
(``campaigns``, ``history``...), granted separately. Systems use management API keys
(``x-api-key``), which carry their own authorities.

Every decision ends in the audit log: :func:`audit` is called by the API for each request,
allowed or not.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta

from eventface.domain.access import TENANT_ATTRIBUTE, AuditOutcome, Authority, Principal, PrincipalKind
from eventface.domain.errors import ForbiddenError, UnauthorizedError
from eventface.observability import logger
from eventface.services import api_keys, memberships, rate_limits
from eventface.services.deps import Deps

#: The ID token claim that names the user's tenant (a Cognito custom attribute), cross-checked
#: against the platform's membership record.
TENANT_CLAIM = TENANT_ATTRIBUTE
#: Who the audit log names when the credentials named nobody.
ANONYMOUS = "anonymous"
#: The tenant of audit entries whose credentials named none (failed sign-ins).
NO_TENANT = "-"


def bearer_token(header_value: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header (the scheme is case-insensitive).

    Parameters
    ----------
    header_value
        The ``Authorization`` header, or None when the request had none.

    Returns
    -------
    str | None
        The token, or None when the header is missing or blank.

    Raises
    ------
    UnauthorizedError
        The header holds something other than one bearer token (another scheme, or no token).
    """
    if header_value is None or not header_value.strip():
        return None
    scheme, _, token = header_value.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        raise UnauthorizedError(
            "the Authorization header must be 'Bearer <token>': sign in and send the token after 'Bearer '"
        )
    return token


def authenticate(deps: Deps, headers: Mapping[str, str]) -> Principal:
    """The principal of a request's ``Authorization: Bearer`` token or ``x-api-key``.

    Raises
    ------
    UnauthorizedError
        Neither credential, both, or one that is not valid (the message says which and why).
    NotAMemberError
        A valid user token whose tenant the user is not a member of (403, audited as the user).
    """
    authorization = headers.get("authorization")
    key = headers.get("x-api-key")
    if authorization and key:
        raise UnauthorizedError("send either a bearer token or an x-api-key, not both")
    if key:
        return api_keys.authenticate_api_key(deps.api_keys, deps.clock, key)
    token = bearer_token(authorization)
    if token is None:
        raise UnauthorizedError(
            "credentials are required: sign in and send 'Authorization: Bearer <ID token>', "
            "or send a management API key in x-api-key"
        )
    claims = deps.tokens.verify(token)
    tenant = claims.claims.get(TENANT_CLAIM)
    if not isinstance(tenant, str) or not tenant:
        raise UnauthorizedError(
            "your user belongs to no tenant: ask a tenant admin to set your tenant, then sign in again"
        )
    known = {a.value for a in Authority}
    principal = Principal(
        tenant_id=tenant,
        kind=PrincipalKind.USER,
        principal_id=claims.sub,
        authorities=frozenset(Authority(g) for g in claims.groups if g in known),
        name=claims.username,
    )
    memberships.check_membership(deps.memberships, principal)
    return principal


def require(principal: Principal, authority: Authority | None) -> None:
    """ForbiddenError unless ``principal`` holds ``authority`` (None: any authenticated caller)."""
    if authority is not None and not principal.has(authority):
        raise ForbiddenError(
            f"this action needs the '{authority.value}' authority: ask a tenant admin to grant it"
        )


def audit(
    deps: Deps,
    *,
    principal: Principal | None,
    action: str,
    target: str,
    outcome: AuditOutcome,
    detail: str = "",
) -> None:
    """Append one audit entry (to the caller's tenant; failed sign-ins to no tenant).

    Never raises: the answer still goes out, and a missing entry is logged as an error for
    operators (the alarm on it is part of the deployment).
    """
    try:
        _record(deps, principal=principal, action=action, target=target, outcome=outcome, detail=detail)
    except Exception:
        logger.exception("audit entry could not be written", extra={"action": action})


def _record(
    deps: Deps,
    *,
    principal: Principal | None,
    action: str,
    target: str,
    outcome: AuditOutcome,
    detail: str,
) -> None:
    api_keys.record_audit(
        deps.audit,
        deps.clock,
        tenant_id=principal.tenant_id if principal else NO_TENANT,
        actor=principal.actor if principal else ANONYMOUS,
        action=action,
        target=target,
        outcome=outcome,
        detail=detail[:300],
        retention=timedelta(days=deps.policy.audit_retention_days),
    )


def limit(deps: Deps, principal: Principal) -> None:
    """TooManyRequestsError (with Retry-After) once a device or API key exceeds its rate (call it
    right after authentication, before the request's body is parsed or any work is done)."""
    limits = deps.policy.rate_limits
    if principal.kind is PrincipalKind.DEVICE:
        per_minute, kind = limits.per_device_per_minute, rate_limits.DEVICE
    elif principal.kind is PrincipalKind.API_KEY:
        per_minute, kind = limits.per_key_per_minute, rate_limits.API_KEY
    else:
        return  # users are limited by the identity provider's sign-in throttling
    rate_limits.check(
        deps.limiter, deps.clock, kind=kind, principal_id=principal.principal_id, limit=per_minute
    )


def failed(deps: Deps, source: str) -> None:
    """Count a failed authentication from ``source``; TooManyRequestsError once over budget."""
    rate_limits.record_failed_auth(
        deps.limiter, deps.clock, source, deps.policy.rate_limits.failed_auth_per_minute
    )


def screen(deps: Deps, source: str) -> None:
    """TooManyRequestsError if this process already knows ``source`` is over its failed-
    authentication budget: no I/O, so every route calls it before looking up any credential."""
    rate_limits.screen_source(deps.limiter, deps.clock, source)


def admit(deps: Deps, source: str) -> None:
    """TooManyRequestsError while ``source`` is over its failed-authentication budget (for the
    unauthenticated routes that accept guessable secrets, such as activation codes)."""
    rate_limits.check_failed_auth_allowed(
        deps.limiter, deps.clock, source, deps.policy.rate_limits.failed_auth_per_minute
    )
